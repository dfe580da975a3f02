// Causal attention on the GPU (TrainKernels.h), as kernels/cpu/grad Attention.cpp computes it. Per
// sequence b and per position g inside a GQA
// group, one strided-batched GEMM over the kv heads (head h = kvh·group + g) forms the scores
// S_h = scale·Q_h K_kvhᵀ [L, L]; causalSoftmax turns them into P; ctx_h = P_h V_kvh. Backward:
//   dP_h = dctx_h V_kvhᵀ,  dV_kvh += P_hᵀ dctx_h,  dS = P ⊙ (dP - rowsum(P ⊙ dP)),
//   dq_h = scale·dS_h K_kvh,  dK_kvh += scale·dS_hᵀ Q_h.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/Detail.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

namespace kt::cuda::grad {

using detail::requireShape;

void attentionForward(Context& c, const AttnShape& s, const float* q, const float* k,
                      const float* v, float* ctx) {
  requireShape(s.heads > 0 && s.kvHeads > 0 && s.heads % s.kvHeads == 0, "attention",
               "num_kv_heads must divide num_heads");
  const int64_t L = s.seqLen, group = s.heads / s.kvHeads;
  const int64_t qRow = int64_t(s.heads) * s.qkDim, kRow = int64_t(s.kvHeads) * s.qkDim;
  const int64_t vRow = int64_t(s.kvHeads) * s.vDim, oRow = int64_t(s.heads) * s.vDim;
  float* P = c.scratch(kAttnCoreSlot, int64_t(s.heads) * L * L);
  for (int64_t b = 0; b < s.batch; ++b) {
    const float* qb = q + b * L * qRow;
    const float* kb = k + b * L * kRow;
    const float* vb = v + b * L * vRow;
    float* ob = ctx + b * L * oRow;
    for (int64_t g = 0; g < group; ++g)
      c.gemm("attention scores", false, true, L, L, s.qkDim, s.scale, qb + g * s.qkDim, qRow, kb,
             kRow, 0.f, P + g * L * L, L, s.kvHeads, group * s.qkDim, s.qkDim, group * L * L);
    causalSoftmax(P, s.heads, L);
    c.checkLaunch("attention softmax");
    for (int64_t g = 0; g < group; ++g)
      c.gemm("attention P·V", false, false, L, s.vDim, L, 1.f, P + g * L * L, L, vb, vRow, 0.f,
             ob + g * s.vDim, oRow, s.kvHeads, group * L * L, s.vDim, group * s.vDim);
  }
}

void attentionBackward(Context& c, const AttnShape& s, const float* q, const float* k,
                       const float* v, const float* dctx, float* dq, float* dk, float* dv) {
  requireShape(s.heads > 0 && s.kvHeads > 0 && s.heads % s.kvHeads == 0, "attention_grad",
               "num_kv_heads must divide num_heads");
  const int64_t L = s.seqLen, group = s.heads / s.kvHeads;
  const int64_t qRow = int64_t(s.heads) * s.qkDim, kRow = int64_t(s.kvHeads) * s.qkDim;
  const int64_t vRow = int64_t(s.kvHeads) * s.vDim, oRow = int64_t(s.heads) * s.vDim;
  float* P = c.scratch(kAttnCoreSlot, int64_t(s.heads) * L * L);
  float* dP = c.scratch(kAttnCoreSlot + 1, int64_t(s.heads) * L * L);
  for (int64_t b = 0; b < s.batch; ++b) {
    const float* qb = q + b * L * qRow;
    const float* kb = k + b * L * kRow;
    const float* vb = v + b * L * vRow;
    const float* dob = dctx + b * L * oRow;
    float* dqb = dq + b * L * qRow;
    float* dkb = dk + b * L * kRow;
    float* dvb = dv + b * L * vRow;
    for (int64_t g = 0; g < group; ++g)
      c.gemm("attention_grad scores", false, true, L, L, s.qkDim, s.scale, qb + g * s.qkDim, qRow,
             kb, kRow, 0.f, P + g * L * L, L, s.kvHeads, group * s.qkDim, s.qkDim, group * L * L);
    causalSoftmax(P, s.heads, L);
    c.checkLaunch("attention_grad softmax");
    for (int64_t g = 0; g < group; ++g) {
      // dP_h = dctx_h V_kvhᵀ; dV_kvh (+)= P_hᵀ dctx_h (the group's heads add up).
      c.gemm("attention_grad dP", false, true, L, L, s.vDim, 1.f, dob + g * s.vDim, oRow, vb, vRow,
             0.f, dP + g * L * L, L, s.kvHeads, group * s.vDim, s.vDim, group * L * L);
      c.gemm("attention_grad dV", true, false, L, s.vDim, L, 1.f, P + g * L * L, L,
             dob + g * s.vDim, oRow, g ? 1.f : 0.f, dvb, vRow, s.kvHeads, group * L * L,
             group * s.vDim, s.vDim);
    }
    softmaxBackward(P, dP, s.heads, L);
    c.checkLaunch("attention_grad softmax backward");
    for (int64_t g = 0; g < group; ++g) {
      c.gemm("attention_grad dq", false, false, L, s.qkDim, L, s.scale, dP + g * L * L, L, kb, kRow,
             0.f, dqb + g * s.qkDim, qRow, s.kvHeads, group * L * L, s.qkDim, group * s.qkDim);
      c.gemm("attention_grad dk", true, false, L, s.qkDim, L, s.scale, dP + g * L * L, L,
             qb + g * s.qkDim, qRow, g ? 1.f : 0.f, dkb, kRow, s.kvHeads, group * L * L,
             group * s.qkDim, s.qkDim);
    }
  }
}

} // namespace kt::cuda::grad
