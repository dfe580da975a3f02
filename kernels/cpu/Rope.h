#pragma once
// Rotary position embeddings: default, linear, Llama-3 and YaRN frequency schedules, applied to
// pairs of either halves (x[i], x[i + d/2]) or interleaved neighbours (x[2i], x[2i+1]).
#include <cstdint>
#include <vector>

namespace kt::cpu {

enum class RopeType { Default, Linear, Yarn, Llama3 };

struct RopeParams {
  RopeType type = RopeType::Default;
  int dim = 0;
  double theta = 10000.0;
  double factor = 1.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 32.0, betaSlow = 1.0;
  double lowFreqFactor = 1.0, highFreqFactor = 4.0;
  double attentionFactor = 1.0; // scales cos and sin (YaRN)
  bool interleaved = false;
};

// The dim/2 inverse frequencies of the schedule (as Hugging Face's rope init functions compute
// them).
std::vector<float> ropeInvFreq(const RopeParams& p);

// Rotates `heads` vectors of length `stride` at x (the rotated part starts at `offset` and is
// p.dim long) for one token at `position`. invFreq from ropeInvFreq.
void applyRope(float* x, int heads, int64_t stride, int64_t offset, int64_t position,
               const RopeParams& p, const std::vector<float>& invFreq);

} // namespace kt::cpu
