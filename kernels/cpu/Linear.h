#pragma once
// y[t, n] = sum_k x[t, k] * W[n, k] (+ bias[n]) — the "linear" of every projection, in f32
// arithmetic over f32/bf16/f16 weights.
#include "kernels/cpu/Matrix.h"

#include <memory>
#include <vector>

namespace kt {
class ThreadPool;
}

namespace kt::cpu {

// Scalar reference: the definition every faster variant is tested against.
void linearRef(const float* x, int64_t tokens, const MatrixView& w, const float* bias, float* y);

// Threaded over output rows; each weight row is converted once and applied to all tokens so the
// weight is streamed from memory exactly once per call.
void linear(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w,
            const float* bias, float* y);

// Two linears of the same input in one parallel region (no bias): y1 = x·W1ᵀ, y2 = x·W2ᵀ. A decode
// step's small projections (MLA's q and kv_a) each cost a fork/join of the pool otherwise.
void linearPair(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w1, float* y1,
                const MatrixView& w2, float* y2);
// The same for `count` linears of x (GQA's q, k and v): y_i = x·W_iᵀ (+ bias_i when given).
struct LinearOut {
  MatrixView w;
  float* y;
  const float* bias = nullptr; // [w.rows], or none
};
void linearGroup(ThreadPool& pool, const float* x, int64_t tokens, const LinearOut* outs,
                 int count);

// Activations converted once for a weight's kernel (packed formats want bf16 or int8 activations),
// so several threads can each compute a range of output rows from the same input.
struct PreparedInput {
  const float* x = nullptr;
  int64_t tokens = 0, k = 0;
  int32_t packed = -1; // the packed format the activations were prepared for; -1: plain f32
  const uint8_t* act = nullptr;
  std::unique_ptr<uint8_t[]> storage; // not value-initialized: zeroed once, in parallel if asked
};
// With `pool`, a prefill's rows are converted over its threads: one thread took ~1.5 ms for
// Qwen3-30B-A3B's o_proj input (512 x 4096 int8) while 15 Xeon cores waited, as long as the
// product itself (ninth device run, docs/cost-model.md).
void prepareInput(const MatrixView& w, const float* x, int64_t tokens, PreparedInput* out,
                  ThreadPool* pool = nullptr);
// y[t, r] (row stride w.rows) for output rows [r0, r1) of w, on the calling thread.
void linearRows(const MatrixView& w, const PreparedInput& in, float* y, int64_t r0, int64_t r1);

} // namespace kt::cpu
