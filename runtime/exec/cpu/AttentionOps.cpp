#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/Norm.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/ThreadPool.h"

#include <cstring>

namespace kt::cpuops {

namespace {
std::vector<float> project(OpContext& c, const float* x, int64_t rows, const cpu::MatrixView& w,
                           int biasSlot = -1) {
  std::vector<float> y(size_t(rows * w.rows));
  std::vector<float> bias;
  if (biasSlot >= 0 && c.has(biasSlot)) {
    cpu::MatrixView b = c.w(biasSlot);
    bias.resize(size_t(b.cols));
    b.rowToF32(0, bias.data());
  }
  cpu::linear(c.pool, x, rows, w, bias.empty() ? nullptr : bias.data(), y.data());
  return y;
}

// Copies `len` rows of width `row` into the cache array at position pos0 (cache arrays have room).
void appendRows(float* cache, const float* rows, int64_t pos0, int64_t len, int64_t row,
                int64_t srcStride, int64_t srcOffset) {
  for (int64_t t = 0; t < len; ++t)
    std::memcpy(cache + (pos0 + t) * row, rows + t * srcStride + srcOffset,
                size_t(row) * sizeof(float));
}
} // namespace

void attention(OpContext& c) {
  using namespace plan::slots;
  const auto& a = *c.step.attrs_as_AttentionAttrs();
  const Activation& x = c.in(0);
  const Activation& pos = c.in(1);
  const int nh = a.num_heads(), nkv = a.num_kv_heads(), hd = a.head_dim();
  const int64_t T = x.rows;
  std::vector<float> q = project(c, x.f.data(), T, c.w(Q), QBias);
  std::vector<float> k = project(c, x.f.data(), T, c.w(K), KBias);
  std::vector<float> v = project(c, x.f.data(), T, c.w(V), VBias);
  // Qwen3: RMSNorm over each head's vector before the rotation.
  if (c.has(QNorm))
    cpu::rmsNorm(q.data(), T * nh, hd, c.w(QNorm), a.norm_eps(), q.data());
  if (c.has(KNorm))
    cpu::rmsNorm(k.data(), T * nkv, hd, c.w(KNorm), a.norm_eps(), k.data());
  cpu::RopeParams rp = ropeParams(*a.rope());
  std::vector<float> inv = cpu::ropeInvFreq(rp);
  for (int64_t t = 0; t < T; ++t) {
    cpu::applyRope(q.data() + t * nh * hd, nh, hd, 0, pos.i[size_t(t)], rp, inv);
    cpu::applyRope(k.data() + t * nkv * hd, nkv, hd, 0, pos.i[size_t(t)], rp, inv);
  }
  std::vector<float> ctx(size_t(T * nh * hd));
  const int layer = c.step.layer();
  for (const SequenceChunk& s : c.batch.chunks) {
    float* kc = c.kv.k(s.slot, layer, s.pos0 + s.len);
    float* vc = c.kv.v(s.slot, layer, s.pos0 + s.len);
    const int64_t row = int64_t(nkv) * hd;
    appendRows(kc, k.data(), s.pos0, s.len, row, row, s.start * row);
    appendRows(vc, v.data(), s.pos0, s.len, row, row, s.start * row);
    cpu::gqaAttention(c.pool, q.data() + s.start * nh * hd, s.len, nh, nkv, hd, kc, vc, s.pos0,
                      a.scale(), ctx.data() + s.start * nh * hd);
  }
  Activation& out = c.out(0);
  out.resize(T, c.w(O).rows);
  cpu::linear(c.pool, ctx.data(), T, c.w(O), nullptr, out.f.data());
}

void mlaAttention(OpContext& c) {
  using namespace plan::slots;
  const auto& a = *c.step.attrs_as_MlaAttrs();
  const Activation& x = c.in(0);
  const Activation& pos = c.in(1);
  const int nh = a.num_heads(), nope = a.qk_nope_head_dim(), rope = a.qk_rope_head_dim(),
            vd = a.v_head_dim();
  const int lora = a.kv_lora_rank(), qhd = nope + rope;
  const int64_t T = x.rows;

  std::vector<float> q;
  if (c.has(QProj)) {
    q = project(c, x.f.data(), T, c.w(QProj));
  } else {
    std::vector<float> qa = project(c, x.f.data(), T, c.w(QAProj));
    cpu::rmsNorm(qa.data(), T, a.q_lora_rank(), c.w(QANorm), a.norm_eps(), qa.data());
    q = project(c, qa.data(), T, c.w(QBProj));
  }
  // kv_a: [latent | rope key]; the latent is normalized, the rope key rotated (one shared head).
  std::vector<float> kva = project(c, x.f.data(), T, c.w(KvAProj));
  const int kvaw = lora + rope;
  cpu::MatrixView kvNorm = c.w(KvANorm);
  for (int64_t t = 0; t < T; ++t)
    cpu::rmsNorm(kva.data() + t * kvaw, 1, lora, kvNorm, a.norm_eps(), kva.data() + t * kvaw);
  cpu::RopeParams rp = ropeParams(*a.rope());
  std::vector<float> inv = cpu::ropeInvFreq(rp);
  for (int64_t t = 0; t < T; ++t) {
    cpu::applyRope(q.data() + t * nh * qhd, nh, qhd, nope, pos.i[size_t(t)], rp, inv);
    cpu::applyRope(kva.data() + t * kvaw, 1, kvaw, lora, pos.i[size_t(t)], rp, inv);
  }

  // Absorb the key up-projection into the query: q_abs[h] = W_uk[h]^T q_nope[h].
  cpu::MatrixView kvb = c.w(KvBProj); // [nh * (nope + vd), lora]
  std::vector<float> wkvb(size_t(kvb.rows * kvb.cols));
  for (int64_t r = 0; r < kvb.rows; ++r)
    kvb.rowToF32(r, wkvb.data() + r * lora);
  std::vector<float> qAbs(size_t(T * nh * lora), 0.f), qPe(size_t(T * nh * rope));
  c.pool.parallelFor(T * nh, 1, [&](int64_t b, int64_t e) {
    for (int64_t job = b; job < e; ++job) {
      int64_t t = job / nh;
      int h = int(job % nh);
      const float* qn = q.data() + (t * nh + h) * qhd;
      float* qa = qAbs.data() + (t * nh + h) * lora;
      for (int j = 0; j < nope; ++j) {
        const float* wr = wkvb.data() + (int64_t(h) * (nope + vd) + j) * lora;
        for (int cc = 0; cc < lora; ++cc)
          qa[cc] += qn[j] * wr[cc];
      }
      std::memcpy(qPe.data() + (t * nh + h) * rope, qn + nope, size_t(rope) * sizeof(float));
    }
  });

  std::vector<float> ctx(size_t(T * nh * lora));
  const int layer = c.step.layer();
  for (const SequenceChunk& s : c.batch.chunks) {
    float* latent = c.kv.k(s.slot, layer, s.pos0 + s.len);
    float* kpe = c.kv.v(s.slot, layer, s.pos0 + s.len);
    appendRows(latent, kva.data(), s.pos0, s.len, lora, kvaw, s.start * kvaw);
    appendRows(kpe, kva.data(), s.pos0, s.len, rope, kvaw, s.start * kvaw + lora);
    cpu::mlaAttention(c.pool, qAbs.data() + s.start * nh * lora, qPe.data() + s.start * nh * rope,
                      s.len, nh, lora, rope, latent, kpe, s.pos0, a.scale(),
                      ctx.data() + s.start * nh * lora);
  }
  // Value up-projection per head: out[h] = W_uv[h] ctx[h].
  std::vector<float> heads(size_t(T * nh * vd));
  c.pool.parallelFor(T * nh, 1, [&](int64_t b, int64_t e) {
    for (int64_t job = b; job < e; ++job) {
      int64_t t = job / nh;
      int h = int(job % nh);
      const float* cv = ctx.data() + (t * nh + h) * lora;
      for (int j = 0; j < vd; ++j) {
        const float* wr = wkvb.data() + (int64_t(h) * (nope + vd) + nope + j) * lora;
        float acc = 0.f;
        for (int cc = 0; cc < lora; ++cc)
          acc += wr[cc] * cv[cc];
        heads[size_t((t * nh + h) * vd + j)] = acc;
      }
    }
  });
  Activation& out = c.out(0);
  out.resize(T, c.w(MlaO).rows);
  cpu::linear(c.pool, heads.data(), T, c.w(MlaO), nullptr, out.f.data());
}

} // namespace kt::cpuops
