#pragma once
// Predicted speed of a placement: per unit and per device time of one decode step and of one
// prefill, link transfers, and tokens per second. The partitioner scores its choices with the
// same functions, and --explain prints the result.
#include "compiler/cost/CostModel.h"

#include <map>
#include <string>
#include <vector>

namespace kt::cost {

// Where everything goes (what kt-partition writes back as attributes).
struct Assignment {
  std::vector<std::string> unitDevice;                // per unit
  std::vector<std::vector<std::string>> expertDevice; // per unit, per routed expert (MoE only)
  // Per unit: prompts of at least this many tokens stream the unit's CPU-held experts to
  // `offloadDevice` for prefill instead of computing them on the CPU; 0 = never.
  std::vector<int64_t> prefillOffloadMinTokens;
  std::string offloadDevice;   // "" when there is no GPU to stream to
  std::vector<double> kvBytes; // per unit (attention: reserved cache)
};

struct PredictOptions {
  int64_t promptLen = 512; // prefill of P tokens, then decode with P cached positions
  int64_t decodeBatch = 1; // sequences decoded together
};

// One line of the --explain table.
struct Row {
  int layer = -1;
  std::string group;  // "attention", "routed experts", ...
  std::string device; // "gpu:0", or "2 gpu:0 / 14 cpu" for routed experts
  double weightBytes = 0;
  double kvBytes = 0;
  double decodeSeconds = 0;                    // this row's share of one decode step
  double prefillSeconds = 0;                   // this row's share of one prefill
  std::map<std::string, int> expertsPerDevice; // routed experts only
  int64_t prefillOffloadMinTokens = 0;         // routed experts only
};

struct DeviceUse {
  std::string device;
  double weightBytes = 0, kvBytes = 0, budgetBytes = 0;
  double decodeBusySeconds = 0, prefillBusySeconds = 0; // work done on it
};

struct Prediction {
  std::vector<Row> rows;
  std::vector<DeviceUse> devices;
  double decodeStepSeconds = 0, prefillSeconds = 0;
  double decodeTransferSeconds = 0, prefillTransferSeconds = 0;
  double decodeTokensPerSecond = 0, prefillTokensPerSecond = 0;
  Shape decode, prefill;
};

// Human-readable group name of a unit ("attention", "dense mlp", ...).
std::string groupName(const Unit& u);

// The predicted seconds of one step of shape `s` (a prefill when `prefill`): what the partitioner
// minimises when it refines its greedy placement.
double predictStepSeconds(const ModelGraph& g, const CostModel& cost, const Assignment& a,
                          const Shape& s, bool prefill);

// `budgets` (device spec -> bytes) is copied into Prediction::devices for the explain table.
Prediction predict(const ModelGraph& g, const CostModel& cost, const Assignment& a,
                   const PredictOptions& opts, const std::map<std::string, double>& budgets);

} // namespace kt::cost
