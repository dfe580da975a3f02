// GPU MoE: the router and top-k on the GPU. Decode (few tokens): the GPU's routed experts run from
// the device-side routing in three launches for all (token, expert) pairs (MoeDecode.cu), the
// shared experts in two, and one kernel sums them per token — no host round trip. Prefill: routed
// experts grouped by expert on the host (one gather, three GEMMs and one weighted scatter-add per
// active expert), shared experts through cuBLAS. When the plan
// keeps the routed experts on the host (hybrid plans), the routing choices and the activations
// come back through pinned buffers in one synchronisation; the GPU's shared-expert work is queued
// first and runs while the CPU computes the routed experts with its fused expert kernel (the
// same one CPU plans use); the CPU's result goes back by an async copy and is added on the GPU.
// The time the GPU sits idle meanwhile is accounted in CudaBackend::overlapStats().
// Prefill offload (MoeAttrs.prefill_offload_min_tokens): from that many tokens on, the CPU-held
// experts with tokens are streamed to the GPU instead (ExpertStream.h) and run through the same
// grouped path as the GPU's own experts; the CPU computes nothing for the step.
#include "kernels/cpu/Linear.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/RouteTap.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/exec/cuda/ExpertStream.h"
#include "runtime/exec/cuda/MoeGrouped.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <chrono>

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
// Pinned staging buffers and timing events of the hybrid path.
enum Staging { kHostChosen, kHostWeights, kHostX, kHostOut };
enum Events { kGpuWorkStart, kGpuWorkEnd };

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
Groups groupByExpert(const int32_t* chosen, const float* w, int64_t T, int K, int E) {
  Groups g;
  g.offsets.assign(size_t(E) + 1, 0);
  for (int64_t i = 0; i < T * K; ++i)
    ++g.offsets[size_t(chosen[i]) + 1];
  for (int e = 0; e < E; ++e)
    g.offsets[size_t(e) + 1] += g.offsets[size_t(e)];
  std::vector<int32_t> fill(g.offsets.begin(), g.offsets.end() - 1);
  g.tokens.resize(size_t(T * K));
  g.weights.resize(size_t(T * K));
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      int32_t e = chosen[t * K + k];
      int32_t at = fill[size_t(e)]++;
      g.tokens[size_t(at)] = int32_t(t);
      g.weights[size_t(at)] = w[t * K + k];
    }
  return g;
}

// The decode kernels' view of a GPU weight stack.
cuda::ExpertStack stackOf(const GpuWeight& w, int numExperts) {
  cuda::ExpertStack s;
  s.data = w.data;
  s.dtype = int(w.int8()   ? cuda::ExpertDType::Int8
                : w.int4() ? cuda::ExpertDType::Int4
                : w.bf16   ? cuda::ExpertDType::BF16
                           : cuda::ExpertDType::F32);
  s.scales = w.scales;
  s.groupScales = w.groupScales;
  s.rows = w.rows;
  s.cols = w.cols;
  s.local = w.localDev;
  s.numExperts = numExperts;
  return s;
}

void checkExperts(OpContext& c, const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down,
                  int64_t H, const char* what) {
  if (gate.cols != H || up.cols != H || up.rows != gate.rows || down.cols != gate.rows ||
      down.rows != H)
    throw Error(c.where() + ": " + what + " gate [" + std::to_string(gate.rows) + ", " +
                std::to_string(gate.cols) + "], up [" + std::to_string(up.rows) + ", " +
                std::to_string(up.cols) + "], down [" + std::to_string(down.rows) + ", " +
                std::to_string(down.cols) + "] do not fit " + std::to_string(H) + " features");
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
  b.timePart("route", true); // kt-rt bench --profile: router, top-k and the readback

  // Router and top-k on the GPU.
  float* logits = b.scratchF(kLogits, T * E);
  linearInto(c, xd, T, needWeight(c, Router), 0, logits);
  const GpuWeight* bias = b.weight(c, CorrectionBias);
  auto* dExperts = static_cast<int32_t*>(b.scratch(kExperts, size_t(T * K) * 4));
  float* dWeights = b.scratchF(kWeights, T * K);
  cuda::moeRoute(logits, bias ? bias->f32() : nullptr, T, ra, dExperts, dWeights);
  const GpuWeight* gate = b.weight(c, Gate);
  // Some routed experts are held by the CPU: all of them (the stack stays on the host), or those
  // a split layer did not put on the GPU (gate->local).
  const bool hybrid = gate == nullptr || !gate->local.empty();
  // A long prefill streams those experts to the GPU (prefill offload); otherwise the CPU runs
  // them (cpuWork).
  ExpertStream& streamer = b.expertStream();
  const bool stream = hybrid && streamer.streams(c.step, T);
  const bool cpuWork = hybrid && !stream;
  // Few tokens (decode): the GPU's experts run from the routing on the GPU, three launches for
  // all (token, expert) pairs, no host round trip. More tokens, or streamed experts: grouped by
  // expert on the host for tensor-core GEMMs.
  const bool decode = T <= cuda::kMoeDecodeMaxTokens && !stream;
  const bool taps = c.tapSink && *c.tapSink;
  // The choices come to the host to group tokens by expert, for the CPU experts (a hybrid step
  // also brings x, all in one synchronisation) or for the route tap.
  const bool readBack = cpuWork || !decode || taps;
  const auto readStart = std::chrono::steady_clock::now();
  int32_t* hChosen = nullptr;
  float* hWeights = nullptr;
  float* hX = nullptr;
  if (readBack) {
    hChosen = static_cast<int32_t*>(b.pinned(kHostChosen, size_t(T * K) * 4));
    hWeights = static_cast<float*>(b.pinned(kHostWeights, size_t(T * K) * 4));
    hX = cpuWork ? static_cast<float*>(b.pinned(kHostX, size_t(T * H) * 4)) : nullptr;
    b.check(c,
            cuda::toHostAsync(hChosen, dExperts, size_t(T * K) * 4, &err) &&
                cuda::toHostAsync(hWeights, dWeights, size_t(T * K) * 4, &err) &&
                (!cpuWork || cuda::toHostAsync(hX, xd, size_t(T * H) * 4, &err)) &&
                cuda::synchronizeStream(&err),
            err);
    tapRoutes(c, a, hChosen, T, K); // kt-tune counts expert activations from this tap
  }
  b.timePart("route", false);
  // From here until the CPU's result is queued back, the GPU only has what this step queues.
  const auto hostWaitStart = std::chrono::steady_clock::now();
  if (readBack) // kt-rt bench --profile: the routing readback waits for the GPU's queue
    c.timedPart("readback-wait", std::chrono::duration<double>(hostWaitStart - readStart).count());
  if (cpuWork) { // the host's issue since the last hybrid step, and this readback's wait
    auto& o = b.overlapStats();
    if (b.lastHybridEnd())
      o.hostIssueSeconds += std::chrono::duration<double>(readStart - *b.lastHybridEnd()).count();
    o.readbackWaitSeconds += std::chrono::duration<double>(hostWaitStart - readStart).count();
    b.check(c, cuda::recordEvent(b.event(kGpuWorkStart), &err), err);
  }

  float* out = b.out(c, 0, T, H);
  const GpuWeight* sg = b.weight(c, SharedGate);
  if (decode) {
    float* pairY = nullptr; // [T*K, H]: each pair's down projection, unweighted
    if (gate) {
      const GpuWeight &up = needWeight(c, Up), &down = needWeight(c, Down);
      checkExperts(c, *gate, up, down, H, "routed experts");
      float* act = b.scratchF(kG, T * K * gate->rows);
      pairY = b.scratchF(kY, T * K * H);
      cuda::moeGateUpDecode(xd, T, K, dExperts, stackOf(*gate, E), stackOf(up, E), act);
      cuda::moeDownDecode(act, T * K, dExperts, stackOf(down, E), pairY);
    }
    float* shared = nullptr;
    float* scale = nullptr;
    if (sg) {
      const GpuWeight &su = needWeight(c, SharedUp), &sd = needWeight(c, SharedDown);
      checkExperts(c, *sg, su, sd, H, "shared experts");
      float* act = b.scratchF(kG + 100, T * sg->rows);
      shared = b.scratchF(kShared, T * H);
      cuda::moeGateUpDecode(xd, T, 1, nullptr, stackOf(*sg, 1), stackOf(su, 1), act);
      cuda::moeDownDecode(act, T, nullptr, stackOf(sd, 1), shared);
      if (const GpuWeight* seg = b.weight(c, SharedExpertGate)) { // Qwen2-MoE: sigmoid(x . w)
        scale = b.scratchF(kSharedGate, T);
        linearInto(c, xd, T, *seg, 0, scale);
        cuda::sigmoidInPlace(scale, T);
      }
    }
    // out = the GPU experts' pairs in top-k order + the shared experts (every element written).
    cuda::moeCombine(pairY, dWeights, dExperts, gate ? gate->localDev : nullptr, E, T, K, H, shared,
                     scale, out);
  } else {
    // Shared experts over every token (queued on the GPU; the host goes on meanwhile).
    float* shared = nullptr;
    float* scale = nullptr;
    b.timePart("shared", true);
    if (sg) {
      const GpuWeight &su = needWeight(c, SharedUp), &sd = needWeight(c, SharedDown);
      float* gv = b.scratchF(kG + 100, T * sg->rows);
      float* uv = b.scratchF(kU + 100, T * su.rows);
      shared = b.scratchF(kShared, T * H);
      linearInto(c, xd, T, *sg, 0, gv);
      linearInto(c, xd, T, su, 0, uv);
      cuda::swiglu(gv, uv, gv, T * sg->rows);
      linearInto(c, gv, T, sd, 0, shared);
      if (const GpuWeight* seg = b.weight(c, SharedExpertGate)) { // Qwen2-MoE: sigmoid(x . w)
        scale = b.scratchF(kSharedGate, T);
        linearInto(c, xd, T, *seg, 0, scale);
        cuda::sigmoidInPlace(scale, T);
      }
    }
    b.timePart("shared", false);
    b.timePart("experts", true);
    const GpuWeight* up = gate ? &needWeight(c, Up) : nullptr;
    const GpuWeight* down = gate ? &needWeight(c, Down) : nullptr;
    if (gate && !stream && !cpuWork && groupedExpertsApply(*gate, *up, *down)) {
      // Every routed expert on the GPU: batched GEMMs over the active experts (MoeGrouped.h).
      checkExperts(c, *gate, *up, *down, H, "routed experts");
      groupedExperts(c, xd, T, H, K, E, hChosen, dExperts, dWeights, *gate, *up, *down, shared,
                     scale, out);
    } else {
      b.check(c, cuda::fillZero(out, size_t(T * H) * 4, &err), err);
      if (gate || stream) { // the GPU's experts and the streamed ones, grouped by expert
        const Groups g = groupByExpert(hChosen, hWeights, T, K, E);
        // The experts' intermediate size (the plan's gate stack is [E, inter, H]).
        const int64_t inter = c.weights.weight(c.step.weights()->Get(Gate)).shape()->Get(1);
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
        float* gv = b.scratchF(kG, most * inter);
        float* uv = b.scratchF(kU, most * inter);
        float* y = b.scratchF(kY, most * H);
        // Expert slice `slice` of (eg, eu, ed) over its n tokens at `off`, added into out.
        auto run = [&](const GpuWeight& eg, const GpuWeight& eu, const GpuWeight& ed, int64_t slice,
                       int64_t off, int64_t n) {
          cuda::gatherRows(xd, H, dTokens + off, n, xe);
          linearInto(c, xe, n, eg, slice, gv);
          linearInto(c, xe, n, eu, slice, uv);
          cuda::swiglu(gv, uv, gv, n * eg.rows);
          linearInto(c, gv, n, ed, slice, y);
          cuda::scatterAddRows(y, H, dTokens + off, dTokW + off, n, out);
        };
        for (int e = 0; e < E; ++e) {
          const int64_t off = g.offsets[size_t(e)], n = g.offsets[size_t(e) + 1] - off;
          if (n == 0)
            continue;
          if (gate && gate->holds(e)) {
            run(*gate, *up, *down, e, off, n);
          } else if (stream) { // a CPU-held expert with tokens: into a GPU slot, then as above
            const ExpertStream::Expert& se = streamer.stage(c, e);
            checkExperts(c, se.gate, se.up, se.down, H, "streamed experts");
            run(se.gate, se.up, se.down, 0, off, n);
            streamer.done(c);
          }
        }
        if (stream)
          streamer.countStep();
      }
      if (shared)
        cuda::scatterAddRows(shared, H, nullptr, scale, T, out);
    }
    b.timePart("experts", false);
  }
  if (cpuWork) {
    b.check(c, cuda::recordEvent(b.event(kGpuWorkEnd), &err), err);
    const auto cpuStart = std::chrono::steady_clock::now();
    auto* hOut = static_cast<float*>(b.pinned(kHostOut, size_t(T * H) * 4));
    // Zeroed over the pool: a 2048-token prefill's 16.8 MB took ~1.5 ms on one thread, per layer.
    cpuops::smallLoop(c.pool, T, T * H, [&](int64_t t0, int64_t t1) {
      std::fill(hOut + t0 * H, hOut + t1 * H, 0.f);
    });
    std::vector<int32_t> cpuChosen; // a split layer: the GPU's experts are skipped (-1) here
    if (gate) {
      cpuChosen.assign(hChosen, hChosen + T * K);
      for (int32_t& e : cpuChosen)
        e = gate->holds(e) ? -1 : e;
    }
    cpuops::routedExperts(c, gate ? cpuChosen.data() : hChosen, hWeights, T, K, hX, H, hOut);
    const auto cpuEnd = std::chrono::steady_clock::now();
    c.timedPart("cpu-experts", std::chrono::duration<double>(cpuEnd - cpuStart).count());
    float* dRouted = b.scratchF(kHostResult, T * H);
    b.check(c, cuda::toDeviceAsync(dRouted, hOut, size_t(T * H) * 4, &err), err);
    cuda::add(out, dRouted, out, T * H);
    b.lastHybridEnd() = std::chrono::steady_clock::now();
    // GPU idle = host-side wait (grouping, CPU experts) minus the GPU work queued meanwhile; zero
    // when the GPU is still busy (then neither side waited for the other).
    auto& o = b.overlapStats();
    const double wait = std::chrono::duration<double>(cpuEnd - hostWaitStart).count();
    o.cpuSeconds += std::chrono::duration<double>(cpuEnd - cpuStart).count();
    ++o.hybridSteps;
    float gpuMs = 0;
    if (cuda::eventDone(b.event(kGpuWorkEnd)) &&
        cuda::elapsedMs(b.event(kGpuWorkStart), b.event(kGpuWorkEnd), &gpuMs, &err)) {
      o.gpuBusySeconds += gpuMs * 1e-3;
      o.gpuIdleSeconds += std::max(0.0, wait - gpuMs * 1e-3);
    } else {
      o.gpuBusySeconds += wait; // still running: at least as long as the CPU took
    }
  }
  b.checkLaunch(c);
}

} // namespace kt::cudaops
