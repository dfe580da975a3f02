// GQA attention on the GPU (TrainKernels.h), as kernels/cpu/grad Gqa.cpp: q/k/v projections
// (biases, adapters), Qwen3's per-head q/k norms before the rotation, RoPE, causal attention, o.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/grad/Detail.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"

namespace kt::cuda::grad {

using detail::rotate;

// ---- GQA --------------------------------------------------------------------------------------
namespace {
struct GqaState {
  float *qPre, *kPre, *q, *k, *v;
};

AttnShape gqaShape(const DevAttention& a, int64_t batch, int64_t seqLen) {
  AttnShape s;
  s.batch = batch;
  s.seqLen = seqLen;
  s.heads = a.numHeads;
  s.kvHeads = a.numKvHeads;
  s.qkDim = s.vDim = a.headDim;
  s.scale = a.scale;
  return s;
}

GqaState gqaProject(Context& c, const DevAttention& a, const float* x, int64_t batch,
                    int64_t seqLen) {
  const int64_t rows = batch * seqLen, hd = a.headDim;
  const int64_t qn = rows * a.numHeads * hd, kn = rows * a.numKvHeads * hd;
  GqaState s;
  s.q = c.scratch(kAttnSlot, qn);
  s.k = c.scratch(kAttnSlot + 1, kn);
  s.v = c.scratch(kAttnSlot + 2, kn);
  s.qPre = s.kPre = nullptr;
  linearForward(c, a.q, x, rows, s.q);
  linearForward(c, a.k, x, rows, s.k);
  linearForward(c, a.v, x, rows, s.v);
  if (a.qNorm) { // Qwen3: RMSNorm of each head before the rotation
    s.qPre = c.scratch(kAttnSlot + 3, qn);
    copyRows(s.qPre, qn, s.q, qn, 1, qn, 1, false);
    rmsNormForward(c, s.qPre, rows * a.numHeads, hd, a.qNorm, a.normEps, s.q);
  }
  if (a.kNorm) {
    s.kPre = c.scratch(kAttnSlot + 4, kn);
    copyRows(s.kPre, kn, s.k, kn, 1, kn, 1, false);
    rmsNormForward(c, s.kPre, rows * a.numKvHeads, hd, a.kNorm, a.normEps, s.k);
  }
  rotate(c, a.rope, s.q, rows, a.numHeads, a.numHeads * hd, hd, 0, seqLen, false, "attention rope");
  rotate(c, a.rope, s.k, rows, a.numKvHeads, a.numKvHeads * hd, hd, 0, seqLen, false,
         "attention rope");
  return s;
}
} // namespace

void gqaForward(Context& c, const DevAttention& a, const float* x, int64_t batch, int64_t seqLen,
                float* y) {
  const int64_t rows = batch * seqLen;
  GqaState s = gqaProject(c, a, x, batch, seqLen);
  float* ctx = c.scratch(kAttnSlot + 5, rows * a.numHeads * a.headDim);
  attentionForward(c, gqaShape(a, batch, seqLen), s.q, s.k, s.v, ctx);
  linearForward(c, a.o, ctx, rows, y);
}

void gqaBackward(Context& c, const DevAttention& a, const float* x, int64_t batch, int64_t seqLen,
                 const float* dy, float* dx) {
  const int64_t rows = batch * seqLen, hd = a.headDim;
  const int64_t qn = rows * a.numHeads * hd, kn = rows * a.numKvHeads * hd;
  GqaState s = gqaProject(c, a, x, batch, seqLen);
  const AttnShape shape = gqaShape(a, batch, seqLen);
  float* ctx = c.scratch(kAttnSlot + 5, qn);
  attentionForward(c, shape, s.q, s.k, s.v, ctx);
  float* dctx = c.scratch(kAttnSlot + 6, qn);
  linearBackward(c, a.o, ctx, rows, dy, dctx, false);
  float* dq = c.scratch(kAttnSlot + 7, qn);
  float* dk = c.scratch(kAttnSlot + 8, kn);
  float* dv = c.scratch(kAttnSlot + 9, kn);
  attentionBackward(c, shape, s.q, s.k, s.v, dctx, dq, dk, dv);
  rotate(c, a.rope, dq, rows, a.numHeads, a.numHeads * hd, hd, 0, seqLen, true,
         "attention_grad rope");
  rotate(c, a.rope, dk, rows, a.numKvHeads, a.numKvHeads * hd, hd, 0, seqLen, true,
         "attention_grad rope");
  if (a.qNorm)
    rmsNormBackward(c, s.qPre, rows * a.numHeads, hd, a.qNorm, a.normEps, dq, dq, false);
  if (a.kNorm)
    rmsNormBackward(c, s.kPre, rows * a.numKvHeads, hd, a.kNorm, a.normEps, dk, dk, false);
  linearBackward(c, a.q, x, rows, dq, dx, false);
  linearBackward(c, a.k, x, rows, dk, dx, true);
  linearBackward(c, a.v, x, rows, dv, dx, true);
}

} // namespace kt::cuda::grad
