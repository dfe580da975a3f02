#pragma once
// The partitioner: decides which device holds each unit of a model and each routed expert, under
// per-device memory budgets, to minimise the predicted decode time; then, per MoE layer, from which
// prompt length prefill should stream the CPU-held experts to the GPU instead of computing them on
// the CPU. The algorithm (docs/cost-model.md):
//   1. pinned units/experts (placement overrides, placements already in the IR) go first;
//   2. every other unit and expert is an item with a size (weights, plus the KV cache for
//      attention) and a benefit (predicted decode time on the CPU minus on the accelerator);
//      items are taken greedily by benefit per byte onto the accelerator that gains most and
//      still has room — so attention, dense MLPs and shared experts (used by every token) come
//      before routed experts, and hot experts before cold ones;
//   3. everything else goes to the CPU: non-expert units on NUMA node 0, routed experts spread
//      over the NUMA nodes to balance their expected load; if the CPU budget is too small even so,
//      partition() fails with an error that says by how much and what to change.
#include "compiler/cost/CostModel.h"
#include "compiler/cost/Predict.h"

#include <map>
#include <string>
#include <vector>

namespace kt::cost {

enum class PrefillOffload { Auto, Never, Always };
bool parsePrefillOffload(const std::string& text, PrefillOffload* out);

struct PlacementOverride {
  std::string pattern; // ECMAScript regex, searched in weight symbols and Hugging Face names
  std::string device;  // a device of the profile
};
// "REGEX=DEVICE" (split at the last '=', so the regex may contain '=').
bool parsePlacementOverride(const std::string& text, PlacementOverride* out, std::string* why);

struct PartitionOptions {
  double gpuMemBytes = -1; // budget of each GPU; < 0: its memory minus its reserve
  double cpuMemBytes = -1; // all NUMA nodes together; < 0: their memory minus the reserve
  int expertsOnGpu = -1;   // routed experts per MoE layer on accelerators; -1 = auto
  PrefillOffload prefillOffload = PrefillOffload::Auto;
  int64_t promptLen = 512; // P: the prefill that is predicted, and decode's context
  int64_t decodeBatch = 1; // sequences decoded together
  int64_t kvTokens = 4096; // KV-cache positions reserved per sequence
  std::vector<PlacementOverride> overrides; // later ones win
  // GPU memory kept for the runtime's activations: f32 rows of the hidden size per prompt token
  // (0: none, the abstract model of hand-written modules; kt-compile's pass sets 40).
  double activationRowsPerToken = 0;
};

struct PartitionResult {
  Assignment assignment;
  Prediction prediction;
  std::map<std::string, double> budgets; // device spec -> bytes
  std::vector<std::string> notes;        // things the user should know (shown by --explain)
};

// GPU bytes of one of kt-rt's two prefill-offload streaming slots for unit `u`'s experts
// (runtime/exec/cuda/ExpertStream): CPU-packed (--cpu-quant) experts cross PCIe packed and are
// widened on the GPU, so the slot holds the packed expert plus the widened one (bf16, or f32 when
// the GPU keeps the experts f32: expertFlopsPerToken / 2 weights); otherwise one expert in the
// larger of its CPU and GPU forms.
double streamingSlotBytes(const Unit& u);

// Places `g` on the devices of `cost`'s profile. Fails (false, *error set) when a pin names a
// device the profile lacks or cannot run the op, when pins overflow a budget, or when the model
// does not fit in CPU + accelerator memory.
bool partition(const ModelGraph& g, const CostModel& cost, const PartitionOptions& options,
               PartitionResult* result, std::string* error);

} // namespace kt::cost
