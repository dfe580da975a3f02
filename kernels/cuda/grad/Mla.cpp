// DeepSeek MLA on the GPU in the explicit form (TrainKernels.h), as kernels/cpu/grad Mla.cpp:
// K_h = [kv_b(norm(latent))_h.nope | k_pe], V_h = kv_b(...)_h.v; k_pe's gradient is the sum over
// the heads (it is shared).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/grad/Detail.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"

namespace kt::cuda::grad {

using detail::requireShape;
using detail::rotate;

// ---- MLA (explicit form) ------------------------------------------------------------------------
namespace {
struct MlaState {
  float *qa, *qaN, *q, *kva, *latN, *K, *V;
};

AttnShape mlaShape(const DevMla& a, int64_t batch, int64_t seqLen) {
  AttnShape s;
  s.batch = batch;
  s.seqLen = seqLen;
  s.heads = s.kvHeads = a.numHeads;
  s.qkDim = a.qkNopeHeadDim + a.qkRopeHeadDim;
  s.vDim = a.vHeadDim;
  s.scale = a.scale;
  return s;
}

MlaState mlaProject(Context& c, const DevMla& a, const float* x, int64_t batch, int64_t seqLen) {
  const int64_t rows = batch * seqLen;
  const int nh = a.numHeads, nope = a.qkNopeHeadDim, rope = a.qkRopeHeadDim, vd = a.vHeadDim;
  const int64_t qk = nope + rope, lat = a.kvLoraRank, kvaw = lat + rope;
  requireShape(a.rope.dim == rope, "mla attention", "rope.dim must equal qk_rope_head_dim");
  MlaState s;
  s.qa = s.qaN = nullptr;
  s.q = c.scratch(kAttnSlot, rows * nh * qk);
  if (a.qLoraRank > 0) {
    s.qa = c.scratch(kAttnSlot + 1, rows * a.qLoraRank);
    s.qaN = c.scratch(kAttnSlot + 2, rows * a.qLoraRank);
    linearForward(c, a.qA, x, rows, s.qa);
    rmsNormForward(c, s.qa, rows, a.qLoraRank, a.qANorm, a.normEps, s.qaN);
    linearForward(c, a.qB, s.qaN, rows, s.q);
  } else {
    linearForward(c, a.q, x, rows, s.q);
  }
  s.kva = c.scratch(kAttnSlot + 3, rows * kvaw);
  linearForward(c, a.kvA, x, rows, s.kva);
  s.latN = c.scratch(kAttnSlot + 4, rows * lat);
  rmsNormRows(s.kva, kvaw, rows, lat, a.kvANorm, a.normEps, s.latN, lat);
  c.checkLaunch("mla kv_a norm");
  float* kpe = c.scratch(kAttnSlot + 5, rows * rope);
  copyRows(kpe, rope, s.kva + lat, kvaw, rows, rope, 1, false);
  rotate(c, a.rope, s.q, rows, nh, nh * qk, qk, nope, seqLen, false, "mla rope");
  rotate(c, a.rope, kpe, rows, 1, rope, rope, 0, seqLen, false, "mla rope");
  float* kv = c.scratch(kAttnSlot + 6, rows * nh * (nope + vd));
  linearForward(c, a.kvB, s.latN, rows, kv);
  s.K = c.scratch(kAttnSlot + 7, rows * nh * qk);
  s.V = c.scratch(kAttnSlot + 8, rows * nh * vd);
  // K_h = [kv_h.nope | k_pe], V_h = kv_h.v; one "row" per (token, head).
  copyRows(s.K, qk, kv, nope + vd, rows * nh, nope, 1, false);
  copyRows(s.K + nope, qk, kpe, rope, rows * nh, rope, nh, false);
  copyRows(s.V, vd, kv + nope, nope + vd, rows * nh, vd, 1, false);
  c.checkLaunch("mla K/V assembly");
  return s;
}
} // namespace

void mlaForward(Context& c, const DevMla& a, const float* x, int64_t batch, int64_t seqLen,
                float* y) {
  const int64_t rows = batch * seqLen;
  MlaState s = mlaProject(c, a, x, batch, seqLen);
  float* ctx = c.scratch(kAttnSlot + 9, rows * a.numHeads * a.vHeadDim);
  attentionForward(c, mlaShape(a, batch, seqLen), s.q, s.K, s.V, ctx);
  linearForward(c, a.o, ctx, rows, y);
}

void mlaBackward(Context& c, const DevMla& a, const float* x, int64_t batch, int64_t seqLen,
                 const float* dy, float* dx) {
  const int64_t rows = batch * seqLen;
  const int nh = a.numHeads, nope = a.qkNopeHeadDim, rope = a.qkRopeHeadDim, vd = a.vHeadDim;
  const int64_t qk = nope + rope, lat = a.kvLoraRank, kvaw = lat + rope;
  MlaState s = mlaProject(c, a, x, batch, seqLen);
  const AttnShape shape = mlaShape(a, batch, seqLen);
  float* ctx = c.scratch(kAttnSlot + 9, rows * nh * vd);
  attentionForward(c, shape, s.q, s.K, s.V, ctx);
  float* dctx = c.scratch(kAttnSlot + 10, rows * nh * vd);
  linearBackward(c, a.o, ctx, rows, dy, dctx, false);
  float* dq = c.scratch(kAttnSlot + 11, rows * nh * qk);
  float* dK = c.scratch(kAttnSlot + 12, rows * nh * qk);
  float* dV = c.scratch(kAttnSlot + 13, rows * nh * vd);
  attentionBackward(c, shape, s.q, s.K, s.V, dctx, dq, dK, dV);

  // kv_b's output gradient [nope | v] per head; k_pe's is the sum over heads (it is shared).
  float* dkv = c.scratch(kAttnSlot + 14, rows * nh * (nope + vd));
  float* dkva = c.scratch(kAttnSlot + 15, rows * kvaw);
  copyRows(dkv, nope + vd, dK, qk, rows * nh, nope, 1, false);
  copyRows(dkv + nope, nope + vd, dV, vd, rows * nh, vd, 1, false);
  sumGroups(dkva + lat, kvaw, dK + nope, qk, rows, nh, rope);
  c.checkLaunch("mla_grad dK/dV split");
  rotate(c, a.rope, dkva, rows, 1, kvaw, kvaw, lat, seqLen, true, "mla_grad rope");
  float* dlatN = c.scratch(kAttnSlot + 16, rows * lat);
  linearBackward(c, a.kvB, s.latN, rows, dkv, dlatN, false);
  // The latent's norm backward writes straight into dkva's first lat columns.
  rmsNormBackwardRows(s.kva, kvaw, rows, lat, a.kvANorm, a.normEps, dlatN, lat, dkva, kvaw, false);
  c.checkLaunch("mla_grad kv_a norm");
  linearBackward(c, a.kvA, x, rows, dkva, dx, false);

  rotate(c, a.rope, dq, rows, nh, nh * qk, qk, nope, seqLen, true, "mla_grad rope");
  if (a.qLoraRank > 0) {
    float* dqaN = c.scratch(kAttnSlot + 17, rows * a.qLoraRank);
    linearBackward(c, a.qB, s.qaN, rows, dq, dqaN, false);
    rmsNormBackward(c, s.qa, rows, a.qLoraRank, a.qANorm, a.normEps, dqaN, dqaN, false);
    linearBackward(c, a.qA, x, rows, dqaN, dx, true);
  } else {
    linearBackward(c, a.q, x, rows, dq, dx, true);
  }
}

} // namespace kt::cuda::grad
