#include "kernels/cpu/MoeRouting.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kt::cpu {

namespace {
// Indices of the k largest values (ties: lower index first, as torch.topk on CPU).
std::vector<int> topkIndices(const std::vector<float>& v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return v[size_t(a)] > v[size_t(b)] || (v[size_t(a)] == v[size_t(b)] && a < b);
  });
  idx.resize(size_t(k));
  return idx;
}
} // namespace

void routeToken(const float* logits, const float* bias, const MoeRoutingParams& p, int* experts,
                float* weights) {
  const int e = p.numExperts;
  std::vector<float> scores(static_cast<size_t>(e));
  if (p.scoring == MoeScoring::Softmax) {
    float mx = *std::max_element(logits, logits + e), sum = 0.f;
    for (int i = 0; i < e; ++i)
      sum += (scores[size_t(i)] = std::exp(logits[i] - mx));
    for (float& s : scores)
      s /= sum;
  } else {
    for (int i = 0; i < e; ++i)
      scores[size_t(i)] = 1.0f / (1.0f + std::exp(-logits[i]));
  }
  // Selection scores: the bias (DeepSeek-V3's load-balancing correction) only steers the choice;
  // the weights come from the unbiased scores.
  std::vector<float> choice = scores;
  if (bias)
    for (int i = 0; i < e; ++i)
      choice[size_t(i)] += bias[i];

  if (p.method != MoeTopk::Greedy && p.nGroup > 1) {
    const int perGroup = e / p.nGroup;
    std::vector<float> groupScore(size_t(p.nGroup));
    for (int g = 0; g < p.nGroup; ++g) {
      const float* b = choice.data() + g * perGroup;
      if (p.method == MoeTopk::GroupLimitedGreedy) {
        groupScore[size_t(g)] = *std::max_element(b, b + perGroup); // DeepSeek-V2: best expert
      } else {                                                      // noaux_tc: sum of the top two
        std::vector<float> grp(b, b + perGroup);
        std::vector<int> top2 = topkIndices(grp, std::min(2, perGroup));
        float s = 0.f;
        for (int i : top2)
          s += grp[size_t(i)];
        groupScore[size_t(g)] = s;
      }
    }
    std::vector<int> keep = topkIndices(groupScore, p.topkGroup);
    std::vector<bool> kept(size_t(p.nGroup), false);
    for (int g : keep)
      kept[size_t(g)] = true;
    // Experts of dropped groups are masked to 0.0 (not -inf), exactly as the reference does.
    for (int i = 0; i < e; ++i)
      if (!kept[size_t(i / perGroup)])
        choice[size_t(i)] = 0.0f;
  }
  std::vector<int> top = topkIndices(choice, p.topK);
  float sum = 0.f;
  for (int k = 0; k < p.topK; ++k) {
    experts[k] = top[size_t(k)];
    weights[k] = scores[size_t(top[size_t(k)])];
    sum += weights[k];
  }
  if (p.normTopkProb)
    for (int k = 0; k < p.topK; ++k)
      weights[k] /= (sum + 1e-20f);
  for (int k = 0; k < p.topK; ++k)
    weights[k] = float(weights[k] * p.routedScalingFactor);
}

} // namespace kt::cpu
