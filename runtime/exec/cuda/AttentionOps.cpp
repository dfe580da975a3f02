// GPU versions of runtime/exec/cpu/AttentionOps: GQA (with Qwen3's q/k norm) and MLA in the
// absorbed form, both over CudaBackend's paged KV cache (GpuKvPool.h: the run reserved every
// chunk's pages before the steps; here each chunk appends through its slot's page table and
// attends through it).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/exec/cuda/LongPrefill.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"

namespace kt::cudaops {

namespace {
enum Scratch { kQ = 100, kK, kV, kCtx, kQa, kKva, kQAbs, kHeads, kPartials };

const GpuWeight& needWeight(OpContext& c, int slot) {
  const GpuWeight* w = backendOf(c).weight(c, slot);
  if (!w)
    throw Error(c.where() + ": weight slot " + std::to_string(slot) + " is not on the GPU");
  return *w;
}

// Decode attention splits over the keys (kernels/cuda/Attention.cu); its partials go to scratch
// sized from the chunk's shape alone, not the context. With the page table's capacity (the
// model's positions) the split count is fixed for a shape; the kernel uses fewer splits while
// the context is short.
void splitOverKeys(CudaBackend& b, cuda::AttentionArgs& at) {
  at.partialFloats = cuda::attentionPartialFloats(at.heads, at.len, at.dv);
  at.partials = at.partialFloats > 0 ? b.scratchF(kPartials, at.partialFloats) : nullptr;
}

void checkRow(OpContext& c, const char* what, int64_t plan, int64_t op) {
  if (plan != op)
    throw Error(c.where() + ": the plan's KV cache keeps " + std::to_string(plan) + " floats of " +
                what + " per token, the op produces " + std::to_string(op));
}
} // namespace

void attention(OpContext& c) {
  using namespace plan::slots;
  CudaBackend& b = backendOf(c);
  const auto& a = *c.step.attrs_as_AttentionAttrs();
  const Activation& x = c.in(0);
  const int nh = a.num_heads(), nkv = a.num_kv_heads(), hd = a.head_dim();
  const int64_t T = x.rows, row = int64_t(nkv) * hd;
  const float* xd = b.in(c, 0);
  float* q = b.scratchF(kQ, T * nh * hd);
  float* k = b.scratchF(kK, T * row);
  float* v = b.scratchF(kV, T * row);
  linearInto(c, xd, T, needWeight(c, Q), 0, q, b.weight(c, QBias));
  linearInto(c, xd, T, needWeight(c, K), 0, k, b.weight(c, KBias));
  linearInto(c, xd, T, needWeight(c, V), 0, v, b.weight(c, VBias));
  // Qwen3: RMSNorm over each head's vector before the rotation.
  if (const GpuWeight* qn = b.weight(c, QNorm))
    cuda::rmsNormRows(q, hd, T * nh, hd, qn->f32(), float(a.norm_eps()), q, hd);
  if (const GpuWeight* kn = b.weight(c, KNorm))
    cuda::rmsNormRows(k, hd, T * nkv, hd, kn->f32(), float(a.norm_eps()), k, hd);
  const plan::Rope& rp = *a.rope();
  const float* inv = b.invFreq(c.step, rp);
  const int32_t* pos = b.inIds(c, 1);
  cuda::rope(q, T, nh, int64_t(nh) * hd, hd, 0, pos, inv, rp.dim(), float(rp.attention_factor()),
             rp.interleaved());
  cuda::rope(k, T, nkv, row, hd, 0, pos, inv, rp.dim(), float(rp.attention_factor()),
             rp.interleaved());

  const int layer = c.step.layer();
  checkRow(c, "keys", c.kv.kRow(layer), row);
  checkRow(c, "values", c.kv.vRow(layer), row);
  const auto [kOff, vOff] = b.kvPool().offsets(layer);
  float* ctx = b.scratchF(kCtx, T * nh * hd);
  b.timePart("attn", true); // kt-rt bench --profile: the cache appends and the attention
  for (size_t ci = 0; ci < c.batch.chunks.size(); ++ci) {
    const SequenceChunk& s = c.batch.chunks[ci];
    const cuda::KvPages pages = b.kvPages(s.slot);
    const int64_t cap = b.kvPool().maxPositions();
    // The chunk's first position comes from device memory (the same launches serve every
    // position of a captured decode step).
    const int32_t* pos0 = b.chunkPos0(ci);
    cuda::appendRows(nullptr, pages, kOff, row, cap, k + s.start * row, row, row, s.len, pos0,
                     s.pos0);
    cuda::appendRows(nullptr, pages, vOff, row, cap, v + s.start * row, row, row, s.len, pos0,
                     s.pos0);
    cuda::AttentionArgs at =
        cuda::gqaAttentionArgs(q + s.start * nh * hd, nullptr, nullptr, ctx + s.start * nh * hd, nh,
                               nkv, hd, s.len, float(a.scale()));
    cuda::usePages(at, pages, kOff, vOff, cap);
    at.pos0 = s.pos0;
    at.pos0Dev = pos0;
    splitOverKeys(b, at);
    attendChunk(c, at); // long prefill chunks through cuBLAS (LongPrefill.h)
  }
  b.timePart("attn", false);
  const GpuWeight& o = needWeight(c, O);
  linearInto(c, ctx, T, o, 0, b.out(c, 0, T, o.rows));
  b.checkLaunch(c);
}

void mlaAttention(OpContext& c) {
  using namespace plan::slots;
  CudaBackend& b = backendOf(c);
  const auto& a = *c.step.attrs_as_MlaAttrs();
  const Activation& x = c.in(0);
  const int nh = a.num_heads(), nope = a.qk_nope_head_dim(), rope = a.qk_rope_head_dim(),
            vd = a.v_head_dim();
  const int lora = a.kv_lora_rank(), qhd = nope + rope, kvaw = lora + rope;
  const int64_t T = x.rows;
  const float* xd = b.in(c, 0);
  std::string err;

  float* q = b.scratchF(kQ, T * nh * qhd);
  if (const GpuWeight* qp = b.weight(c, QProj)) {
    linearInto(c, xd, T, *qp, 0, q);
  } else {
    float* qa = b.scratchF(kQa, T * a.q_lora_rank());
    linearInto(c, xd, T, needWeight(c, QAProj), 0, qa);
    cuda::rmsNormRows(qa, a.q_lora_rank(), T, a.q_lora_rank(), needWeight(c, QANorm).f32(),
                      float(a.norm_eps()), qa, a.q_lora_rank());
    linearInto(c, qa, T, needWeight(c, QBProj), 0, q);
  }
  // kv_a: [latent | rope key]; the latent is normalized, the rope key rotated (one shared head).
  float* kva = b.scratchF(kKva, T * kvaw);
  linearInto(c, xd, T, needWeight(c, KvAProj), 0, kva);
  cuda::rmsNormRows(kva, kvaw, T, lora, needWeight(c, KvANorm).f32(), float(a.norm_eps()), kva,
                    kvaw);
  const plan::Rope& rp = *a.rope();
  const float* inv = b.invFreq(c.step, rp);
  const int32_t* pos = b.inIds(c, 1);
  cuda::rope(q, T, nh, int64_t(nh) * qhd, qhd, nope, pos, inv, rp.dim(),
             float(rp.attention_factor()), rp.interleaved());
  cuda::rope(kva, T, 1, kvaw, kvaw, lora, pos, inv, rp.dim(), float(rp.attention_factor()),
             rp.interleaved());

  // Absorb the key up-projection into the query, per head: q_abs[h] = W_uk[h]^T q_nope[h]
  // (kv_b is [nh * (nope + vd), lora], kept f32 on the GPU; column-major batched GEMM over heads).
  const GpuWeight& kvb = needWeight(c, KvBProj);
  const int64_t headW = int64_t(nope + vd) * lora;
  float* qAbs = b.scratchF(kQAbs, T * nh * lora);
  b.check(c,
          b.blas().gemmBatched(false, false, lora, T, nope, kvb.f32(), lora, headW, q,
                               int64_t(nh) * qhd, qhd, qAbs, int64_t(nh) * lora, lora, nh, &err),
          err);

  const int layer = c.step.layer();
  checkRow(c, "latent", c.kv.kRow(layer), lora);
  checkRow(c, "rope key", c.kv.vRow(layer), rope);
  const auto [latOff, peOff] = b.kvPool().offsets(layer);
  float* ctx = b.scratchF(kCtx, T * nh * lora);
  b.timePart("attn", true); // kt-rt bench --profile: the cache appends and the attention
  for (size_t ci = 0; ci < c.batch.chunks.size(); ++ci) {
    const SequenceChunk& s = c.batch.chunks[ci];
    const cuda::KvPages pages = b.kvPages(s.slot);
    const int64_t cap = b.kvPool().maxPositions();
    const int32_t* pos0 = b.chunkPos0(ci); // read on the GPU, as in attention() above
    cuda::appendRows(nullptr, pages, latOff, lora, cap, kva + s.start * kvaw, kvaw, lora, s.len,
                     pos0, s.pos0);
    cuda::appendRows(nullptr, pages, peOff, rope, cap, kva + s.start * kvaw + lora, kvaw, rope,
                     s.len, pos0, s.pos0);
    cuda::AttentionArgs at = cuda::mlaAttentionArgs(
        qAbs + s.start * nh * lora, q + s.start * nh * qhd + nope, qhd, nullptr, nullptr,
        ctx + s.start * nh * lora, nh, lora, rope, s.len, float(a.scale()));
    cuda::usePages(at, pages, latOff, peOff, cap);
    at.pos0 = s.pos0;
    at.pos0Dev = pos0;
    splitOverKeys(b, at);
    attendChunk(c, at); // long prefill chunks through cuBLAS (LongPrefill.h)
  }
  b.timePart("attn", false);
  // Value up-projection per head: out[h] = W_uv[h] ctx[h].
  float* heads = b.scratchF(kHeads, T * nh * vd);
  b.check(c,
          b.blas().gemmBatched(true, false, vd, T, lora, kvb.f32() + int64_t(nope) * lora, lora,
                               headW, ctx, int64_t(nh) * lora, lora, heads, int64_t(nh) * vd, vd,
                               nh, &err),
          err);
  const GpuWeight& o = needWeight(c, MlaO);
  linearInto(c, heads, T, o, 0, b.out(c, 0, T, o.rows));
  b.checkLaunch(c);
}

} // namespace kt::cudaops
