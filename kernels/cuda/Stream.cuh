#pragma once
// The current stream as a cudaStream_t for the .cu files (Memory.h keeps it opaque for plain C++),
// and the launch helper every wrapper uses: the kernel goes to the current stream and is counted.
#include "kernels/cuda/Memory.h"

#include <cuda_runtime.h>

#include <string>

namespace kt::cuda {

// True on success; otherwise "<what>: <CUDA's message>" in *err (when given), and a non-sticky
// error is cleared so the next call starts clean.
inline bool cudaOk(cudaError_t e, const char* what, std::string* err) {
  if (e == cudaSuccess)
    return true;
  if (err)
    *err = std::string(what) + ": " + cudaGetErrorString(e);
  cudaGetLastError();
  return false;
}

inline cudaStream_t stream() {
  return static_cast<cudaStream_t>(currentStream());
}

} // namespace kt::cuda
