#pragma once
// The training math of LoRA fine-tuning on frozen base weights: for every model op a forward that
// applies optional LoRA adapters and a backward that, from the op's saved inputs and the upstream
// gradient dy, writes dx and accumulates the adapters' gradients.
//
// Conventions are those of the inference ops (runtime/exec/cpu, kernels/cpu): the same RMSNorm,
// RoPE schedules and pair layouts, GQA, DeepSeek MLA, MoE routing variants and SwiGLU. The f32
// forwards call the inference kernels themselves (linear, rmsNorm, applyRope, gqaAttention,
// routeToken); every function is also instantiated for double so that tests can check gradients
// against central differences to ~1e-6.
//
// Layout: activations are row-major [rows, features]; a training batch of B sequences of length L
// is [B*L, features] with positions 0..L-1 in every sequence (no KV cache in training).
//
// What a backward recomputes (the compiler trades memory for compute by saving only op inputs):
// - linear: the adapter's x·Aᵀ.
// - rms_norm: the inverse RMS of each row.
// - mlp: the gate and up projections and the activation.
// - gqa / mla attention: every projection, norm and rotation of the input, and the attention
//   probabilities, one query row at a time (no [L, L] matrix is ever stored).
// - moe: router logits, the top-k selection (deterministic, so it equals the forward's), the
//   routing weights and every selected expert's forward.
// - lm_head + cross-entropy: the logits, a chunk of tokens at a time.
//
// LoRA gradients are accumulated (+=) so that micro-batches and projections that share a factor
// (PEFT's fused gate_up adapter: one A for gate and up) add up. Every output element, adapter
// gradients included, is computed by one task in a fixed order, so results do not depend on the
// number of threads.
#include "kernels/cpu/Matrix.h"
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/Rope.h"

#include <cstdint>
#include <vector>

namespace kt {
class ThreadPool;
}

namespace kt::cpu::grad {

// A LoRA adapter on a weight W [out, in]: the effective weight is W + scale·B·A, i.e.
// y = x Wᵀ + scale·(x Aᵀ) Bᵀ (PEFT's convention, dropout 0).
template <class T> struct LoraT {
  const T* A = nullptr; // [r, in]
  const T* B = nullptr; // [out, r]
  int r = 0;
  T scale = 0;     // alpha / r
  T* dA = nullptr; // [r, in], accumulated (+=); null when A is not trained
  T* dB = nullptr; // [out, r], accumulated (+=); null when B is not trained
};
using Lora = LoraT<float>;

// A frozen projection with its optional bias and adapter. An absent bias has bias.data == nullptr.
template <class T> struct ProjectionT {
  MatrixView w;    // [out, in]
  MatrixView bias; // [out] or empty
  const LoraT<T>* lora = nullptr;
};
using Projection = ProjectionT<float>;

// ---- linear: y = x Wᵀ + b (+ LoRA) -----------------------------------------------------------
template <class T>
void linearForward(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows, T* y);
// dx (may be null: adapter gradients only) = dy · (W + scale·B·A).
template <class T>
void linearBackward(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows,
                    const T* dy, T* dx);

// ---- rms_norm over the last `dim` features (frozen weight w) ---------------------------------
template <class T>
void rmsNormForward(ThreadPool& pool, const T* x, int64_t rows, int64_t dim, const MatrixView& w,
                    double eps, T* y);
// dx may equal dy.
template <class T>
void rmsNormBackward(ThreadPool& pool, const T* x, int64_t rows, int64_t dim, const MatrixView& w,
                     double eps, const T* dy, T* dx);

// ---- add: y = a + b; the backward hands dy to both inputs ------------------------------------
template <class T> void addForward(const T* a, const T* b, int64_t n, T* y);
template <class T> void addBackward(const T* dy, int64_t n, T* da, T* db);

// ---- SwiGLU MLP: y = down(silu(gate(x)) * up(x)) ----------------------------------------------
template <class T> struct MlpWeightsT { ProjectionT<T> gate, up, down; };
using MlpWeights = MlpWeightsT<float>;

template <class T>
void mlpForward(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows, T* y);
template <class T>
void mlpBackward(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows, const T* dy,
                 T* dx);

// ---- lm_head + mean causal cross-entropy -----------------------------------------------------
// labels [batch*seqLen] are the sequences themselves, shifted inside as Hugging Face does: position
// t of a sequence predicts labels[t + 1]; the last position predicts nothing; kIgnoreIndex labels
// are skipped. The loss is the sum over predicted positions divided by `normalizer` (0: their count
// in this batch; pass the count of the whole optimizer step when accumulating micro-batches).
constexpr int32_t kIgnoreIndex = -100;
// The rows of a [batch * seqLen] batch that the loss predicts, in order, and their targets (row r
// predicts labels[r + 1] within its sequence; kIgnoreIndex targets are skipped). Throws kt::Error
// for a label outside [0, vocab). Shared by the CPU loss and the GPU's (kernels/cuda/grad).
void predictedRows(const int32_t* labels, int64_t batch, int64_t seqLen, int64_t vocab,
                   std::vector<int32_t>* rows, std::vector<int32_t>* targets);
struct LossResult {
  double loss = 0;   // sum / normalizer
  int64_t count = 0; // predicted positions in this batch
};
template <class T>
LossResult lmHeadLossForward(ThreadPool& pool, const MatrixView& lmHead, const T* x, int64_t batch,
                             int64_t seqLen, const int32_t* labels, int64_t normalizer = 0);
// Also returns the loss (it recomputes the logits anyway); dx of positions without a target is 0.
template <class T>
LossResult lmHeadLossBackward(ThreadPool& pool, const MatrixView& lmHead, const T* x, int64_t batch,
                              int64_t seqLen, const int32_t* labels, T* dx, int64_t normalizer = 0);

// ---- GQA / MHA attention (plan AttentionAttrs) -----------------------------------------------
// q/k/v/o projections with optional biases and adapters, optional per-head RMSNorm of q and k
// (Qwen3, before the rotation), RoPE on the first rope.dim channels of each head, causal softmax.
struct AttentionParams {
  int numHeads = 0, numKvHeads = 0, headDim = 0;
  double scale = 0; // score scale (1/sqrt(head_dim) unless the config says otherwise)
  RopeParams rope;
  double normEps = 1e-6; // q/k norm epsilon
};
template <class T> struct AttentionWeightsT {
  ProjectionT<T> q, k, v, o;
  MatrixView qNorm, kNorm; // [head_dim] or empty
};
using AttentionWeights = AttentionWeightsT<float>;

template <class T>
void gqaForward(ThreadPool& pool, const AttentionParams& p, const AttentionWeightsT<T>& w,
                const T* x, int64_t batch, int64_t seqLen, T* y);
template <class T>
void gqaBackward(ThreadPool& pool, const AttentionParams& p, const AttentionWeightsT<T>& w,
                 const T* x, int64_t batch, int64_t seqLen, const T* dy, T* dx);

// ---- DeepSeek MLA attention (plan MlaAttrs) --------------------------------------------------
// q = q_proj(x), or q_b(rmsnorm(q_a(x))) when qLoraRank > 0; kv_a(x) = [latent | k_pe]; the latent
// is RMS-normalized and up-projected by kv_b into per-head [k_nope | v]; the rotary part of q and
// the single shared k_pe head are rotated. Computed in the explicit (non-absorbed) form, as
// transformers does; the absorbed inference form is the same function. Norms are frozen.
struct MlaParams {
  int numHeads = 0, qLoraRank = 0, kvLoraRank = 0;
  int qkNopeHeadDim = 0, qkRopeHeadDim = 0, vHeadDim = 0;
  double scale = 0; // includes YaRN's mscale² where the config asks for it
  RopeParams rope;
  double normEps = 1e-6;
};
template <class T> struct MlaWeightsT {
  ProjectionT<T> q;  // qLoraRank == 0
  ProjectionT<T> qA; // qLoraRank > 0 ...
  MatrixView qANorm;
  ProjectionT<T> qB;
  ProjectionT<T> kvA; // kv_a_proj_with_mqa
  MatrixView kvANorm;
  ProjectionT<T> kvB, o;
};
using MlaWeights = MlaWeightsT<float>;

template <class T>
void mlaForward(ThreadPool& pool, const MlaParams& p, const MlaWeightsT<T>& w, const T* x,
                int64_t batch, int64_t seqLen, T* y);
template <class T>
void mlaBackward(ThreadPool& pool, const MlaParams& p, const MlaWeightsT<T>& w, const T* x,
                 int64_t batch, int64_t seqLen, const T* dy, T* dx);

// ---- MoE (plan MoeAttrs = MoeRoutingParams) ---------------------------------------------------
// y = Σ_k w_k(x) · expert_{e_k}(x) [+ σ(x·g) ·] shared(x). The router (and correction bias, and
// shared_expert_gate) are frozen. The top-k selection is piecewise constant in x, so its gradient
// is zero; the weights w_k are differentiable functions of the router logits (softmax or sigmoid
// scores of the selected experts, optional renormalization, routed scaling factor) and the backward
// carries dx through them. The correction bias only steers the selection.
template <class T> struct MoeWeightsT {
  MatrixView router;                       // [E, H]
  MatrixView correctionBias;               // [E] or empty
  const MlpWeightsT<T>* experts = nullptr; // E routed experts (each with its own adapters)
  const MlpWeightsT<T>* shared = nullptr;  // the shared expert(s), merged into one MLP; or null
  MatrixView sharedExpertGate;             // [1, H] (Qwen2-MoE) or empty
};
using MoeWeights = MoeWeightsT<float>;

template <class T>
void moeForward(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeightsT<T>& w, const T* x,
                int64_t rows, T* y);
template <class T>
void moeBackward(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeightsT<T>& w, const T* x,
                 int64_t rows, const T* dy, T* dx);

// Routing of one token, split into the selection (exactly routeToken's, computed on the f32 logits)
// and the weights as differentiable functions of the logits. bias: correction bias or null.
template <class T>
void routeForward(const T* logits, const float* bias, const MoeRoutingParams& p, int* experts,
                  T* weights);
// dlogits[E] (overwritten) from dweights[topK] for the experts routeForward chose.
template <class T>
void routeBackward(const T* logits, const MoeRoutingParams& p, const int* experts,
                   const T* dweights, T* dlogits);

} // namespace kt::cpu::grad
