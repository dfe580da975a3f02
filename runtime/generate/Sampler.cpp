#include "runtime/generate/Sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace kt {

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best])
      best = i; // first maximum wins, like torch.argmax
  return int32_t(best);
}

int32_t Sampler::sample(const float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  std::vector<float> l(logits, logits + vocab);
  if (c_.repetitionPenalty != 1.0) {
    // As in transformers: divide positive logits, multiply negative ones, once per distinct token.
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen)
      if (id >= 0 && id < vocab)
        l[size_t(id)] = l[size_t(id)] > 0 ? float(l[size_t(id)] / c_.repetitionPenalty)
                                          : float(l[size_t(id)] * c_.repetitionPenalty);
  }
  if (c_.temperature <= 0.0)
    return argmax(l.data(), vocab);

  // Only tokens within 25 temperature-scaled nats of the best can matter (relative probability
  // e^-25 ~ 1e-11); sorting just those keeps sampling cheap for large vocabularies.
  float best = *std::max_element(l.begin(), l.end());
  float floor = best - float(25.0 * c_.temperature);
  std::vector<int32_t> idx;
  for (int64_t i = 0; i < vocab; ++i)
    if (l[size_t(i)] >= floor)
      idx.push_back(int32_t(i));
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b);
  });
  size_t keep = idx.size();
  if (c_.topK > 0)
    keep = std::min(keep, size_t(c_.topK));
  std::vector<double> p(keep);
  double mx = l[size_t(idx[0])], sum = 0;
  for (size_t i = 0; i < keep; ++i)
    sum += (p[i] = std::exp((l[size_t(idx[i])] - mx) / c_.temperature));
  for (double& x : p)
    x /= sum;
  if (c_.minP > 0) { // drop tokens less likely than min_p times the best one
    size_t k = 1;
    while (k < keep && p[k] >= c_.minP * p[0])
      ++k;
    keep = k;
  }
  if (c_.topP < 1.0) { // smallest prefix whose mass reaches top_p
    double cum = 0;
    size_t k = 0;
    while (k < keep) {
      cum += p[k++];
      if (cum >= c_.topP)
        break;
    }
    keep = k;
  }
  std::discrete_distribution<size_t> dist(p.begin(), p.begin() + std::ptrdiff_t(keep));
  return idx[dist(rng_)];
}

} // namespace kt
