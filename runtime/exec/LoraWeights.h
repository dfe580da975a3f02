#pragma once
// LoRA adapters at inference (plans of kt-compile --adapter DIR --adapter-unmerged): the base
// weights stay as compiled (packed, quantized) and the CPU ops add each projection's adapter,
// y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ, with the training kernels' forward (kernels/cpu/grad), so inference
// and training apply an adapter with the same code.
//
// Also the plan-side helpers that the training runtime (runtime/train) shares: which rows of an
// adapter a step's weight slot is, PEFT's fused-expert B layout, an adapter tensor as f32.
#include "kernels/cpu/grad/Grad.h"
#include "runtime/plan/PlanReader.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kt {

class WeightStore;

// The target of Step.adapters[slot] that is the slot's weight: the adapter's output rows
// [row_offset, row_offset + rows) update it. Null when the slot has no adapter; throws kt::Error
// naming the step when the adapter does not target the slot's weight.
const plan::AdapterTarget* adapterTargetOf(const LoadedPlan& plan, const plan::Step& step,
                                           int slot);

// PEFT's fused-expert B [out, E·r] (expert e's column j at j·E + e) as expert-major [E, out, r],
// where expert e's B is one contiguous [out, r] matrix; for E = 1 both layouts are the same.
void peftBToExpertMajor(const float* peft, int experts, int64_t out, int r, float* expertMajor);

// Plan weight `id` (an adapter's A or B) as f32; throws naming `what` unless it holds n values.
std::vector<float> adapterTensorF32(const WeightStore& weights, int32_t id, int64_t n,
                                    const std::string& what);

// The adapters of a plan's inference entry points, with their values from Adapter.init_a/init_b.
class LoraWeights {
public:
  // Whether a prefill/decode step of `plan` has Step.adapters (train_step's are kt-rt train's).
  static bool neededBy(const LoadedPlan& plan);
  // Reads every adapter's A and B; throws kt::Error naming the adapter when the plan gives it no
  // values (a train plan's adapters are trained, not stored) or a step's slot is not a target.
  LoraWeights(const LoadedPlan& plan, const WeightStore& weights);
  LoraWeights(const LoraWeights&) = delete;
  LoraWeights& operator=(const LoraWeights&) = delete;

  // The adapter on weight slot `slot` of `step` for routed expert `expert` (0 unless stacked);
  // null when the slot has none.
  const cpu::grad::Lora* get(const plan::Step& step, int slot, int64_t expert) const;
  // Whether `step` has any adapter.
  static bool any(const plan::Step& step);

private:
  struct Values {
    std::vector<float> A, B; // A [E·r, in] as PEFT stores it; B expert-major [E, out, r]
  };
  std::vector<Values> values_;
  // (step, slot) -> one Lora per expert (one for a plain projection)
  std::map<std::pair<const plan::Step*, int>, std::vector<cpu::grad::Lora>> slots_;
};

} // namespace kt
