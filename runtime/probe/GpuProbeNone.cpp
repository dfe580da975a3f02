// kt-rt probe in a build without CUDA: no GPU can be measured, and the profile says why.
#include "runtime/probe/Probe.h"

namespace kt::probe {

bool probeGpus(const ProbeOptions&, std::vector<GpuResult>*, std::string* note) {
  *note = "this kt-rt was built without CUDA";
  return false;
}

} // namespace kt::probe
