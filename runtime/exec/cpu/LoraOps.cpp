// Inference ops with unmerged LoRA adapters that have no adapter path of their own: the MoE block
// runs the training forward of kernels/cpu/grad (routing, every selected expert and the shared
// experts, each projection with its adapter), the same code kt-rt train runs, over the step's
// frozen weights in whatever format they were compiled to. (linear, mlp and the attention
// projections add their adapters in BasicOps.cpp / AttentionOps.cpp.)
#include "kernels/cpu/grad/Grad.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"

#include <vector>

namespace kt::cpuops {

void moeWithAdapters(OpContext& c) {
  using namespace plan::slots;
  namespace g = cpu::grad;
  const auto& a = *c.step.attrs_as_MoeAttrs();
  const Activation& x = c.in(0);
  const int E = a.num_experts();
  std::vector<g::MlpWeights> experts;
  experts.reserve(size_t(E));
  for (int e = 0; e < E; ++e) {
    auto expert = [&](int slot) {
      return g::Projection{c.expert(slot, e), {}, c.adapter(slot, e)};
    };
    experts.push_back({expert(Gate), expert(Up), expert(Down)});
  }
  auto opt = [&](int slot) { return c.has(slot) ? c.w(slot) : cpu::MatrixView{}; };
  g::MlpWeights shared;
  g::MoeWeights w;
  w.router = c.w(Router);
  w.correctionBias = opt(CorrectionBias);
  w.experts = experts.data();
  if (c.has(SharedGate)) {
    auto proj = [&](int slot) { return g::Projection{c.w(slot), {}, c.adapter(slot)}; };
    shared = {proj(SharedGate), proj(SharedUp), proj(SharedDown)};
    w.shared = &shared;
    w.sharedExpertGate = opt(SharedExpertGate);
  }
  Activation& out = c.out(0);
  out.resize(x.rows, experts[0].down.w.rows);
  g::moeForward(c.pool, moeRoutingParams(a), w, x.f.data(), x.rows, out.f.data());
}

} // namespace kt::cpuops
