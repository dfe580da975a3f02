#include "runtime/probe/Probe.h"

#include <chrono>

namespace kt::probe {

ProbeResult runProbe(const ProbeOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  ProbeResult r;
  probeCpu(options, &r.cpu);
  if (options.gpu)
    probeGpus(options, &r.gpus, &r.gpuNote);
  else
    r.gpuNote = "GPUs not probed (--no-gpu)";
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

} // namespace kt::probe
