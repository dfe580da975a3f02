#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/Norm.h"
#include "kernels/cpu/attention/AttentionSplit.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

namespace kt::cpuops {

namespace {
// A float buffer whose values start undefined, for buffers every element of which is written
// before it is read: std::vector's zeroing of a 512-token MLA prefill's head-major copies (76 MB
// a layer) ran on one thread and cost more than the copies themselves on 16.
struct Uninitialized {
  Uninitialized() = default;
  explicit Uninitialized(int64_t n) : p(new float[size_t(n)]) {}
  float* data() { return p.get(); }
  std::unique_ptr<float[]> p;
};

// The bias of slot `biasSlot` as f32 (empty when the op has none).
std::vector<float> biasOf(OpContext& c, int biasSlot) {
  std::vector<float> b;
  if (biasSlot >= 0 && c.has(biasSlot)) {
    const cpu::MatrixView bv = c.w(biasSlot);
    b.resize(size_t(bv.cols));
    bv.rowToF32(0, b.data());
  }
  return b;
}

// y [rows, out] = x·Wᵀ (+ bias) of weight slot `slot`, plus its unmerged LoRA adapter if any.
void projectInto(OpContext& c, const float* x, int64_t rows, int slot, int biasSlot, float* y) {
  const cpu::MatrixView w = c.w(slot);
  const bool bias = biasSlot >= 0 && c.has(biasSlot);
  if (const cpu::grad::Lora* l = c.adapter(slot)) { // the training forward, adapter included
    cpu::grad::linearForward(c.pool, {w, bias ? c.w(biasSlot) : cpu::MatrixView{}, l}, x, rows, y);
    return;
  }
  const std::vector<float> b = biasOf(c, biasSlot);
  cpu::linear(c.pool, x, rows, w, b.empty() ? nullptr : b.data(), y);
}

Uninitialized project(OpContext& c, const float* x, int64_t rows, int slot, int biasSlot = -1) {
  Uninitialized y(rows * c.w(slot).rows);
  projectInto(c, x, rows, slot, biasSlot, y.data());
  return y;
}

// MLA's kv_b [nh * (nope + vd), lora] split per head into the two matrices the absorbed form
// multiplies by, packed for the quantized kernels once per plan load (WeightStore::derived):
//   ukT[h] = W_uk[h]^T: [lora rows, nope cols] (q_abs = ukT[h] q_nope),
//   uv[h]  = W_uv[h]:   [vd rows, lora cols]   (out = uv[h] ctx).
// Format: bf16 when the checkpoint holds bf16 and the plan's other MLA matrices are packed (the
// user chose approximate kernels; bf16 -> bf16 keeps the weights exact, activations round to
// bf16); otherwise f32 (exact, as the unpacked path). Either way the weights are read once per
// token by the same GEMV/GEMM kernels as every other matrix, instead of being converted to f32 rows
// at every step.
struct MlaHeadWeights {
  cpu::quant::WeightFormat format;
  const uint8_t* ukT;
  size_t ukTBytes; // per head
  const uint8_t* uv;
  size_t uvBytes; // per head
};

MlaHeadWeights mlaHeadWeights(OpContext& c, int nh, int nope, int vd, int lora) {
  using namespace plan::slots;
  using cpu::quant::WeightFormat;
  const cpu::MatrixView kvb = c.w(KvBProj);
  if (kvb.packed >= 0 || kvb.rows != int64_t(nh) * (nope + vd) || kvb.cols != lora)
    throw Error(c.where() + ": kv_b_proj must be an unpacked [" + std::to_string(nh * (nope + vd)) +
                ", " + std::to_string(lora) + "] matrix");
  const bool packedPlan = c.w(MlaO).packed >= 0;
  const WeightFormat f =
      packedPlan && kvb.dtype == DType::BF16 ? WeightFormat::BF16 : WeightFormat::F32;
  MlaHeadWeights hw;
  hw.format = f;
  hw.ukTBytes = cpu::quant::packedBytes(f, lora, nope);
  hw.uvBytes = cpu::quant::packedBytes(f, vd, lora);
  const int32_t id = c.step.weights()->Get(uint32_t(KvBProj));
  const int stride = nope + vd;
  // An unmerged adapter on kv_b is merged into these per-head copies (W + scale·B·A, f32), made
  // once per plan load: the absorbed form multiplies by kv_b's blocks, never by kv_b itself.
  const cpu::grad::Lora* adapter = c.adapter(KvBProj);
  auto kvbRow = [&](int64_t row, float* out) {
    kvb.rowToF32(row, out);
    if (!adapter)
      return;
    for (int j = 0; j < adapter->r; ++j) {
      const float s = adapter->scale * adapter->B[row * adapter->r + j];
      const float* a = adapter->A + int64_t(j) * lora;
      for (int i = 0; i < lora; ++i)
        out[i] += s * a[i];
    }
  };
  // Tag: the format (and whether an adapter is merged in), so a plan never sees a blob made for
  // another format.
  const int tag = 2 * int(f) + (adapter ? 64 : 0);
  const DerivedBlob& ukT = c.weights.derived(id, tag, [&](DerivedBlob& b) {
    b.allocate(hw.ukTBytes * size_t(nh));
    std::vector<float> rows(size_t(nope) * size_t(lora));
    for (int h = 0; h < nh; ++h) {
      for (int j = 0; j < nope; ++j)
        kvbRow(int64_t(h) * stride + j, rows.data() + size_t(j) * size_t(lora));
      cpu::quant::packWeights(
          f, lora, nope,
          [&](int64_t r, float* out) {
            for (int j = 0; j < nope; ++j)
              out[j] = rows[size_t(j) * size_t(lora) + size_t(r)];
          },
          b.data + hw.ukTBytes * size_t(h));
    }
  });
  const DerivedBlob& uv = c.weights.derived(id, tag + 1, [&](DerivedBlob& b) {
    b.allocate(hw.uvBytes * size_t(nh));
    for (int h = 0; h < nh; ++h)
      cpu::quant::packWeights(
          f, vd, lora, [&](int64_t r, float* out) { kvbRow(int64_t(h) * stride + nope + r, out); },
          b.data + hw.uvBytes * size_t(h));
  });
  hw.ukT = ukT.data;
  hw.uv = uv.data;
  return hw;
}

// y[h] [T, rows] = x[h] [T, cols] W[h]^T for every head h (x, y head-major), with the
// per-head packed matrices of `blobs` (`blobBytes` apart): activations are prepared per head, then
// one pool-wide loop runs (head, row block) tasks so that decode keeps every thread busy.
void perHeadLinear(ThreadPool& pool, cpu::quant::WeightFormat format, const uint8_t* blobs,
                   size_t blobBytes, int heads, int64_t rows, int64_t cols, const float* x,
                   int64_t T, float* y) {
  std::vector<cpu::MatrixView> w(static_cast<size_t>(heads));
  std::vector<cpu::PreparedInput> in(static_cast<size_t>(heads));
  for (int h = 0; h < heads; ++h) {
    w[size_t(h)].data = blobs + blobBytes * size_t(h);
    w[size_t(h)].rows = rows;
    w[size_t(h)].cols = cols;
    w[size_t(h)].packed = int32_t(format);
  }
  smallLoop(pool, heads, heads * T * cols, [&](int64_t b, int64_t e) {
    for (int64_t h = b; h < e; ++h)
      cpu::prepareInput(w[size_t(h)], x + h * T * cols, T, &in[size_t(h)]);
  });
  // Blocks as large as balance allows (~4 tasks per thread; whole heads in decode): each task
  // start is a cold start of the GEMV kernel, and a head's matrix is only 128-256 KiB.
  const int64_t kRowsPerTask =
      std::max<int64_t>(64, (int64_t(heads) * rows / (int64_t(pool.size()) * 4) + 15) / 16 * 16);
  const int64_t blocks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  pool.parallelFor(heads * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t task = b; task < e; ++task) {
      const int64_t h = task / blocks, r0 = (task % blocks) * kRowsPerTask;
      cpu::linearRows(w[size_t(h)], in[size_t(h)], y + h * T * rows, r0,
                      std::min(rows, r0 + kRowsPerTask));
    }
  });
}

// Rows of width w between head-major [nh][T] and token-major [T][nh] order (headMajor: src is
// head-major), a prefill's tokens over the threads.
void reorderHeads(ThreadPool& pool, const float* src, float* dst, int64_t T, int nh, int64_t w,
                  bool headMajor) {
  smallLoop(pool, T, T * nh * w, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int h = 0; h < nh; ++h) {
        const int64_t tokenMajor = (t * nh + h) * w, headMajorRow = (int64_t(h) * T + t) * w;
        std::memcpy(dst + (headMajor ? tokenMajor : headMajorRow),
                    src + (headMajor ? headMajorRow : tokenMajor), size_t(w) * sizeof(float));
      }
  });
}

// kt-rt bench --profile: host time of an op's parts, part(name) timing the stretch since the
// previous call (or the timer's construction).
struct PartTimer {
  explicit PartTimer(OpContext& c) : c(c) {}
  void operator()(const char* name) {
    const auto now = std::chrono::steady_clock::now();
    c.timedPart(name, std::chrono::duration<double>(now - mark).count());
    mark = now;
  }
  OpContext& c;
  std::chrono::steady_clock::time_point mark = std::chrono::steady_clock::now();
};

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
  PartTimer part(c);
  // The op's buffers are written whole before they are read: not zero-filled (a prefill's q, k, v
  // and context are 18 MB at Qwen3-30B-A3B's 512 tokens, ~1.5 ms a layer of zeroing on one thread).
  Uninitialized q, k, v;
  if (!c.adapter(Q) && !c.adapter(K) && !c.adapter(V)) {
    // q, k and v read the same x: one parallel region (k and v alone have 4-8 row units, fewer
    // than the threads).
    q = Uninitialized(T * c.w(Q).rows);
    k = Uninitialized(T * c.w(K).rows);
    v = Uninitialized(T * c.w(V).rows);
    const std::vector<float> qb = biasOf(c, QBias), kb = biasOf(c, KBias), vb = biasOf(c, VBias);
    auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
    const cpu::LinearOut outs[3] = {
        {c.w(Q), q.data(), bias(qb)}, {c.w(K), k.data(), bias(kb)}, {c.w(V), v.data(), bias(vb)}};
    cpu::linearGroup(c.pool, x.f.data(), T, outs, 3);
  } else {
    q = project(c, x.f.data(), T, Q, QBias);
    k = project(c, x.f.data(), T, K, KBias);
    v = project(c, x.f.data(), T, V, VBias);
  }
  part("proj");
  // Qwen3: RMSNorm over each head's vector before the rotation. A prefill's tokens over the
  // threads (norm and rope of 512 tokens took several ms a layer on one).
  cpu::RopeParams rp = ropeParams(*a.rope());
  std::vector<float> inv = cpu::ropeInvFreq(rp);
  smallLoop(c.pool, T, T * (nh + nkv) * hd, [&](int64_t t0, int64_t t1) {
    float* qt = q.data() + t0 * nh * hd;
    float* kt = k.data() + t0 * nkv * hd;
    if (c.has(QNorm))
      cpu::rmsNorm(qt, (t1 - t0) * nh, hd, c.w(QNorm), a.norm_eps(), qt);
    if (c.has(KNorm))
      cpu::rmsNorm(kt, (t1 - t0) * nkv, hd, c.w(KNorm), a.norm_eps(), kt);
    for (int64_t t = t0; t < t1; ++t) {
      cpu::applyRope(q.data() + t * nh * hd, nh, hd, 0, pos.i[size_t(t)], rp, inv);
      cpu::applyRope(k.data() + t * nkv * hd, nkv, hd, 0, pos.i[size_t(t)], rp, inv);
    }
  });
  part("norm_rope");
  Uninitialized ctx(T * nh * hd);
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
  part("attn");
  Activation& out = c.out(0);
  out.resizeForOverwrite(T, c.w(O).rows);
  projectInto(c, ctx.data(), T, O, -1, out.f.data());
  part("o_proj");
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
  PartTimer part(c);

  Uninitialized q, kva; // written whole before they are read (see attention)
  if (c.has(QProj) && !c.adapter(QProj) && !c.adapter(KvAProj)) {
    // q and kv_a read the same x: one parallel region for both.
    q = Uninitialized(T * c.w(QProj).rows);
    kva = Uninitialized(T * c.w(KvAProj).rows);
    cpu::linearPair(c.pool, x.f.data(), T, c.w(QProj), q.data(), c.w(KvAProj), kva.data());
  } else {
    if (c.has(QProj)) {
      q = project(c, x.f.data(), T, QProj);
    } else {
      Uninitialized qa = project(c, x.f.data(), T, QAProj);
      cpu::rmsNorm(qa.data(), T, a.q_lora_rank(), c.w(QANorm), a.norm_eps(), qa.data());
      q = project(c, qa.data(), T, QBProj);
    }
    kva = project(c, x.f.data(), T, KvAProj);
  }
  // kv_a: [latent | rope key]; the latent is normalized, the rope key rotated (one shared head).
  const int kvaw = lora + rope;
  cpu::MatrixView kvNorm = c.w(KvANorm);
  cpu::RopeParams rp = ropeParams(*a.rope());
  std::vector<float> inv = cpu::ropeInvFreq(rp);
  smallLoop(c.pool, T, T * (nh * qhd + kvaw), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      cpu::rmsNorm(kva.data() + t * kvaw, 1, lora, kvNorm, a.norm_eps(), kva.data() + t * kvaw);
      cpu::applyRope(q.data() + t * nh * qhd, nh, qhd, nope, pos.i[size_t(t)], rp, inv);
      cpu::applyRope(kva.data() + t * kvaw, 1, kvaw, lora, pos.i[size_t(t)], rp, inv);
    }
  });

  part("proj");
  // Absorb the key up-projection into the query: q_abs[h] = W_uk[h]^T q_nope[h].
  const MlaHeadWeights hw = mlaHeadWeights(c, nh, nope, vd, lora);
  Uninitialized qNope(nh * T * nope), qAbsH(nh * T * lora), qAbs(T * nh * lora), qPe(T * nh * rope);
  // The head-major copies of a prefill over the threads: 16 MB of q_abs at 512 tokens took
  // several ms a layer on one thread, as long as the absorption GEMMs on 16.
  smallLoop(c.pool, T, T * nh * qhd, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int h = 0; h < nh; ++h) {
        const float* qn = q.data() + (t * nh + h) * qhd;
        std::memcpy(qNope.data() + (int64_t(h) * T + t) * nope, qn, size_t(nope) * sizeof(float));
        std::memcpy(qPe.data() + (t * nh + h) * rope, qn + nope, size_t(rope) * sizeof(float));
      }
  });
  perHeadLinear(c.pool, hw.format, hw.ukT, hw.ukTBytes, nh, lora, nope, qNope.data(), T,
                qAbsH.data());
  reorderHeads(c.pool, qAbsH.data(), qAbs.data(), T, nh, lora, /*headMajor=*/true);

  part("absorb");
  Uninitialized ctx(T * nh * lora);
  const int layer = c.step.layer();
  for (const SequenceChunk& s : c.batch.chunks) {
    float* latent = c.kv.k(s.slot, layer, s.pos0 + s.len);
    float* kpe = c.kv.v(s.slot, layer, s.pos0 + s.len);
    appendRows(latent, kva.data(), s.pos0, s.len, lora, kvaw, s.start * kvaw);
    appendRows(kpe, kva.data(), s.pos0, s.len, rope, kvaw, s.start * kvaw + lora);
    // Decode: keys split over the threads (each reads part of the latent cache) when long enough.
    if (s.len != 1 ||
        !cpu::mlaDecodeSplit(c.pool, qAbs.data() + s.start * nh * lora,
                             qPe.data() + s.start * nh * rope, nh, lora, rope, latent, kpe,
                             s.pos0 + 1, a.scale(), ctx.data() + s.start * nh * lora))
      cpu::mlaAttention(c.pool, qAbs.data() + s.start * nh * lora, qPe.data() + s.start * nh * rope,
                        s.len, nh, lora, rope, latent, kpe, s.pos0, a.scale(),
                        ctx.data() + s.start * nh * lora);
  }
  part("attn");
  // Value up-projection per head: out[h] = W_uv[h] ctx[h].
  Uninitialized ctxH(nh * T * lora), headsH(nh * T * vd), heads(T * nh * vd);
  reorderHeads(c.pool, ctx.data(), ctxH.data(), T, nh, lora, /*headMajor=*/false);
  perHeadLinear(c.pool, hw.format, hw.uv, hw.uvBytes, nh, vd, lora, ctxH.data(), T, headsH.data());
  reorderHeads(c.pool, headsH.data(), heads.data(), T, nh, vd, /*headMajor=*/true);
  part("values");
  Activation& out = c.out(0);
  out.resizeForOverwrite(T, c.w(MlaO).rows);
  projectInto(c, heads.data(), T, MlaO, -1, out.f.data());
  part("o_proj");
}

} // namespace kt::cpuops
