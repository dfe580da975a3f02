#pragma once
// The current stream as a cudaStream_t for the .cu files (Memory.h keeps it opaque for plain C++),
// and the launch helper every wrapper uses: the kernel goes to the current stream and is counted.
#include "kernels/cuda/Memory.h"

#include <cuda_runtime.h>

namespace kt::cuda {

inline cudaStream_t stream() {
  return static_cast<cudaStream_t>(currentStream());
}

} // namespace kt::cuda
