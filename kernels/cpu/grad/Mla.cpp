// DeepSeek MLA in the explicit form (transformers' DeepseekV2/V3Attention):
//   q    = q_proj(x) or q_b(rmsnorm(q_a(x)))      [rows, heads, nope | rope], rope part rotated
//   kv_a = kv_a(x) = [latent | k_pe]              k_pe: one rotated head shared by all heads
//   kv   = kv_b(rmsnorm(latent))                  [rows, heads, nope | v]
//   K_h  = [kv_h.nope | k_pe],  V_h = kv_h.v,  y = o(attention(q, K, V))
// The inference op computes the same function in the absorbed form (kv_b folded into the query).
// Backward: o, attention, then k_pe's gradient is the sum over heads (it is shared), kv_b, the
// latent norm, the inverse rotations, kv_a, and the q path.
#include "kernels/cpu/grad/Detail.h"

#include <algorithm>

namespace kt::cpu::grad {

namespace {
template <class T> struct MlaState {
  std::vector<T> qa, qaN; // q_lora_rank > 0: q_a(x) and its norm
  std::vector<T> q;       // [rows, heads, qk], rotated
  std::vector<T> kva;     // kv_a(x) as projected: [rows, kvLoraRank + rope]
  std::vector<T> latN;    // normalized latent [rows, kvLoraRank]
  std::vector<T> K, V;    // [rows, heads, qk], [rows, heads, v]
};

template <class T> void validate(const MlaParams& p, const MlaWeightsT<T>& w) {
  using detail::require;
  const char* op = "mla attention";
  require(p.numHeads > 0 && p.kvLoraRank > 0 && p.qkNopeHeadDim >= 0 && p.qkRopeHeadDim > 0 &&
              p.vHeadDim > 0 && p.qLoraRank >= 0,
          op, "head dimensions and ranks must be positive");
  require(p.rope.dim == p.qkRopeHeadDim, op, "rope.dim must equal qk_rope_head_dim");
  const int64_t H = w.kvA.w.cols, nh = p.numHeads, qk = p.qkNopeHeadDim + p.qkRopeHeadDim;
  if (p.qLoraRank > 0) {
    detail::requireProjection(w.qA, op, "q_a_proj", p.qLoraRank, H);
    require(w.qANorm.data && w.qANorm.cols == p.qLoraRank, op, "q_a_norm length differs");
    detail::requireProjection(w.qB, op, "q_b_proj", nh * qk, p.qLoraRank);
  } else {
    detail::requireProjection(w.q, op, "q_proj", nh * qk, H);
  }
  detail::requireProjection(w.kvA, op, "kv_a_proj", p.kvLoraRank + p.qkRopeHeadDim, H);
  require(w.kvANorm.data && w.kvANorm.cols == p.kvLoraRank, op, "kv_a_norm length differs");
  detail::requireProjection(w.kvB, op, "kv_b_proj", nh * (p.qkNopeHeadDim + p.vHeadDim),
                            p.kvLoraRank);
  detail::requireProjection(w.o, op, "o_proj", H, nh * p.vHeadDim);
}

detail::AttnShape shapeOf(const MlaParams& p, int64_t batch, int64_t seqLen) {
  detail::AttnShape s;
  s.batch = batch;
  s.seqLen = seqLen;
  s.heads = s.kvHeads = p.numHeads;
  s.qkDim = p.qkNopeHeadDim + p.qkRopeHeadDim;
  s.vDim = p.vHeadDim;
  s.scale = p.scale;
  return s;
}

template <class T>
MlaState<T> project(ThreadPool& pool, const MlaParams& p, const MlaWeightsT<T>& w, const T* x,
                    int64_t batch, int64_t seqLen, const detail::RopeTable<T>& table,
                    const std::vector<float>& inv) {
  const int64_t rows = batch * seqLen;
  const int nh = p.numHeads, nope = p.qkNopeHeadDim, rope = p.qkRopeHeadDim, vd = p.vHeadDim;
  const int qk = nope + rope, lat = p.kvLoraRank, kvaw = lat + rope;
  MlaState<T> s;
  s.q.resize(size_t(rows * nh * qk));
  if (p.qLoraRank > 0) {
    s.qa.resize(size_t(rows * p.qLoraRank));
    s.qaN.resize(s.qa.size());
    linearForward(pool, w.qA, x, rows, s.qa.data());
    rmsNormForward(pool, s.qa.data(), rows, p.qLoraRank, w.qANorm, p.normEps, s.qaN.data());
    linearForward(pool, w.qB, s.qaN.data(), rows, s.q.data());
  } else {
    linearForward(pool, w.q, x, rows, s.q.data());
  }
  s.kva.resize(size_t(rows * kvaw));
  linearForward(pool, w.kvA, x, rows, s.kva.data());
  std::vector<T> latent(size_t(rows * lat)), kpe(size_t(rows * rope));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(s.kva.data() + r * kvaw, lat, latent.data() + r * lat);
    std::copy_n(s.kva.data() + r * kvaw + lat, rope, kpe.data() + r * rope);
  }
  s.latN.resize(latent.size());
  rmsNormForward(pool, latent.data(), rows, lat, w.kvANorm, p.normEps, s.latN.data());
  for (int64_t r = 0; r < rows; ++r) {
    detail::rope(s.q.data() + r * nh * qk, nh, qk, nope, r % seqLen, p.rope, table, inv, false);
    detail::rope(kpe.data() + r * rope, 1, rope, 0, r % seqLen, p.rope, table, inv, false);
  }
  std::vector<T> kv(size_t(rows * nh * (nope + vd)));
  linearForward(pool, w.kvB, s.latN.data(), rows, kv.data());
  s.K.resize(size_t(rows * nh * qk));
  s.V.resize(size_t(rows * nh * vd));
  for (int64_t r = 0; r < rows; ++r)
    for (int h = 0; h < nh; ++h) {
      const T* src = kv.data() + (r * nh + h) * (nope + vd);
      T* kd = s.K.data() + (r * nh + h) * qk;
      std::copy_n(src, nope, kd);
      std::copy_n(kpe.data() + r * rope, rope, kd + nope);
      std::copy_n(src + nope, vd, s.V.data() + (r * nh + h) * vd);
    }
  return s;
}
} // namespace

template <class T>
void mlaForward(ThreadPool& pool, const MlaParams& p, const MlaWeightsT<T>& w, const T* x,
                int64_t batch, int64_t seqLen, T* y) {
  validate(p, w);
  const int64_t rows = batch * seqLen;
  detail::RopeTable<T> table(p.rope, seqLen);
  std::vector<float> inv = ropeInvFreq(p.rope);
  MlaState<T> s = project(pool, p, w, x, batch, seqLen, table, inv);
  std::vector<T> ctx(size_t(rows * p.numHeads * p.vHeadDim));
  detail::attentionForward(pool, shapeOf(p, batch, seqLen), s.q.data(), s.K.data(), s.V.data(),
                           ctx.data());
  linearForward(pool, w.o, ctx.data(), rows, y);
}

template <class T>
void mlaBackward(ThreadPool& pool, const MlaParams& p, const MlaWeightsT<T>& w, const T* x,
                 int64_t batch, int64_t seqLen, const T* dy, T* dx) {
  validate(p, w);
  const int64_t rows = batch * seqLen;
  const int nh = p.numHeads, nope = p.qkNopeHeadDim, rope = p.qkRopeHeadDim, vd = p.vHeadDim;
  const int qk = nope + rope, lat = p.kvLoraRank, kvaw = lat + rope;
  detail::RopeTable<T> table(p.rope, seqLen);
  std::vector<float> inv = ropeInvFreq(p.rope);
  MlaState<T> s = project(pool, p, w, x, batch, seqLen, table, inv);
  const detail::AttnShape shape = shapeOf(p, batch, seqLen);
  std::vector<T> ctx(size_t(rows * nh * vd));
  detail::attentionForward(pool, shape, s.q.data(), s.K.data(), s.V.data(), ctx.data());

  std::vector<T> dctx(ctx.size());
  detail::linearBackwardAcc(pool, w.o, ctx.data(), rows, dy, dctx.data(), false);
  std::vector<T> dq(s.q.size()), dK(s.K.size()), dV(s.V.size());
  detail::attentionBackward(pool, shape, s.q.data(), s.K.data(), s.V.data(), dctx.data(), dq.data(),
                            dK.data(), dV.data());

  // Split dK/dV into kv_b's output [nope | v] per head and the shared k_pe (summed over heads).
  std::vector<T> dkv(size_t(rows * nh * (nope + vd))), dkva(size_t(rows * kvaw), T(0));
  for (int64_t r = 0; r < rows; ++r) {
    T* dpe = dkva.data() + r * kvaw + lat;
    for (int h = 0; h < nh; ++h) {
      const T* dk = dK.data() + (r * nh + h) * qk;
      T* d = dkv.data() + (r * nh + h) * (nope + vd);
      std::copy_n(dk, nope, d);
      std::copy_n(dV.data() + (r * nh + h) * vd, vd, d + nope);
      for (int i = 0; i < rope; ++i)
        dpe[i] += dk[nope + i];
    }
    detail::rope(dkva.data() + r * kvaw, 1, kvaw, lat, r % seqLen, p.rope, table, inv, true);
  }
  std::vector<T> dlatN(s.latN.size()), latent(s.latN.size()), dlatent(s.latN.size());
  detail::linearBackwardAcc(pool, w.kvB, s.latN.data(), rows, dkv.data(), dlatN.data(), false);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(s.kva.data() + r * kvaw, lat, latent.data() + r * lat);
  detail::rmsNormBackwardAcc(pool, latent.data(), rows, lat, w.kvANorm, p.normEps, dlatN.data(),
                             dlatent.data(), false);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(dlatent.data() + r * lat, lat, dkva.data() + r * kvaw);
  detail::linearBackwardAcc(pool, w.kvA, x, rows, dkva.data(), dx, false);

  for (int64_t r = 0; r < rows; ++r)
    detail::rope(dq.data() + r * nh * qk, nh, qk, nope, r % seqLen, p.rope, table, inv, true);
  if (p.qLoraRank > 0) {
    std::vector<T> dqaN(s.qa.size());
    detail::linearBackwardAcc(pool, w.qB, s.qaN.data(), rows, dq.data(), dqaN.data(), false);
    detail::rmsNormBackwardAcc(pool, s.qa.data(), rows, p.qLoraRank, w.qANorm, p.normEps,
                               dqaN.data(), dqaN.data(), false);
    detail::linearBackwardAcc(pool, w.qA, x, rows, dqaN.data(), dx, true);
  } else {
    detail::linearBackwardAcc(pool, w.q, x, rows, dq.data(), dx, true);
  }
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void mlaForward<T>(ThreadPool&, const MlaParams&, const MlaWeightsT<T>&, const T*,      \
                              int64_t, int64_t, T*);                                               \
  template void mlaBackward<T>(ThreadPool&, const MlaParams&, const MlaWeightsT<T>&, const T*,     \
                               int64_t, int64_t, const T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
