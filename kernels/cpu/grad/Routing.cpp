// Differentiable MoE routing weights. With scores s = softmax(l) or σ(l), the selected experts
// e_1..e_K, S = Σ_k s_{e_k} + 1e-20 and ρ the routed scaling factor:
//   w_k = ρ · s_{e_k} [/ S when norm_topk_prob]
// Backward, with g_k = ρ · dw_k:
//   normalized:   ds_{e_k} = g_k / S - (Σ_j g_j s_{e_j}) / S²      (else ds_{e_k} = g_k)
//   softmax:      dl_i = s_i (ds_i - Σ_j ds_j s_j)                 (ds is 0 off the selection)
//   sigmoid:      dl_i = ds_i s_i (1 - s_i)
// The selection (including groups and the correction bias) is routeToken's on the f32 logits.
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/grad/Detail.h"

#include <algorithm>
#include <cmath>

namespace kt::cpu::grad {

namespace {
// The scores exactly as routeToken computes them, in T.
template <class T> std::vector<T> scoresOf(const T* logits, const MoeRoutingParams& p) {
  const int e = p.numExperts;
  std::vector<T> s(static_cast<size_t>(e));
  if (p.scoring == MoeScoring::Softmax) {
    T mx = *std::max_element(logits, logits + e), sum = 0;
    for (int i = 0; i < e; ++i)
      sum += (s[size_t(i)] = std::exp(logits[i] - mx));
    for (T& v : s)
      v /= sum;
  } else {
    for (int i = 0; i < e; ++i)
      s[size_t(i)] = T(1) / (T(1) + std::exp(-logits[i]));
  }
  return s;
}
} // namespace

template <class T>
void routeForward(const T* logits, const float* bias, const MoeRoutingParams& p, int* experts,
                  T* weights) {
  const int e = p.numExperts, k = p.topK;
  std::vector<float> lf(logits, logits + e), wf(static_cast<size_t>(k));
  routeToken(lf.data(), bias, p, experts, wf.data());
  std::vector<T> s = scoresOf(logits, p);
  T sum = 0;
  for (int j = 0; j < k; ++j)
    sum += (weights[j] = s[size_t(experts[j])]);
  if (p.normTopkProb)
    for (int j = 0; j < k; ++j)
      weights[j] /= (sum + T(1e-20));
  for (int j = 0; j < k; ++j)
    weights[j] = T(weights[j] * p.routedScalingFactor);
}

template <class T>
void routeBackward(const T* logits, const MoeRoutingParams& p, const int* experts,
                   const T* dweights, T* dlogits) {
  const int e = p.numExperts, k = p.topK;
  std::vector<T> s = scoresOf(logits, p);
  std::vector<T> ds(static_cast<size_t>(k));
  for (int j = 0; j < k; ++j)
    ds[size_t(j)] = dweights[j] * T(p.routedScalingFactor);
  if (p.normTopkProb) {
    T S = 0, dot = 0;
    for (int j = 0; j < k; ++j) {
      S += s[size_t(experts[j])];
      dot += ds[size_t(j)] * s[size_t(experts[j])];
    }
    S += T(1e-20);
    for (int j = 0; j < k; ++j)
      ds[size_t(j)] = ds[size_t(j)] / S - dot / (S * S);
  }
  std::fill(dlogits, dlogits + e, T(0));
  if (p.scoring == MoeScoring::Softmax) {
    T c = 0;
    for (int j = 0; j < k; ++j)
      c += ds[size_t(j)] * s[size_t(experts[j])];
    for (int i = 0; i < e; ++i)
      dlogits[i] = -s[size_t(i)] * c;
    for (int j = 0; j < k; ++j)
      dlogits[experts[j]] += s[size_t(experts[j])] * ds[size_t(j)];
  } else {
    for (int j = 0; j < k; ++j) {
      const T sj = s[size_t(experts[j])];
      dlogits[experts[j]] = ds[size_t(j)] * sj * (T(1) - sj);
    }
  }
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void routeForward<T>(const T*, const float*, const MoeRoutingParams&, int*, T*);        \
  template void routeBackward<T>(const T*, const MoeRoutingParams&, const int*, const T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
