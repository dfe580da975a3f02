#include "compiler/cost/GpuLaunches.h"

#include <algorithm>
#include <cmath>

namespace kt::cost {

double linearLaunches(bool bf16, bool bias) {
  return 1.0 + (bf16 ? 1.0 : 0.0) + (bias ? 1.0 : 0.0);
}

double glueLaunches(const std::string& opKind) {
  return opKind == "rope" ? 2.0 : 1.0; // rope copies its input, then rotates in place
}

namespace {
// Decode-sized attention splits over the keys: one more launch per sequence (the merge).
GpuLaunches withSplitMerge(GpuLaunches g) {
  g.decodeMaxTokens = kAttentionSplitMaxTokens;
  g.decodePerStep = g.perStep;
  g.decodeShared = g.shared;
  g.decodeHostSyncs = g.hostSyncs;
  g.decodePerSequence = g.perSequence + 1;
  return g;
}
} // namespace

GpuLaunches attentionLaunches(bool bf16, int biases, bool qkNorm) {
  GpuLaunches g;
  // q, k, v, o; the rotary kernels of q and k; Qwen3's per-head norms of q and k.
  g.perStep = 4 * linearLaunches(bf16) + biases + 2 + (qkNorm ? 2 : 0);
  g.perSequence = 3; // keys and values into the cache, the attention kernel
  return withSplitMerge(g);
}

GpuLaunches mlaLaunches(bool bf16, bool qLora) {
  GpuLaunches g;
  double q = qLora ? 2 * linearLaunches(bf16) + 1 : linearLaunches(bf16); // q_a, norm, q_b
  // q; kv_a and its norm; 2 ropes; absorbing W_uk and applying W_uv (f32 batched GEMMs); o.
  g.perStep = q + linearLaunches(bf16) + 1 + 2 + 2 + linearLaunches(bf16);
  g.perSequence = 3; // latent and rope key into the cache, the attention kernel
  return withSplitMerge(g);
}

GpuLaunches mlpLaunches(bool bf16) {
  GpuLaunches g;
  g.perStep = 3 * linearLaunches(bf16) + 1;
  return g;
}

double gpuAttentionSplits(double heads, double tokens, double keys, int sms) {
  if (sms <= 0 || heads <= 0 || tokens <= 0 || tokens > 8)
    return 1;
  const double blocks = heads * tokens, target = 4.0 * sms;
  if (blocks >= target)
    return 1;
  double s = std::min(64.0, std::ceil(target / blocks));
  s = std::min(s, std::ceil(keys / 32.0));
  return std::max(1.0, s);
}

GpuLaunches GpuLaunches::at(double tokens) const {
  if (decodeMaxTokens <= 0 || tokens > decodeMaxTokens)
    return *this;
  GpuLaunches d = *this;
  d.perStep = decodePerStep;
  d.perSequence = decodePerSequence;
  d.shared = decodeShared;
  d.hostSyncs = decodeHostSyncs;
  d.perTouchedExpert = 0;
  d.gpuExpertsSyncs = 0;
  d.groupedChunkLaunches = 0;
  d.groupedChunkSyncs = 0;
  d.gpuExpertsLaunches = decodeGpuExperts;
  d.hostExpertsSyncs = decodeHostExpertsSyncs;
  return d;
}

GpuLaunches& GpuLaunches::operator+=(const GpuLaunches& o) {
  const bool decodeForm = o.decodeMaxTokens > 0;
  decodePerStep += decodeForm ? o.decodePerStep : o.perStep;
  decodePerSequence += decodeForm ? o.decodePerSequence : o.perSequence;
  decodeShared += decodeForm ? o.decodeShared : o.shared;
  decodeHostSyncs += decodeForm ? o.decodeHostSyncs : o.hostSyncs;
  decodeHostExpertsSyncs += decodeForm ? o.decodeHostExpertsSyncs : o.hostExpertsSyncs;
  decodeGpuExperts += o.decodeGpuExperts;
  gpuExpertsLaunches += o.gpuExpertsLaunches;
  if (decodeForm)
    decodeMaxTokens =
        decodeMaxTokens > 0 ? std::min(decodeMaxTokens, o.decodeMaxTokens) : o.decodeMaxTokens;
  perStep += o.perStep;
  perSequence += o.perSequence;
  hostSyncs += o.hostSyncs;
  shared += o.shared;
  perTouchedExpert += o.perTouchedExpert;
  gpuExpertsSyncs += o.gpuExpertsSyncs;
  groupedChunkLaunches += o.groupedChunkLaunches;
  groupedChunkSyncs += o.groupedChunkSyncs;
  hostExpertsLaunches += o.hostExpertsLaunches;
  hostExpertsSyncs += o.hostExpertsSyncs;
  return *this;
}

GpuLaunches moeLaunches(bool bf16, bool sharedExperts, bool sharedExpertGate) {
  GpuLaunches g;
  // Router GEMM, top-k kernel, zeroing the output.
  g.perStep = linearLaunches(bf16) + 1 + 1;
  if (sharedExperts)
    g.shared = 3 * linearLaunches(bf16) + 1 + 1 + (sharedExpertGate ? linearLaunches(bf16) + 1 : 0);
  g.perStep += g.shared;
  g.hostSyncs = 1; // expert ids and weights (async, pinned) to the host, then one synchronize
  g.perTouchedExpert =
      1 + 3 * linearLaunches(bf16) + 1 + 1; // gather, gate/up/down, swiglu, scatter
  g.gpuExpertsSyncs = 2; // token ids and weights of the groups back to the GPU (blocking)
  // Grouped (MoeGrouped.cpp): gather; per product the activations' rounding (bf16), the pointer
  // arrays and the batched GEMM; SwiGLU; the gather into (token, k) order; the combine; (once
  // per step, counted with the chunk) the async upload of every chunk's grouping. No blocking.
  g.groupedChunkLaunches = 1 + 3 * (1 + linearLaunches(bf16)) + 1 + 1 + 1 + 1;
  g.groupedChunkSyncs = 0;
  g.hostExpertsLaunches = 2; // the result back (async copy) and the add
  g.hostExpertsSyncs = 0;    // the activations came with the routing's synchronisation
  // Decode: router GEMM, top-k, the combine kernel; shared experts as gate+up+SwiGLU and down
  // kernels (Qwen2's gate as in prefill); GPU-resident experts 2 kernels for all pairs.
  g.decodeMaxTokens = kMoeDecodeMaxTokens;
  g.decodeShared = sharedExperts ? 2 + (sharedExpertGate ? linearLaunches(bf16) + 1 : 0) : 0;
  g.decodePerStep = linearLaunches(bf16) + 1 + 1 + g.decodeShared;
  g.decodeHostSyncs = 0; // host experts add the routing's synchronisation (hostExpertsSyncs)
  g.decodeGpuExperts = 2;
  g.decodeHostExpertsSyncs = 1; // choices and activations to the host, one synchronisation
  return g;
}

GpuLaunches lmHeadLaunches(bool bf16) {
  GpuLaunches g;
  g.perStep = 1 + linearLaunches(bf16); // gather of the sampled rows, the linear
  g.hostSyncs = 0;                      // the row ids are uploaded once per distinct list
  g.decodeMaxTokens = kMoeDecodeMaxTokens;
  g.decodePerStep = linearLaunches(bf16); // every row sampled: no gather
  return g;
}

GpuLaunches embeddingLaunches() {
  GpuLaunches g;
  g.perStep = 1;
  return g;
}

} // namespace kt::cost
