#pragma once
// Picks the next token from logits: greedy (temperature 0) or sampling with temperature, top-k,
// top-p, min-p and a repetition penalty, from a seeded generator (reproducible runs).
#include <cstdint>
#include <random>
#include <vector>

namespace kt {

struct SamplerConfig {
  double temperature = 0.0; // 0: greedy argmax
  int topK = 0;             // 0: off
  double topP = 1.0;        // 1: off
  double minP = 0.0;        // 0: off
  double repetitionPenalty = 1.0;
  uint64_t seed = 0;
};

class Sampler {
public:
  explicit Sampler(const SamplerConfig& c) : c_(c), rng_(c.seed) {}
  // `history`: tokens seen so far in this sequence (for the repetition penalty).
  int32_t sample(const float* logits, int64_t vocab, const std::vector<int32_t>& history);

private:
  SamplerConfig c_;
  std::mt19937_64 rng_;
};

int32_t argmax(const float* logits, int64_t n);

} // namespace kt
