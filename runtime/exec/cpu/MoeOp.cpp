#include "kernels/cpu/Linear.h"
#include "kernels/cpu/MoeRouting.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/ThreadPool.h"

#include <cmath>

namespace kt::cpuops {

namespace {
cpu::MoeRoutingParams routingParams(const plan::MoeAttrs& a) {
  cpu::MoeRoutingParams p;
  p.numExperts = a.num_experts();
  p.topK = a.experts_per_token();
  p.scoring = a.scoring() == plan::MoeScoring::Sigmoid ? cpu::MoeScoring::Sigmoid : cpu::MoeScoring::Softmax;
  p.method = a.topk_method() == plan::MoeTopk::Greedy               ? cpu::MoeTopk::Greedy
             : a.topk_method() == plan::MoeTopk::GroupLimitedGreedy ? cpu::MoeTopk::GroupLimitedGreedy
                                                                    : cpu::MoeTopk::NoauxTc;
  p.nGroup = a.n_group();
  p.topkGroup = a.topk_group();
  p.normTopkProb = a.norm_topk_prob();
  p.routedScalingFactor = a.routed_scaling_factor();
  return p;
}

// down(silu(gate(x)) * up(x)) for `rows` rows of x.
std::vector<float> swigluMlp(ThreadPool& pool, const float* x, int64_t rows, const cpu::MatrixView& gate,
                             const cpu::MatrixView& up, const cpu::MatrixView& down) {
  std::vector<float> g(size_t(rows * gate.rows)), u(size_t(rows * up.rows)), y(size_t(rows * down.rows));
  cpu::linear(pool, x, rows, gate, nullptr, g.data());
  cpu::linear(pool, x, rows, up, nullptr, u.data());
  swigluInPlace(g.data(), u.data(), int64_t(g.size()));
  cpu::linear(pool, g.data(), rows, down, nullptr, y.data());
  return y;
}
} // namespace

void moe(OpContext& c) {
  using namespace plan::slots;
  const auto& a = *c.step.attrs_as_MoeAttrs();
  const Activation& x = c.in(0);
  const int64_t T = x.rows, H = x.cols;
  const int E = a.num_experts(), K = a.experts_per_token();
  cpu::MoeRoutingParams rp = routingParams(a);

  std::vector<float> logits(size_t(T * E));
  cpu::linear(c.pool, x.f.data(), T, c.w(Router), nullptr, logits.data());
  std::vector<float> bias;
  if (c.has(CorrectionBias)) {
    bias.resize(size_t(E));
    c.w(CorrectionBias).rowToF32(0, bias.data());
  }
  std::vector<int> chosen(size_t(T * K));
  std::vector<float> weight(size_t(T * K));
  for (int64_t t = 0; t < T; ++t)
    cpu::routeToken(logits.data() + t * E, bias.empty() ? nullptr : bias.data(), rp, chosen.data() + t * K,
                    weight.data() + t * K);

  // Group tokens by expert so each expert's weights are streamed once for all its tokens.
  std::vector<std::vector<std::pair<int64_t, float>>> byExpert(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) byExpert[size_t(chosen[size_t(t * K + k)])].push_back({t, weight[size_t(t * K + k)]});

  Activation& out = c.out(0);
  out.resize(T, H);
  std::vector<float> rows;
  for (int e = 0; e < E; ++e) {
    const auto& list = byExpert[size_t(e)];
    if (list.empty()) continue;
    rows.resize(list.size() * size_t(H));
    for (size_t r = 0; r < list.size(); ++r)
      std::copy_n(x.f.data() + list[r].first * H, H, rows.data() + int64_t(r) * H);
    std::vector<float> y = swigluMlp(c.pool, rows.data(), int64_t(list.size()), c.expert(Gate, e), c.expert(Up, e),
                                     c.expert(Down, e));
    for (size_t r = 0; r < list.size(); ++r) {
      float* o = out.f.data() + list[r].first * H;
      const float* yr = y.data() + int64_t(r) * H;
      for (int64_t i = 0; i < H; ++i) o[i] += list[r].second * yr[i];
    }
  }

  if (c.has(SharedGate)) {
    std::vector<float> y = swigluMlp(c.pool, x.f.data(), T, c.w(SharedGate), c.w(SharedUp), c.w(SharedDown));
    std::vector<float> gateScale(size_t(T), 1.0f);
    if (c.has(SharedExpertGate)) { // Qwen2-MoE: sigmoid(x . w) scales the shared expert
      cpu::linear(c.pool, x.f.data(), T, c.w(SharedExpertGate), nullptr, gateScale.data());
      for (float& g : gateScale) g = 1.0f / (1.0f + std::exp(-g));
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < H; ++i) out.f[size_t(t * H + i)] += gateScale[size_t(t)] * y[size_t(t * H + i)];
  }
}

} // namespace kt::cpuops
