#pragma once
// The trainable state of a LoRA run: one A/B pair per Plan.adapter (f32), their gradients and
// AdamW moments.
//
// Layout: A is kept as PEFT stores it ([E·r, in]; E = 1 for a plain Linear adapter). B is kept
// expert-major, [E, out, r], so that expert e's B is one contiguous [out, r] matrix the kernels can
// use directly; PEFT's fused-expert B ([out, E·r], expert e's column j at j·E + e) is produced only
// when saving (peftB) and read when loading (setPeftB). For E = 1 both layouts are the same.
#include "runtime/schema/plan_generated.h"
#include "runtime/train/Optimizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kt {
class WeightStore;
}

namespace kt::train {

struct AdapterState {
  std::string name; // PEFT module path (its tensors are NAME.lora_A.weight / NAME.lora_B.weight)
  bool expertsFused = false;
  int r = 0;
  double alpha = 0;
  int64_t in = 0, out = 0;
  int experts = 1;     // E
  bool gateUp = false; // fused experts: PEFT's gate_up_proj adapter (targets gate and up)
  std::vector<float> A, B, dA, dB;
  std::vector<float> mA, vA, mB, vB; // AdamW moments (same layouts as A, B)

  double scale() const { return alpha / r; }
  int64_t aRows() const { return int64_t(experts) * r; }
  // Expert e's A [r, in] and B [out, r] (and gradients).
  float* a(int e) { return A.data() + int64_t(e) * r * in; }
  float* b(int e) { return B.data() + int64_t(e) * out * r; }
  float* da(int e) { return dA.data() + int64_t(e) * r * in; }
  float* db(int e) { return dB.data() + int64_t(e) * out * r; }
};

// The vectors of an AdapterState keep their storage for the set's lifetime (loading copies into
// them), so executors may hold pointers into them.
class AdapterSet {
public:
  // Shapes from Plan.adapters (validated by the plan reader); everything zero.
  explicit AdapterSet(const plan::Plan& plan);
  AdapterSet(const AdapterSet&) = delete;
  AdapterSet& operator=(const AdapterSet&) = delete;

  size_t size() const { return adapters_.size(); }
  AdapterState& operator[](size_t i) { return adapters_[i]; }
  const AdapterState& operator[](size_t i) const { return adapters_[i]; }
  const AdapterState* find(const std::string& name) const;

  // PEFT's default init: A ~ Kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0;
  // deterministic for a seed (not bit-equal to torch's generator).
  void initPeft(uint64_t seed);
  // Adapters whose Adapter.init_a/init_b name plan weights start from those values (an adapter
  // the compiler embedded); returns how many did.
  int initFromPlan(const plan::Plan& plan, const WeightStore& weights);

  // B in PEFT's layout, and setting it from PEFT's layout.
  std::vector<float> peftB(const AdapterState& a, const std::vector<float>& internal) const;
  void setPeftB(AdapterState& a, std::vector<float>& internal, const float* peft) const;

  void zeroGrad();
  // Global L2 norm of every gradient (what clip_grad_norm_ computes).
  double gradNorm() const;
  void scaleGrad(double f);
  // One AdamW update of every adapter (step is 1-based).
  void adamw(const AdamWConfig& c, double lr, int64_t step);
  int64_t numParameters() const;

private:
  std::vector<AdapterState> adapters_;
};

} // namespace kt::train
