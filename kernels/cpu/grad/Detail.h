#pragma once
// Building blocks shared by the op files of kernels/cpu/grad (not part of the public API).
#include "kernels/cpu/grad/Grad.h"
#include "runtime/support/Error.h"

#include <string>
#include <vector>

namespace kt::cpu::grad::detail {

// ---- products with a frozen weight W [N, K] (any MatrixView format) ---------------------------
// y[t, n] = Σ_k x[t, k] W[n, k] + bias[n] (overwrites y); f32 runs cpu::linear.
template <class T>
void matmulXWt(ThreadPool& pool, const T* x, int64_t rows, const MatrixView& w,
               const MatrixView& bias, T* y);
// dx[t, k] (+)= Σ_n dy[t, n] W[n, k]. Each weight row is converted once per call.
template <class T>
void matmulDyW(ThreadPool& pool, const T* dy, int64_t rows, const MatrixView& w, T* dx,
               bool accumulate);

// ---- dense products (adapters, attention pieces); row-major, contiguous ----------------------
// Σ a[i]·b[i] with 32 partial sums (vectorized; AVX-512/AVX2/baseline clones picked by CPUID).
float dotF32(const float* a, const float* b, int64_t n);
// y[i] += alpha·x[i], likewise compiled for AVX-512 / AVX2 / baseline.
void axpyF32(float alpha, const float* x, float* y, int64_t n);
// c[M, N] (+)= alpha · a[M, K] · b[N, K]ᵀ
template <class T>
void gemmNT(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate);
// c[M, N] (+)= alpha · a[M, K] · b[K, N]
template <class T>
void gemmNN(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate);
// c[M, N] (+)= alpha · a[K, M]ᵀ · b[K, N]  (weight gradients: a sum over tokens)
template <class T>
void gemmTN(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate);

// ---- linear with accumulation into dx (ops sum the gradients of several projections) --------
template <class T>
void linearBackwardAcc(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows,
                       const T* dy, T* dx, bool accumulate);

// ---- RMSNorm with accumulation ----------------------------------------------------------------
template <class T>
void rmsNormBackwardAcc(ThreadPool& pool, const T* x, int64_t rows, int64_t dim,
                        const MatrixView& w, double eps, const T* dy, T* dx, bool accumulate);

// ---- RoPE ------------------------------------------------------------------------------------
// cos/sin of every position 0..len-1 (attention factor included), computed as applyRope does.
template <class T> struct RopeTable {
  int half = 0;
  std::vector<T> cos, sin; // [len, half]
  RopeTable(const RopeParams& p, int64_t len);
};
// Rotates `heads` vectors of length `stride` (the rotated part starts at `offset`) of one token at
// `position`. inverse: multiplies by the transposed rotation (rotation by -angle, same factor),
// which is the backward of the forward rotation. f32 forward calls cpu::applyRope.
template <class T>
void rope(T* x, int heads, int64_t stride, int64_t offset, int64_t position, const RopeParams& p,
          const RopeTable<T>& table, const std::vector<float>& invFreq, bool inverse);

// ---- causal softmax attention over B sequences of length L ----------------------------------
// q: [B*L, heads, qkDim], k: [B*L, kvHeads, qkDim], v: [B*L, kvHeads, vDim];
// ctx: [B*L, heads, vDim].
struct AttnShape {
  int64_t batch = 0, seqLen = 0;
  int heads = 0, kvHeads = 0, qkDim = 0, vDim = 0;
  double scale = 0;
};
template <class T>
void attentionForward(ThreadPool& pool, const AttnShape& s, const T* q, const T* k, const T* v,
                      T* ctx);
// dq, dk, dv overwritten. Recomputes each query row's probabilities.
template <class T>
void attentionBackward(ThreadPool& pool, const AttnShape& s, const T* q, const T* k, const T* v,
                       const T* dctx, T* dq, T* dk, T* dv);

// ---- SwiGLU MLP backward that can also return the forward output (MoE needs it) -------------
// yOut (optional): the forward output [rows, H], recomputed. dyDotY (optional): dy_r · y_r per row
// without recomputing the down projection: dy·y = dy·(W_eff h + b) = dh·h + dy·b, with dh =
// dy·W_eff the backward computes anyway (W_eff = W + scale·B·A, the adapted weight).
template <class T>
void mlpBackwardImpl(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows,
                     const T* dy, T* dx, bool accumulate, T* yOut, T* dyDotY = nullptr);

// Argument checks of the public entry points: a shape that disagrees with the op's parameters is
// a kt::Error naming the op, never an out-of-bounds read.
inline void require(bool ok, const char* op, const std::string& what) {
  if (!ok)
    throw Error(std::string("grad ") + op + ": " + what);
}
inline std::string dims(int64_t r, int64_t c) {
  return "[" + std::to_string(r) + ", " + std::to_string(c) + "]";
}
// p.w is [out, in] with a matching bias and an adapter of positive rank.
template <class T>
void requireProjection(const ProjectionT<T>& p, const char* op, const char* name, int64_t out,
                       int64_t in) {
  require(p.w.data && p.w.rows == out && p.w.cols == in, op,
          std::string(name) + " is " + dims(p.w.rows, p.w.cols) + ", expected " + dims(out, in));
  require(!p.bias.data || p.bias.cols == out, op, std::string(name) + " bias length differs");
  require(!p.lora || !p.lora->A || p.lora->r > 0, op, std::string(name) + " adapter rank <= 0");
}

template <class T> void validateMlp(const MlpWeightsT<T>& w, const char* op);

// Converts a one-row frozen vector (norm weight, bias) to T.
template <class T> std::vector<T> vectorOf(const MatrixView& v);

} // namespace kt::cpu::grad::detail
