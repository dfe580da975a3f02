#pragma once
// What kt-tune prints and writes besides the candidate table: a per-layer summary of the measured
// expert heat, predicted-vs-measured for the candidates it ran, the winner, and --report-json.
#include "compiler/pipeline/Pipeline.h"
#include "tools/kt-tune/Calibrate.h"
#include "tools/kt-tune/Candidates.h"

#include <string>
#include <vector>

namespace kt::tune {

// One line per MoE layer: the hottest and coldest experts' share of the choices, and how much of
// the traffic the hottest quarter of the experts takes (what putting them on the GPU would cover).
std::string heatSummary(const ExpertCounts& counts);

// Predicted and measured tok/s of every candidate that was measured or skipped.
std::string measuredTable(const std::vector<Candidate>& ranked);

struct Winner {
  int rank = 0;       // index into the ranked candidates
  std::string reason; // "fastest measured decode", "best predicted decode (none measured)"
};
// The fastest measured decode; the best prediction when nothing was measured.
Winner pickWinner(const std::vector<Candidate>& ranked);

struct ReportInfo {
  std::string model, profile, statsPath;
  int64_t tokens = 0, windows = 0;
  std::string commandLine; // the winner as a kt-compile command
  Winner winner;
};
std::string reportJson(const ReportInfo& info, const std::vector<Candidate>& ranked,
                       const compiler::CompileOptions& base, const std::string& statsPath);

} // namespace kt::tune
