#pragma once
// MoE router: turns router logits into (expert, weight) pairs per token, for every routing variant
// of the supported model families.
#include <cstdint>
#include <vector>

namespace kt::cpu {

enum class MoeScoring { Softmax, Sigmoid };
enum class MoeTopk { Greedy, GroupLimitedGreedy, NoauxTc };

struct MoeRoutingParams {
  int numExperts = 0;
  int topK = 0;
  MoeScoring scoring = MoeScoring::Softmax;
  MoeTopk method = MoeTopk::Greedy;
  int nGroup = 1;
  int topkGroup = 1;
  bool normTopkProb = false;
  double routedScalingFactor = 1.0;
};

// logits: [numExperts] for one token; bias: correction bias [numExperts] or nullptr.
// Writes topK expert ids and weights.
void routeToken(const float* logits, const float* bias, const MoeRoutingParams& p, int* experts,
                float* weights);

} // namespace kt::cpu
