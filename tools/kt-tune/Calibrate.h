#pragma once
// Expert heat from a calibration text: runs the plan's prefill over windows of the text with the
// MoE steps' "route.<layer>" taps on, and counts how often each routed expert was chosen. The
// result is the --expert-stats file kt-compile reads (compiler/cost/ExpertStats.h).
#include "runtime/exec/Model.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kt::tune {

struct CalibOptions {
  int64_t windowLen = 512; // tokens per prefill window, BOS included when there is one
  int64_t maxTokens = -1;  // cap on the text's tokens (-1: all)
};

// The calibration tokens, and the BOS id that starts every window (-1: none).
struct CalibInput {
  std::vector<int32_t> ids;
  int32_t bos = -1;
};

struct ExpertCounts {
  int64_t tokens = 0;      // rows routed through each MoE layer (every window token, BOS included)
  int64_t windows = 0;     // prefill runs
  std::map<int, int> topK; // layer -> experts per token
  std::map<int, std::vector<int64_t>> perExpert; // layer -> how often each expert was chosen
  // layer -> the sum over windows of the share of that window's choices that its busiest quarter
  // of experts took (one sequence routes far more unevenly than the whole set: the
  // random-weight DeepSeek-V2-Lite's deep layers 56-66% in one window, 34-39% over eight).
  std::map<int, double> windowShareSum;
};

// Share of the counted choices that the busiest quarter of the experts (at least one) took
// (cost::busiestQuarterShare over the counts).
double busiestQuarterShare(const std::vector<int64_t>& counts);

// Every MoE step of the plan's prefill: layer (MoeAttrs.layer) -> {num_experts, experts_per_token}.
// Throws kt::Error when the plan has no MoE layer (nothing to count) or a MoE step lacks its layer.
std::map<int, std::pair<int, int>> moeLayers(const LoadedPlan& plan);

// The calibration input: `textPath` through the plan's tokenizer (windows start with its BOS), or
// `idsPath` (token ids separated by white space, for plans without a tokenizer; no BOS is added).
// Throws kt::Error naming the file (missing, empty, an id that is not a number or outside the
// vocabulary, no tokenizer).
CalibInput calibrationInput(const Model& model, const std::string& textPath,
                            const std::string& idsPath);

// Runs the input through prefill in windows and counts each layer's expert choices. `progress`
// (may be empty) is called after each window with the tokens done so far.
ExpertCounts countExpertActivations(Model& model, const CalibInput& input, const CalibOptions& opts,
                                    const std::function<void(int64_t, int64_t)>& progress);

// The --expert-stats JSON: {"model": ..., "tokens": N, "windows": W, "layers": {"1": [...], ...},
// "window_busiest_quarter": {"1": mean share over the windows, ...}}.
std::string expertStatsJson(const ExpertCounts& counts, const std::string& modelName);

} // namespace kt::tune
