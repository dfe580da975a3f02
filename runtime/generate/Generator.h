#pragma once
// Batched generation with the KV cache: one prefill over every prompt, then one decode step per
// new token for all sequences still running.
#include "runtime/exec/Model.h"
#include "runtime/generate/Sampler.h"

#include <functional>
#include <vector>

namespace kt {

struct GenerateRequest {
  std::vector<std::vector<int32_t>> prompts;
  int maxNewTokens = 16;
  SamplerConfig sampling;
  std::vector<int32_t> stopIds; // a sequence ends after emitting one of these (EOS)
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> newIds;
  int64_t prefillTokens = 0, decodeTokens = 0;
  double prefillSeconds = 0, decodeSeconds = 0;
  double prefillTokPerSec() const {
    return prefillSeconds > 0 ? double(prefillTokens) / prefillSeconds : 0;
  }
  double decodeTokPerSec() const {
    return decodeSeconds > 0 ? double(decodeTokens) / decodeSeconds : 0;
  }
};

struct GenerateCallbacks {
  // A new token for sequence `seq`; return false to stop that sequence.
  std::function<bool(int seq, int32_t id)> onToken;
  // The logits row that chose the next token of `seq` (for parity tests and debugging).
  std::function<void(int seq, const float* logits, int64_t vocab)> onLogits;
  // Polled between steps: return true to stop everything (Ctrl-C).
  std::function<bool()> cancelled;
};

GenerateResult generate(Model& model, const GenerateRequest& req, const GenerateCallbacks& cb = {});

// One forward pass over whole sequences (no generation): logits for every position of each.
// `taps` receives intermediate values (name, sequence, rows) when set.
std::vector<std::vector<float>>
scoreSequences(Model& model, const std::vector<std::vector<int32_t>>& seqs,
               const std::function<void(const std::string& name, int seq, const float* rows,
                                        int64_t n, int64_t cols)>& taps = {});

} // namespace kt
