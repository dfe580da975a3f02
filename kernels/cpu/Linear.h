#pragma once
// y[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n]) — the "linear" of every projection, in f32
// arithmetic over f32/bf16/f16 weights.
#include "kernels/cpu/Matrix.h"

namespace kt {
class ThreadPool;
}

namespace kt::cpu {

// Scalar reference: the definition every faster variant is tested against.
void linearRef(const float* x, int64_t tokens, const MatrixView& w, const float* bias, float* y);

// Threaded over output rows; each weight row is converted once and applied to all tokens so the
// weight is streamed from memory exactly once per call.
void linear(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w, const float* bias,
            float* y);

} // namespace kt::cpu
