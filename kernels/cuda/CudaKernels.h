#pragma once
// The CUDA backend's host-side entry points. Plain C++ header (no CUDA includes) so the runtime can
// call it from ordinary translation units. Every function reports failure (no GPU, no driver,
// launch error) through its return value and message; none aborts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kt::cuda {

struct GpuInfo {
  int index = 0;
  std::string name;
  size_t totalBytes = 0;
  int computeMajor = 0, computeMinor = 0;
  int multiprocessors = 0;
};

// GPUs visible to this process. On a machine without a driver cudaGetDeviceCount returns an error
// (not zero GPUs); that is reported in *why and an empty list is returned.
std::vector<GpuInfo> listGpus(std::string* why);

// y = x / sqrt(mean(x^2) + eps) * w over `rows` rows of `dim`, computed on GPU `device` (host
// buffers in and out; used by tests and as the first kernel of the backend).
bool rmsNorm(int device, const float* x, int64_t rows, int64_t dim, const float* w, float eps,
             float* y, std::string* err);

} // namespace kt::cuda
