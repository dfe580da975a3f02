#pragma once
// LoRA training on the GPU: the f32 forward and backward of every op of a train_step that runs on
// a GPU, with exactly kernels/cpu/grad's math (Grad.h: conventions, what each backward recomputes,
// accumulation of adapter gradients). Plain C++ over kernels/cuda (cuBLAS f32 GEMMs without TF32,
// GradKernels.h); every pointer is a device pointer and every weight an f32 row-major matrix. A
// failed CUDA or cuBLAS call throws kt::Error naming the op and the step that failed.
//
// Attention materializes, per sequence, the [heads, L, L] probabilities with strided-batched
// GEMMs (training sequences are at most a few thousand tokens), where the CPU recomputes them one
// query row at a time.
#include "kernels/cuda/grad/GradBlas.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kt::cuda::grad {

// A LoRA adapter (cpu::grad::Lora): y += scale·(x Aᵀ) Bᵀ. B (and dB) point at the adapter rows of
// this weight; dA/dB are accumulated (+=), null when not trained.
struct DevLora {
  const float* A = nullptr; // [r, in]
  const float* B = nullptr; // [out, r]
  int r = 0;
  float scale = 0;
  float* dA = nullptr;
  float* dB = nullptr;
};

struct DevProjection {
  const float* w = nullptr;    // [out, in]
  const float* bias = nullptr; // [out] or null
  int64_t out = 0, in = 0;
  const DevLora* lora = nullptr;
};

struct DevMlp {
  DevProjection gate, up, down;
};

// RoPE of the plan (cpu::RopeParams folded into its inverse frequencies, as the inference backend).
struct DevRope {
  const float* invFreq = nullptr; // [dim / 2] on the GPU
  int dim = 0;
  float attentionFactor = 1.f;
  bool interleaved = false;
};

struct DevAttention { // cpu::grad::AttentionParams + AttentionWeights
  int numHeads = 0, numKvHeads = 0, headDim = 0;
  float scale = 0;
  DevRope rope;
  float normEps = 1e-6f;
  DevProjection q, k, v, o;
  const float* qNorm = nullptr; // [headDim] or null
  const float* kNorm = nullptr;
};

struct DevMla { // cpu::grad::MlaParams + MlaWeights
  int numHeads = 0, qLoraRank = 0, kvLoraRank = 0;
  int qkNopeHeadDim = 0, qkRopeHeadDim = 0, vHeadDim = 0;
  float scale = 0;
  DevRope rope;
  float normEps = 1e-6f;
  DevProjection q, qA, qB, kvA, kvB, o;
  const float* qANorm = nullptr;
  const float* kvANorm = nullptr;
};

// cuBLAS, scratch memory (grow-only slots, so steady-state training allocates nothing) and the
// byte counts kt-rt train reports.
class Context {
public:
  // Throws kt::Error when cuBLAS cannot start.
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  GradBlas& blas() { return *blas_; }
  // Scratch slot `i` with room for at least `floats` floats (contents not kept when it grows).
  float* scratch(int i, int64_t floats);
  size_t scratchBytes() const;
  // Throws kt::Error "<op>: <err>" when !ok, or when a kernel launch failed.
  void check(bool ok, const std::string& err, const char* op);
  void checkLaunch(const char* op);
  // Row-major GEMM (GradBlas::gemm) that throws on failure.
  void gemm(const char* op, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc, int64_t batch = 1, int64_t strideA = 0, int64_t strideB = 0,
            int64_t strideC = 0);

private:
  std::unique_ptr<GradBlas> blas_;
  struct Slot {
    float* p = nullptr;
    int64_t floats = 0;
  };
  std::vector<Slot> slots_;
};

// Slots 0..kOpSlots-1 are the ops' own; callers of several ops keep theirs at kOpSlots and above.
constexpr int kLinearSlot = 0;   // 2 slots: u, du
constexpr int kMlpSlot = 2;      // 4 slots
constexpr int kAttnCoreSlot = 6; // 2 slots: P, dP
constexpr int kAttnSlot = 8;     // GQA / MLA state: 20 slots
constexpr int kLossSlot = 28;    // 5 slots
constexpr int kOpSlots = 33;

// ---- linear: y = x Wᵀ + b + scale·(x Aᵀ) Bᵀ --------------------------------------------------
void linearForward(Context& c, const DevProjection& p, const float* x, int64_t rows, float* y);
// dx (null: adapter gradients only) (+)= dy·(W + scale·B·A); dA, dB accumulated.
void linearBackward(Context& c, const DevProjection& p, const float* x, int64_t rows,
                    const float* dy, float* dx, bool accumulate);

// ---- rms_norm (frozen weight w [dim]) ---------------------------------------------------------
void rmsNormForward(Context& c, const float* x, int64_t rows, int64_t dim, const float* w,
                    float eps, float* y);
void rmsNormBackward(Context& c, const float* x, int64_t rows, int64_t dim, const float* w,
                     float eps, const float* dy, float* dx, bool accumulate);

// ---- SwiGLU MLP ------------------------------------------------------------------------------
void mlpForward(Context& c, const DevMlp& w, const float* x, int64_t rows, float* y);
void mlpBackward(Context& c, const DevMlp& w, const float* x, int64_t rows, const float* dy,
                 float* dx, bool accumulate);

// ---- causal attention core over B sequences of L (q [B*L, heads, qk], k [B*L, kvHeads, qk],
// v [B*L, kvHeads, vd], ctx [B*L, heads, vd]) ----------------------------------------------------
struct AttnShape {
  int64_t batch = 0, seqLen = 0;
  int heads = 0, kvHeads = 0, qkDim = 0, vDim = 0;
  float scale = 0;
};
void attentionForward(Context& c, const AttnShape& s, const float* q, const float* k,
                      const float* v, float* ctx);
// dq, dk, dv overwritten.
void attentionBackward(Context& c, const AttnShape& s, const float* q, const float* k,
                       const float* v, const float* dctx, float* dq, float* dk, float* dv);

// ---- GQA (Qwen3 q/k norms, biases) and DeepSeek MLA (explicit form) ---------------------------
void gqaForward(Context& c, const DevAttention& a, const float* x, int64_t batch, int64_t seqLen,
                float* y);
void gqaBackward(Context& c, const DevAttention& a, const float* x, int64_t batch, int64_t seqLen,
                 const float* dy, float* dx);
void mlaForward(Context& c, const DevMla& a, const float* x, int64_t batch, int64_t seqLen,
                float* y);
void mlaBackward(Context& c, const DevMla& a, const float* x, int64_t batch, int64_t seqLen,
                 const float* dy, float* dx);

// ---- lm_head + causal cross-entropy (cpu::grad::lmHeadLoss*: labels shifted inside, -100
// ignored, sum / normalizer; normalizer 0: the batch's count) ---------------------------------
struct LossResult {
  double loss = 0;
  int64_t count = 0;
};
// labels on the host [batch*seqLen]; dx (null: loss only) [batch*seqLen, H] overwritten, zero at
// positions without a target. Logits exist for a chunk of up to 2^24 of them at a time.
LossResult lmHeadLoss(Context& c, const float* lmHead, int64_t vocab, int64_t hidden,
                      const float* x, int64_t batch, int64_t seqLen, const int32_t* labels,
                      float* dx, int64_t normalizer);

} // namespace kt::cuda::grad
