#include "kernels/cuda/CudaKernels.h"

#include <cuda_runtime.h>

namespace kt::cuda {

std::vector<GpuInfo> listGpus(std::string* why) {
  std::vector<GpuInfo> gpus;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why)
      *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
    cudaGetLastError(); // clear the sticky error so later calls start clean
    return gpus;
  }
  if (count == 0 && why)
    *why = "the CUDA driver reports no GPUs";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess)
      continue;
    gpus.push_back({i, p.name, p.totalGlobalMem, p.major, p.minor, p.multiProcessorCount});
  }
  return gpus;
}

} // namespace kt::cuda
