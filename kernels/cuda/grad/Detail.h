#pragma once
// Helpers shared by the attention files of kernels/cuda/grad (not part of the public API).
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

#include <string>

namespace kt::cuda::grad::detail {

inline void requireShape(bool ok, const char* op, const char* what) {
  if (!ok)
    throw Error(std::string("GPU training ") + op + ": " + what);
}

// RoPE over row % seqLen (GradKernels.h ropeRows) with the plan's schedule, checked.
inline void rotate(Context& c, const DevRope& r, float* x, int64_t rows, int heads,
                   int64_t rowStride, int64_t headStride, int64_t offset, int64_t seqLen,
                   bool inverse, const char* op) {
  ropeRows(x, rows, heads, rowStride, headStride, offset, seqLen, r.invFreq, r.dim / 2,
           r.attentionFactor, r.interleaved, inverse);
  c.checkLaunch(op);
}

} // namespace kt::cuda::grad::detail
