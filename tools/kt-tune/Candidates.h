#pragma once
// kt-tune's placement search: the kt-compile --hw flags worth trying (experts per MoE layer on the
// GPU from 0 up to what fits, plus the partitioner's own choice; prefill offload never, always,
// auto; uniform routing or the measured expert heat), each placed by the same partitioner and
// scored by the same cost model kt-compile uses, ranked by predicted decode speed.
#include "compiler/cost/Partitioner.h"

#include <functional>
#include <string>
#include <vector>

namespace kt::tune {

struct Candidate {
  // The flags that produce it.
  bool measuredStats = false; // --expert-stats (the calibration's counts) vs uniform routing
  int expertsOnGpu = -1;      // --experts-on-gpu N; -1 = auto
  cost::PrefillOffload offload = cost::PrefillOffload::Auto;
  // What the partitioner made of them.
  cost::PartitionResult result;
  double gpuBytes = 0, cpuBytes = 0;        // weights + KV cache on accelerators / on CPU nodes
  int gpuExpertsMin = 0, gpuExpertsMax = 0; // routed experts per MoE layer on accelerators
  bool usesAccelerator = false;             // anything (unit, expert, prefill offload) off the CPU
  int sameAs = -1; // index (in rank order) of an earlier candidate with the same placement

  // Filled by the measurement (kt-rt bench's code) for the best few.
  bool measured = false;
  std::string skipped; // why it was not measured ("" when measured or not tried)
  double measuredPrefillTokS = 0, measuredDecodeTokS = 0;

  double decodeTokS() const { return result.prediction.decodeTokensPerSecond; }
  double prefillTokS() const { return result.prediction.prefillTokensPerSecond; }
  std::string expertsText() const; // "auto", "4"
  std::string offloadText() const; // "auto", "never", "always"
};

struct SearchOptions {
  cost::PartitionOptions base; // budgets, prompt length, batch, kv tokens, overrides
  int maxExpertValues = 12;    // experts-on-gpu values tried at most (evenly spread when more fit)
};

// Runs the partitioner for every candidate over `uniform` (and `measured` when not null: the same
// model built with the calibration's stats). Returns them ranked: predicted decode tok/s, then
// prefill tok/s, then fewer GPU bytes; duplicates of a placement are kept but point at the first
// (sameAs). Fails with *error when not even the plainest candidate can be placed (the partitioner's
// error: the model does not fit the budgets).
bool searchPlacements(const cost::ModelGraph& uniform, const cost::ModelGraph* measured,
                      const cost::CostModel& cost, const SearchOptions& options,
                      const std::function<void(const std::string&)>& progress,
                      std::vector<Candidate>* ranked, std::string* error);

// The ranked table (one line per candidate) for the terminal.
std::string candidateTable(const std::vector<Candidate>& ranked, size_t maxRows);

} // namespace kt::tune
