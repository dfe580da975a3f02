#pragma once
// Element-wise and row-wise CUDA kernels of LoRA training (kernels/cuda/grad). Plain C++ header:
// every pointer is a device pointer, every launch goes to kernels/cuda's current stream (Memory.h)
// and returns at once (check cuda::launchOk / synchronize). Each kernel reproduces a piece of
// kernels/cpu/grad (named per function); test/unit/cuda/train_grad_test.cpp compares them.
#include <cstdint>

namespace kt::cuda::grad {

// RMSNorm backward over `rows` rows of `dim` (frozen weight w; row strides in floats):
//   s = (Σx²/dim + eps)^(-1/2), c = s³ Σ w·dy·x / dim, dx = s·w·dy - x·c   (cpu::grad Norm.cpp)
// dx may alias dy (same strides). accumulate: dx += instead of =.
void rmsNormBackwardRows(const float* x, int64_t xStride, int64_t rows, int64_t dim, const float* w,
                         float eps, const float* dy, int64_t dyStride, float* dx, int64_t dxStride,
                         bool accumulate);

// h = silu(g)·u = g / (1 + exp(-g)) · u  (cpu::grad Mlp.cpp's swiglu; out may alias g).
void swigluForward(const float* g, const float* u, float* out, int64_t n);
// From dh: du = dh·silu(g), dg = dh·u·σ(g)(1 + g(1 - σ(g))), written over g and u.
void swigluBackward(float* g, float* u, const float* dh, int64_t n);

// RoPE of `rows` tokens (position = row % seqLen, as training batches have no KV cache) on
// `heads` vectors each: vector h of row r starts at x + r*rowStride + h*headStride + offset and its
// first 2*half channels rotate by angle = position·invFreq[i] (f32, cos/sin scaled by `factor`),
// pairs (i, i+half) or interleaved (2i, 2i+1). inverse: rotation by -angle (the backward).
void ropeRows(float* x, int64_t rows, int heads, int64_t rowStride, int64_t headStride,
              int64_t offset, int64_t seqLen, const float* invFreq, int half, float factor,
              bool interleaved, bool inverse);

// Causal softmax of `mats` [L, L] score matrices in place: row t keeps columns 0..t
// (max-shifted exp, normalized), columns > t become 0 (cpu::grad Attention.cpp probabilities).
void causalSoftmax(float* s, int64_t mats, int64_t L);
// dS = P ⊙ (dP - Σ_j P_j dP_j) per row, written over dP (P zero above the diagonal).
void softmaxBackward(const float* p, float* dp, int64_t mats, int64_t L);

// dst[i*dstPitch + c] (+)= src[(i / srcDiv)*srcPitch + c] for i < n, c < width (srcDiv 1: a
// strided copy; srcDiv = heads: one row broadcast to every head).
void copyRows(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch, int64_t n,
              int64_t width, int64_t srcDiv, bool accumulate);
// dst[i*dstPitch + c] = Σ_{g<group} src[(i*group + g)*srcPitch + c], g in order.
void sumGroups(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch, int64_t n,
               int group, int64_t width);
// y[i] += x[i]
void accumulate(float* y, const float* x, int64_t n);

// Cross-entropy of `n` logit rows of `vocab` (targets[i]): rowLoss[i] = max + log(Σexp(l - max))
// - l[target] (double); when `grad`, the row becomes softmax/norm - onehot(target)/norm (Loss.cpp).
void crossEntropyRows(float* logits, int64_t n, int64_t vocab, const int32_t* targets,
                      double* rowLoss, bool grad, double norm);

} // namespace kt::cuda::grad
