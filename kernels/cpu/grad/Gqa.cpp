// GQA attention as runtime/exec/cpu/AttentionOps.cpp computes it:
//   q = rope(norm_q(x Wqᵀ + bq)), k = rope(norm_k(x Wkᵀ + bk)), v = x Wvᵀ + bv,
//   y = attention(q, k, v) Woᵀ
// with positions 0..L-1 in every sequence. The backward runs the chain in reverse: o-projection,
// attention, inverse rotation, q/k norms, and the three input projections summed into dx.
#include "kernels/cpu/grad/Detail.h"

namespace kt::cpu::grad {

namespace {
// The projected, normalized and rotated q, k and v of x (plus the pre-norm q/k for the backward).
template <class T> struct QkvState { std::vector<T> qPre, kPre, q, k, v; };

template <class T>
QkvState<T> project(ThreadPool& pool, const AttentionParams& p, const AttentionWeightsT<T>& w,
                    const T* x, int64_t batch, int64_t seqLen, const detail::RopeTable<T>& table,
                    const std::vector<float>& inv) {
  const int64_t rows = batch * seqLen, hd = p.headDim;
  QkvState<T> s;
  s.q.resize(size_t(rows * p.numHeads * hd));
  s.k.resize(size_t(rows * p.numKvHeads * hd));
  s.v.resize(size_t(rows * p.numKvHeads * hd));
  linearForward(pool, w.q, x, rows, s.q.data());
  linearForward(pool, w.k, x, rows, s.k.data());
  linearForward(pool, w.v, x, rows, s.v.data());
  // Qwen3: RMSNorm over each head's vector before the rotation.
  if (w.qNorm.data) {
    s.qPre = s.q;
    rmsNormForward(pool, s.qPre.data(), rows * p.numHeads, hd, w.qNorm, p.normEps, s.q.data());
  }
  if (w.kNorm.data) {
    s.kPre = s.k;
    rmsNormForward(pool, s.kPre.data(), rows * p.numKvHeads, hd, w.kNorm, p.normEps, s.k.data());
  }
  for (int64_t r = 0; r < rows; ++r) {
    detail::rope(s.q.data() + r * p.numHeads * hd, p.numHeads, hd, 0, r % seqLen, p.rope, table,
                 inv, false);
    detail::rope(s.k.data() + r * p.numKvHeads * hd, p.numKvHeads, hd, 0, r % seqLen, p.rope, table,
                 inv, false);
  }
  return s;
}

template <class T> void validate(const AttentionParams& p, const AttentionWeightsT<T>& w) {
  using detail::require;
  const char* op = "gqa attention";
  require(p.numHeads > 0 && p.numKvHeads > 0 && p.numHeads % p.numKvHeads == 0 && p.headDim > 0, op,
          "num_kv_heads must divide num_heads (both positive)");
  require(p.rope.dim >= 0 && p.rope.dim % 2 == 0 && p.rope.dim <= p.headDim, op,
          "rope.dim must be even and at most head_dim");
  const int64_t H = w.q.w.cols, q = int64_t(p.numHeads) * p.headDim,
                kv = int64_t(p.numKvHeads) * p.headDim;
  detail::requireProjection(w.q, op, "q_proj", q, H);
  detail::requireProjection(w.k, op, "k_proj", kv, H);
  detail::requireProjection(w.v, op, "v_proj", kv, H);
  detail::requireProjection(w.o, op, "o_proj", H, q);
  require(!w.qNorm.data || w.qNorm.cols == p.headDim, op, "q_norm length differs from head_dim");
  require(!w.kNorm.data || w.kNorm.cols == p.headDim, op, "k_norm length differs from head_dim");
}

detail::AttnShape shapeOf(const AttentionParams& p, int64_t batch, int64_t seqLen) {
  detail::AttnShape s;
  s.batch = batch;
  s.seqLen = seqLen;
  s.heads = p.numHeads;
  s.kvHeads = p.numKvHeads;
  s.qkDim = s.vDim = p.headDim;
  s.scale = p.scale;
  return s;
}
} // namespace

template <class T>
void gqaForward(ThreadPool& pool, const AttentionParams& p, const AttentionWeightsT<T>& w,
                const T* x, int64_t batch, int64_t seqLen, T* y) {
  validate(p, w);
  const int64_t rows = batch * seqLen;
  detail::RopeTable<T> table(p.rope, seqLen);
  std::vector<float> inv = ropeInvFreq(p.rope);
  QkvState<T> s = project(pool, p, w, x, batch, seqLen, table, inv);
  std::vector<T> ctx(size_t(rows * p.numHeads * p.headDim));
  detail::attentionForward(pool, shapeOf(p, batch, seqLen), s.q.data(), s.k.data(), s.v.data(),
                           ctx.data());
  linearForward(pool, w.o, ctx.data(), rows, y);
}

template <class T>
void gqaBackward(ThreadPool& pool, const AttentionParams& p, const AttentionWeightsT<T>& w,
                 const T* x, int64_t batch, int64_t seqLen, const T* dy, T* dx) {
  validate(p, w);
  const int64_t rows = batch * seqLen, hd = p.headDim;
  detail::RopeTable<T> table(p.rope, seqLen);
  std::vector<float> inv = ropeInvFreq(p.rope);
  QkvState<T> s = project(pool, p, w, x, batch, seqLen, table, inv);
  const detail::AttnShape shape = shapeOf(p, batch, seqLen);
  std::vector<T> ctx(s.q.size());
  detail::attentionForward(pool, shape, s.q.data(), s.k.data(), s.v.data(), ctx.data());

  std::vector<T> dctx(ctx.size());
  detail::linearBackwardAcc(pool, w.o, ctx.data(), rows, dy, dctx.data(), false);
  std::vector<T> dq(s.q.size()), dk(s.k.size()), dv(s.v.size());
  detail::attentionBackward(pool, shape, s.q.data(), s.k.data(), s.v.data(), dctx.data(), dq.data(),
                            dk.data(), dv.data());
  for (int64_t r = 0; r < rows; ++r) {
    detail::rope(dq.data() + r * p.numHeads * hd, p.numHeads, hd, 0, r % seqLen, p.rope, table, inv,
                 true);
    detail::rope(dk.data() + r * p.numKvHeads * hd, p.numKvHeads, hd, 0, r % seqLen, p.rope, table,
                 inv, true);
  }
  if (w.qNorm.data)
    detail::rmsNormBackwardAcc(pool, s.qPre.data(), rows * p.numHeads, hd, w.qNorm, p.normEps,
                               dq.data(), dq.data(), false);
  if (w.kNorm.data)
    detail::rmsNormBackwardAcc(pool, s.kPre.data(), rows * p.numKvHeads, hd, w.kNorm, p.normEps,
                               dk.data(), dk.data(), false);
  detail::linearBackwardAcc(pool, w.q, x, rows, dq.data(), dx, false);
  detail::linearBackwardAcc(pool, w.k, x, rows, dk.data(), dx, true);
  detail::linearBackwardAcc(pool, w.v, x, rows, dv.data(), dx, true);
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void gqaForward<T>(ThreadPool&, const AttentionParams&, const AttentionWeightsT<T>&,    \
                              const T*, int64_t, int64_t, T*);                                     \
  template void gqaBackward<T>(ThreadPool&, const AttentionParams&, const AttentionWeightsT<T>&,   \
                               const T*, int64_t, int64_t, const T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
