#include "runtime/support/Topology.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#ifdef KT_HAVE_CUDA
#include "kernels/cuda/CudaKernels.h"
#endif

#include <cstdio>

namespace kt::cli {

int cmdDevices(int argc, char** argv) {
  Args args(argc, argv, 2, {}, {});
  const Topology& t = machineTopology();
  std::printf("cpu   %s: %d package(s), %d cores, %d threads; L2 %llu KiB, L3 %llu MiB\n",
              t.cpuModel.c_str(), t.packages, t.cores, t.threads,
              (unsigned long long)(t.l2Bytes >> 10), (unsigned long long)(t.l3Bytes >> 20));
  std::printf(
      "      isa: avx2=%d avx512f=%d avx512_bf16=%d avx512_vnni=%d amx_bf16=%d amx_int8=%d\n",
      t.avx2, t.avx512f, t.avx512bf16, t.avx512vnni, t.amxBf16, t.amxInt8);
  for (const NumaNode& n : t.numa)
    std::printf("      cpu:numa%d  %d cores, %d threads, %.1f GiB\n", n.index, n.cores, n.threads,
                double(n.memoryBytes) / (1ull << 30));
#ifdef KT_HAVE_CUDA
  std::string why;
  auto gpus = cuda::listGpus(&why);
  if (gpus.empty())
    std::printf("gpu   none (%s)\n", why.c_str());
  for (const auto& g : gpus)
    std::printf("gpu   gpu:%d  %s, sm_%d%d, %d SMs, %.1f GiB\n", g.index, g.name.c_str(),
                g.computeMajor, g.computeMinor, g.multiprocessors,
                double(g.totalBytes) / (1ull << 30));
#else
  std::printf("gpu   none (this kt-rt was built without CUDA)\n");
#endif
  std::printf("npu   none (no NPU backend is compiled into this kt-rt)\n");
  return 0;
}

} // namespace kt::cli
