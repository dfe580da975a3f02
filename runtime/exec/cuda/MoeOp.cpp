// GPU MoE: the router and top-k on the GPU, routed experts grouped by expert (one gather, three
// GEMMs and one weighted scatter-add per active expert), shared experts on the GPU. When the plan
// keeps the routed experts on the host (hybrid plans), the GPU runs the shared experts while the
// CPU runs the routed ones; the CPU's result is then added on the GPU.
#include "kernels/cpu/Linear.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

namespace kt::cudaops {

namespace {
enum Scratch {
  kLogits = 200,
  kExperts,
  kWeights,
  kTokenIds,
  kTokenWeights,
  kXe,
  kG,
  kU,
  kY,
  kShared,
  kSharedGate,
  kHostResult
};

const GpuWeight& needWeight(OpContext& c, int slot) {
  const GpuWeight* w = backendOf(c).weight(c, slot);
  if (!w)
    throw Error(c.where() + ": weight slot " + std::to_string(slot) + " is not on the GPU");
  return *w;
}

cuda::RoutingArgs routingArgs(OpContext& c, const plan::MoeAttrs& a) {
  cuda::RoutingArgs r;
  r.numExperts = a.num_experts();
  r.topK = a.experts_per_token();
  r.sigmoid = a.scoring() == plan::MoeScoring::Sigmoid;
  r.method = a.topk_method() == plan::MoeTopk::Greedy               ? 0
             : a.topk_method() == plan::MoeTopk::GroupLimitedGreedy ? 1
                                                                    : 2;
  r.nGroup = a.n_group();
  r.topkGroup = a.topk_group();
  r.normTopkProb = a.norm_topk_prob();
  r.routedScalingFactor = a.routed_scaling_factor();
  if (r.numExperts > cuda::kMaxRoutedExperts || r.nGroup > 64 || r.topK > r.numExperts)
    throw Error(c.where() + ": the GPU router handles at most " +
                std::to_string(cuda::kMaxRoutedExperts) +
                " experts in at most 64 groups (plan has " + std::to_string(r.numExperts) + " in " +
                std::to_string(r.nGroup) + ")");
  return r;
}

// Tokens of each expert, in token order: offsets[e] .. offsets[e+1] index tokens/weights.
struct Groups {
  std::vector<int32_t> offsets, tokens;
  std::vector<float> weights;
};
Groups groupByExpert(const std::vector<int32_t>& chosen, const std::vector<float>& w, int64_t T,
                     int K, int E) {
  Groups g;
  g.offsets.assign(size_t(E) + 1, 0);
  for (int32_t e : chosen)
    ++g.offsets[size_t(e) + 1];
  for (int e = 0; e < E; ++e)
    g.offsets[size_t(e) + 1] += g.offsets[size_t(e)];
  std::vector<int32_t> fill(g.offsets.begin(), g.offsets.end() - 1);
  g.tokens.resize(chosen.size());
  g.weights.resize(chosen.size());
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      int32_t e = chosen[size_t(t * K + k)];
      int32_t at = fill[size_t(e)]++;
      g.tokens[size_t(at)] = int32_t(t);
      g.weights[size_t(at)] = w[size_t(t * K + k)];
    }
  return g;
}

// The routed experts on the CPU (their weights stay in the mapped checkpoint or the packed
// sidecar): per expert gate/up, SwiGLU, down, weighted into out [T, H] (zeroed by the caller).
void hostExperts(OpContext& c, const Groups& g, const std::vector<float>& x, int64_t H, int E,
                 std::vector<float>& out) {
  using namespace plan::slots;
  for (int e = 0; e < E; ++e) {
    const int64_t n = g.offsets[size_t(e) + 1] - g.offsets[size_t(e)];
    if (n == 0)
      continue;
    cpu::MatrixView gate = c.expert(Gate, e), up = c.expert(Up, e), down = c.expert(Down, e);
    std::vector<float> xe(size_t(n * H)), gv(size_t(n * gate.rows)), uv(size_t(n * up.rows)),
        y(size_t(n * H));
    for (int64_t r = 0; r < n; ++r)
      std::copy_n(x.data() + int64_t(g.tokens[size_t(g.offsets[size_t(e)] + r)]) * H, H,
                  xe.data() + r * H);
    cpu::linear(c.pool, xe.data(), n, gate, nullptr, gv.data());
    cpu::linear(c.pool, xe.data(), n, up, nullptr, uv.data());
    cpuops::swigluInPlace(gv.data(), uv.data(), int64_t(gv.size()));
    cpu::linear(c.pool, gv.data(), n, down, nullptr, y.data());
    for (int64_t r = 0; r < n; ++r) {
      const size_t at = size_t(g.offsets[size_t(e)] + r);
      float* o = out.data() + int64_t(g.tokens[at]) * H;
      const float s = g.weights[at];
      for (int64_t i = 0; i < H; ++i)
        o[i] += s * y[size_t(r * H + i)];
    }
  }
}
} // namespace

void moe(OpContext& c) {
  using namespace plan::slots;
  CudaBackend& b = backendOf(c);
  const auto& a = *c.step.attrs_as_MoeAttrs();
  const Activation& x = c.in(0);
  const int64_t T = x.rows, H = x.cols;
  const int E = a.num_experts(), K = a.experts_per_token();
  const cuda::RoutingArgs ra = routingArgs(c, a);
  const float* xd = b.in(c, 0);
  std::string err;

  // Router and top-k on the GPU; the choices come to the host to group tokens by expert.
  float* logits = b.scratchF(kLogits, T * E);
  linearInto(c, xd, T, needWeight(c, Router), 0, logits);
  const GpuWeight* bias = b.weight(c, CorrectionBias);
  auto* dExperts = static_cast<int32_t*>(b.scratch(kExperts, size_t(T * K) * 4));
  float* dWeights = b.scratchF(kWeights, T * K);
  cuda::moeRoute(logits, bias ? bias->f32() : nullptr, T, ra, dExperts, dWeights);
  std::vector<int32_t> chosen(size_t(T * K));
  std::vector<float> weights(size_t(T * K));
  b.check(c,
          cuda::toHost(chosen.data(), dExperts, chosen.size() * 4, &err) &&
              cuda::toHost(weights.data(), dWeights, weights.size() * 4, &err),
          err);
  const Groups g = groupByExpert(chosen, weights, T, K, E);

  float* out = b.out(c, 0, T, H);
  b.check(c, cuda::fillZero(out, size_t(T * H) * 4, &err), err);
  const GpuWeight* gate = b.weight(c, Gate);
  std::vector<float> hostX;
  if (!gate) { // hybrid: the CPU needs the activations before the GPU gets busy
    hostX.resize(size_t(T * H));
    b.check(c, cuda::toHost(hostX.data(), xd, hostX.size() * 4, &err), err);
  } else {
    const GpuWeight &up = needWeight(c, Up), &down = needWeight(c, Down);
    auto* dTokens = static_cast<int32_t*>(b.scratch(kTokenIds, g.tokens.size() * 4));
    float* dTokW = b.scratchF(kTokenWeights, int64_t(g.weights.size()));
    b.check(c,
            cuda::toDevice(dTokens, g.tokens.data(), g.tokens.size() * 4, &err) &&
                cuda::toDevice(dTokW, g.weights.data(), g.weights.size() * 4, &err),
            err);
    int64_t most = 0;
    for (int e = 0; e < E; ++e)
      most = std::max<int64_t>(most, g.offsets[size_t(e) + 1] - g.offsets[size_t(e)]);
    float* xe = b.scratchF(kXe, most * H);
    float* gv = b.scratchF(kG, most * gate->rows);
    float* uv = b.scratchF(kU, most * up.rows);
    float* y = b.scratchF(kY, most * H);
    for (int e = 0; e < E; ++e) {
      const int64_t off = g.offsets[size_t(e)], n = g.offsets[size_t(e) + 1] - off;
      if (n == 0)
        continue;
      cuda::gatherRows(xd, H, dTokens + off, n, xe);
      linearInto(c, xe, n, *gate, e, gv);
      linearInto(c, xe, n, up, e, uv);
      cuda::swiglu(gv, uv, gv, n * gate->rows);
      linearInto(c, gv, n, down, e, y);
      cuda::scatterAddRows(y, H, dTokens + off, dTokW + off, n, out);
    }
  }
  // Shared experts run over every token (queued on the GPU; the host goes on meanwhile).
  if (const GpuWeight* sg = b.weight(c, SharedGate)) {
    const GpuWeight &su = needWeight(c, SharedUp), &sd = needWeight(c, SharedDown);
    float* gv = b.scratchF(kG + 100, T * sg->rows);
    float* uv = b.scratchF(kU + 100, T * su.rows);
    float* y = b.scratchF(kShared, T * H);
    linearInto(c, xd, T, *sg, 0, gv);
    linearInto(c, xd, T, su, 0, uv);
    cuda::swiglu(gv, uv, gv, T * sg->rows);
    linearInto(c, gv, T, sd, 0, y);
    float* scale = nullptr;
    if (const GpuWeight* seg = b.weight(c, SharedExpertGate)) { // Qwen2-MoE: sigmoid(x . w)
      scale = b.scratchF(kSharedGate, T);
      linearInto(c, xd, T, *seg, 0, scale);
      cuda::sigmoidInPlace(scale, T);
    }
    cuda::scatterAddRows(y, H, nullptr, scale, T, out);
  }
  if (!gate) {
    std::vector<float> routed(size_t(T * H), 0.f);
    hostExperts(c, g, hostX, H, E, routed);
    float* dRouted = b.scratchF(kHostResult, T * H);
    b.check(c, cuda::toDevice(dRouted, routed.data(), routed.size() * 4, &err), err);
    cuda::add(out, dRouted, out, T * H);
  }
  b.checkLaunch(c);
}

} // namespace kt::cudaops
