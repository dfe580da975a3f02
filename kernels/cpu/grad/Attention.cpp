// Causal softmax attention over B independent sequences, forward and backward.
// Per query row t (keys s ≤ t): S_s = scale·q·k_s, P = softmax(S), o = Σ_s P_s v_s. Backward:
//   dP_s = do·v_s,  D = Σ_s P_s dP_s (= do·o),  dS_s = P_s (dP_s - D),
//   dq = scale Σ_s dS_s k_s,  dk_s += scale dS_s q,  dv_s += P_s do.
// The probabilities are recomputed row by row (O(L) scratch), never stored as [L, L].
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace kt::cpu::grad::detail {

namespace {
template <class T> T dot(const T* a, const T* b, int n) {
  if constexpr (std::is_same_v<T, float>)
    return dotF32(a, b, n); // a single chain would not vectorize: eight partial sums
  T acc = 0;
  for (int i = 0; i < n; ++i)
    acc += a[i] * b[i];
  return acc;
}

// y += alpha·x through the AVX-512/AVX2 clones in f32 (this file is compiled for the baseline ISA).
template <class T> void axpy(T alpha, const T* x, T* y, int n) {
  if constexpr (std::is_same_v<T, float>) {
    axpyF32(alpha, x, y, n);
  } else {
    for (int i = 0; i < n; ++i)
      y[i] += alpha * x[i];
  }
}

// Scores of query row (b, t, h) against keys 0..t, softmax-normalized in place into p[0..t].
template <class T>
void probabilities(const AttnShape& s, const T* q, const T* k, int64_t b, int64_t t, int h, T* p) {
  const int group = s.heads / s.kvHeads, kvh = h / group;
  const int64_t qRow = int64_t(s.heads) * s.qkDim, kRow = int64_t(s.kvHeads) * s.qkDim;
  const T* qv = q + (b * s.seqLen + t) * qRow + int64_t(h) * s.qkDim;
  const T* kb = k + b * s.seqLen * kRow + int64_t(kvh) * s.qkDim;
  T mx = -INFINITY;
  for (int64_t j = 0; j <= t; ++j) {
    p[j] = dot(qv, kb + j * kRow, s.qkDim) * T(s.scale);
    mx = std::max(mx, p[j]);
  }
  T sum = 0;
  for (int64_t j = 0; j <= t; ++j)
    sum += (p[j] = std::exp(p[j] - mx));
  T inv = T(1) / sum;
  for (int64_t j = 0; j <= t; ++j)
    p[j] *= inv;
}
} // namespace

template <class T>
void attentionForward(ThreadPool& pool, const AttnShape& s, const T* q, const T* k, const T* v,
                      T* ctx) {
  if constexpr (std::is_same_v<T, float>) {
    if (s.qkDim == s.vDim) { // GQA: the inference kernel, each sequence as a fresh prompt
      const int64_t qRow = int64_t(s.heads) * s.qkDim, kRow = int64_t(s.kvHeads) * s.qkDim;
      for (int64_t b = 0; b < s.batch; ++b)
        cpu::gqaAttention(pool, q + b * s.seqLen * qRow, s.seqLen, s.heads, s.kvHeads, s.qkDim,
                          k + b * s.seqLen * kRow, v + b * s.seqLen * kRow, 0, s.scale,
                          ctx + b * s.seqLen * qRow);
      return;
    }
  }
  const int64_t vRow = int64_t(s.kvHeads) * s.vDim, oRow = int64_t(s.heads) * s.vDim;
  const int group = s.heads / s.kvHeads;
  pool.parallelFor(s.batch * s.seqLen * s.heads, 1, [&](int64_t j0, int64_t j1) {
    std::vector<T> p(size_t(s.seqLen));
    for (int64_t job = j0; job < j1; ++job) {
      const int h = int(job % s.heads);
      const int64_t row = job / s.heads, b = row / s.seqLen, t = row % s.seqLen;
      probabilities(s, q, k, b, t, h, p.data());
      T* o = ctx + row * oRow + int64_t(h) * s.vDim;
      std::fill(o, o + s.vDim, T(0));
      const T* vb = v + b * s.seqLen * vRow + int64_t(h / group) * s.vDim;
      for (int64_t j = 0; j <= t; ++j)
        axpy(p[size_t(j)], vb + j * vRow, o, s.vDim);
    }
  });
}

template <class T>
void attentionBackward(ThreadPool& pool, const AttnShape& s, const T* q, const T* k, const T* v,
                       const T* dctx, T* dq, T* dk, T* dv) {
  const int64_t qRow = int64_t(s.heads) * s.qkDim, kRow = int64_t(s.kvHeads) * s.qkDim;
  const int64_t vRow = int64_t(s.kvHeads) * s.vDim, oRow = int64_t(s.heads) * s.vDim;
  const int group = s.heads / s.kvHeads;
  // One task per (sequence, kv head): it owns dk/dv of that head and dq of the heads sharing it,
  // so no two tasks write the same element.
  pool.parallelFor(s.batch * s.kvHeads, 1, [&](int64_t j0, int64_t j1) {
    std::vector<T> p(size_t(s.seqLen)), dp(size_t(s.seqLen));
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t b = job / s.kvHeads;
      const int kvh = int(job % s.kvHeads);
      const T* kb = k + b * s.seqLen * kRow + int64_t(kvh) * s.qkDim;
      const T* vb = v + b * s.seqLen * vRow + int64_t(kvh) * s.vDim;
      T* dkb = dk + b * s.seqLen * kRow + int64_t(kvh) * s.qkDim;
      T* dvb = dv + b * s.seqLen * vRow + int64_t(kvh) * s.vDim;
      for (int64_t j = 0; j < s.seqLen; ++j) {
        std::fill(dkb + j * kRow, dkb + j * kRow + s.qkDim, T(0));
        std::fill(dvb + j * vRow, dvb + j * vRow + s.vDim, T(0));
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int64_t t = 0; t < s.seqLen; ++t) {
          const int64_t row = b * s.seqLen + t;
          probabilities(s, q, k, b, t, h, p.data());
          const T* g = dctx + row * oRow + int64_t(h) * s.vDim;
          const T* qv = q + row * qRow + int64_t(h) * s.qkDim;
          T* dqv = dq + row * qRow + int64_t(h) * s.qkDim;
          T D = 0;
          for (int64_t j = 0; j <= t; ++j) {
            dp[size_t(j)] = dot(g, vb + j * vRow, s.vDim);
            D += p[size_t(j)] * dp[size_t(j)];
          }
          std::fill(dqv, dqv + s.qkDim, T(0));
          for (int64_t j = 0; j <= t; ++j) {
            const T pj = p[size_t(j)], ds = pj * (dp[size_t(j)] - D) * T(s.scale);
            const T* kj = kb + j * kRow;
            T* dkj = dkb + j * kRow;
            T* dvj = dvb + j * vRow;
            axpy(ds, kj, dqv, s.qkDim);
            axpy(ds, qv, dkj, s.qkDim);
            axpy(pj, g, dvj, s.vDim);
          }
        }
    }
  });
}

template void attentionForward<float>(ThreadPool&, const AttnShape&, const float*, const float*,
                                      const float*, float*);
template void attentionForward<double>(ThreadPool&, const AttnShape&, const double*, const double*,
                                       const double*, double*);
template void attentionBackward<float>(ThreadPool&, const AttnShape&, const float*, const float*,
                                       const float*, const float*, float*, float*, float*);
template void attentionBackward<double>(ThreadPool&, const AttnShape&, const double*, const double*,
                                        const double*, const double*, double*, double*, double*);

} // namespace kt::cpu::grad::detail
