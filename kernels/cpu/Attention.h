#pragma once
// Causal softmax attention of `len` new query tokens (absolute positions pos0 .. pos0+len-1) over a
// KV cache that already holds positions 0 .. pos0+len-1.
//
// Each function has a scalar reference (`...Ref`: one head at a time, the plain definition) and a
// fast form that runs the best ISA (AVX-512 / AVX2 / portable, by CPUID and KT_ISA), grouping the
// heads that read the same key rows so each cached row is loaded once per group.
#include "kernels/cpu/quant/QuantMatmul.h"

#include <cstdint>

namespace kt {
class ThreadPool;
}

namespace kt::cpu {

// GQA/MHA. q: [len, heads, headDim]; kCache/vCache: [ctx, kvHeads, headDim]; out: [len, heads,
// headDim].
void gqaAttention(ThreadPool& pool, const float* q, int64_t len, int heads, int kvHeads,
                  int headDim, const float* kCache, const float* vCache, int64_t pos0, double scale,
                  float* out);
void gqaAttentionRef(ThreadPool& pool, const float* q, int64_t len, int heads, int kvHeads,
                     int headDim, const float* kCache, const float* vCache, int64_t pos0,
                     double scale, float* out);
void gqaAttentionIsa(quant::Isa isa, ThreadPool& pool, const float* q, int64_t len, int heads,
                     int kvHeads, int headDim, const float* kCache, const float* vCache,
                     int64_t pos0, double scale, float* out);

// MLA in absorbed form: the per-head key up-projection has been folded into the query (qAbs), so
// the scores are taken directly against the cached latent. qAbs: [len, heads, latentDim]; qPe:
// [len, heads, ropeDim]; latent: [ctx, latentDim]; kPe: [ctx, ropeDim]; out: [len, heads,
// latentDim] = softmax-weighted sum of latents (the value up-projection is applied by the caller).
void mlaAttention(ThreadPool& pool, const float* qAbs, const float* qPe, int64_t len, int heads,
                  int latentDim, int ropeDim, const float* latent, const float* kPe, int64_t pos0,
                  double scale, float* out);
void mlaAttentionRef(ThreadPool& pool, const float* qAbs, const float* qPe, int64_t len, int heads,
                     int latentDim, int ropeDim, const float* latent, const float* kPe,
                     int64_t pos0, double scale, float* out);
void mlaAttentionIsa(quant::Isa isa, ThreadPool& pool, const float* qAbs, const float* qPe,
                     int64_t len, int heads, int latentDim, int ropeDim, const float* latent,
                     const float* kPe, int64_t pos0, double scale, float* out);

} // namespace kt::cpu
