// lm_head + mean causal cross-entropy. For a predicted position with logits l = x·Wᵀ and target c:
//   loss = logsumexp(l) - l_c,   dl = (softmax(l) - onehot(c)) / N,   dx = dl · W  (W frozen).
// Logits exist only for a chunk of predicted positions at a time (vocabularies are large).
#include "kernels/cpu/grad/Detail.h"
#include "kernels/cpu/grad/Kernels.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

namespace kt::cpu::grad {

namespace {
// Logits per chunk (64 MiB in f32). Each chunk streams (and, for packed weights, converts) the
// whole lm_head once in the backward, so fewer, larger chunks save that: 163 rows of a 102,400-word
// vocabulary (2 chunks for a 256-token step), 524 rows of a 32,000-word one.
constexpr int64_t kChunkLogits = int64_t(1) << 24;

} // namespace

void predictedRows(const int32_t* labels, int64_t batch, int64_t seqLen, int64_t vocab,
                   std::vector<int32_t>* rows, std::vector<int32_t>* targets) {
  // Position t of a sequence predicts the sequence's token t + 1 (Hugging Face's shift).
  rows->clear();
  targets->clear();
  for (int64_t r = 0; r < batch * seqLen; ++r) {
    if (r % seqLen == seqLen - 1)
      continue;
    const int32_t c = labels[r + 1];
    if (c == kIgnoreIndex)
      continue;
    if (c < 0 || c >= vocab)
      throw Error("cross-entropy: label " + std::to_string(c) + " at row " + std::to_string(r + 1) +
                  " is outside the vocabulary of " + std::to_string(vocab));
    rows->push_back(int32_t(r));
    targets->push_back(c);
  }
}

namespace {

template <class T>
LossResult crossEntropy(ThreadPool& pool, const MatrixView& lmHead, const T* x, int64_t batch,
                        int64_t seqLen, const int32_t* labels, T* dx, int64_t normalizer) {
  const int64_t rows = batch * seqLen, H = lmHead.cols, V = lmHead.rows;
  std::vector<int32_t> pos, target;
  predictedRows(labels, batch, seqLen, V, &pos, &target);
  if (dx)
    std::fill(dx, dx + rows * H, T(0));
  LossResult res;
  res.count = int64_t(pos.size());
  if (pos.empty())
    return res;
  const double norm = normalizer > 0 ? double(normalizer) : double(res.count);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(res.count, kChunkLogits / V));
  // The logits chunk (up to 64 MiB) outlives the call: a fresh one per step would be mapped and
  // zero-filled page by page each time, which cost more than its softmax on a VM.
  thread_local std::vector<T> logitsBuffer;
  std::vector<T> xs, dxs;
  std::vector<double> rowLoss(static_cast<size_t>(chunk));
  double sum = 0;
  for (int64_t c0 = 0; c0 < res.count; c0 += chunk) {
    const int64_t n = std::min(chunk, res.count - c0);
    xs.resize(size_t(n * H));
    if (logitsBuffer.size() < size_t(n * V))
      logitsBuffer.resize(size_t(n * V));
    T* logits = logitsBuffer.data();
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(x + pos[size_t(c0 + i)] * H, H, xs.data() + i * H);
    detail::matmulXWt(pool, xs.data(), n, lmHead, MatrixView{}, logits);
    pool.parallelFor(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T* l = logits + i * V;
        const int32_t c = target[size_t(c0 + i)];
        const T lc = l[c];
        // One exp per logit: l := exp(l - max) (the logits chunk is scratch), then scaled by
        // 1/(sum·N) into softmax / N. f32 runs the vectorized exp (Kernels.h).
        T mx, s = 0;
        if constexpr (std::is_same_v<T, float>) {
          const kernels::ExpSum es = kernels::expShift(kernels::bestPath(), l, V);
          mx = es.max;
          s = es.sum;
        } else {
          mx = *std::max_element(l, l + V);
          for (int64_t j = 0; j < V; ++j)
            s += (l[j] = std::exp(l[j] - mx));
        }
        rowLoss[size_t(i)] = double(mx + std::log(s) - lc);
        if (!dx)
          continue;
        const T inv = T(1.0 / norm), scale = inv / s;
        for (int64_t j = 0; j < V; ++j)
          l[j] *= scale;
        l[c] -= inv;
      }
    });
    for (int64_t i = 0; i < n; ++i)
      sum += rowLoss[size_t(i)]; // fixed order: deterministic
    if (!dx)
      continue;
    dxs.resize(size_t(n * H));
    detail::matmulDyW(pool, logits, n, lmHead, dxs.data(), false);
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(dxs.data() + i * H, H, dx + pos[size_t(c0 + i)] * H);
  }
  res.loss = sum / norm;
  return res;
}
} // namespace

template <class T>
LossResult lmHeadLossForward(ThreadPool& pool, const MatrixView& lmHead, const T* x, int64_t batch,
                             int64_t seqLen, const int32_t* labels, int64_t normalizer) {
  return crossEntropy(pool, lmHead, x, batch, seqLen, labels, static_cast<T*>(nullptr), normalizer);
}

template <class T>
LossResult lmHeadLossBackward(ThreadPool& pool, const MatrixView& lmHead, const T* x, int64_t batch,
                              int64_t seqLen, const int32_t* labels, T* dx, int64_t normalizer) {
  return crossEntropy(pool, lmHead, x, batch, seqLen, labels, dx, normalizer);
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template LossResult lmHeadLossForward<T>(ThreadPool&, const MatrixView&, const T*, int64_t,      \
                                           int64_t, const int32_t*, int64_t);                      \
  template LossResult lmHeadLossBackward<T>(ThreadPool&, const MatrixView&, const T*, int64_t,     \
                                            int64_t, const int32_t*, T*, int64_t);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
