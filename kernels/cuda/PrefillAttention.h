#pragma once
// Prefill attention through cuBLAS. The generic kernel (Attention.cu) gives each (head, query)
// a block that streams every visible key with f32 FMAs: ~3-4 TFLOP/s, which made a 2048-token
// DeepSeek-V2-Lite prefill spend 0.72 of its ~1.07 s in MLA attention on the H100 (docs/cuda.md).
// Here a block of queries is scored against all its visible keys by one strided-batched f32 GEMM
// per KV head (the query heads that share the head form the batch; the shared key matrix has
// stride 0), a kernel applies the causal mask and the softmax row by row, and a second GEMM sums
// the values. Exact f32 (cuBLAS in pedantic math, as Blas), so f32 plans still match the
// fixtures. Scores of one KV head group and query block are materialised: the block is sized to
// keep them under a scratch bound.
#include "kernels/cuda/DeviceKernels.h"

#include <cstdint>
#include <string>

namespace kt::cuda {

class Blas;

// Query tokens from which a step's attention takes this path (shorter chunks and decode keep the
// generic kernel, whose launch is cheaper than three).
constexpr int64_t kPrefillGemmMinTokens = 32;
// Default bound on the scores of one (query block, KV head group): 32 Mi floats = 128 MiB.
constexpr int64_t kPrefillScoreFloats = int64_t(32) << 20;

// Whether prefillAttentionGemm takes `a`: enough query tokens, positions known on the host (no
// pos0Dev: not a captured decode step) and dense key/value arrays (gather a paged cache first).
bool usePrefillGemm(const AttentionArgs& a);
// Query tokens per block, and the scratch floats prefillAttentionGemm needs, for a bound of
// maxScoreFloats floats of scores.
int64_t prefillGemmBlockTokens(const AttentionArgs& a,
                               int64_t maxScoreFloats = kPrefillScoreFloats);
int64_t prefillGemmScratchFloats(const AttentionArgs& a,
                                 int64_t maxScoreFloats = kPrefillScoreFloats);
// out = the same causal attention as attention(a) for dense arrays (DeviceKernels.h), queued on
// the current stream. scratch: prefillGemmScratchFloats(a, maxScoreFloats) floats.
bool prefillAttentionGemm(Blas& blas, const AttentionArgs& a, float* scratch, std::string* err,
                          int64_t maxScoreFloats = kPrefillScoreFloats);

// Copies positions 0 .. count-1 of one array of a paged KV cache (its rows at `offset` floats into
// each page, `pitch` floats apart; AttentionArgs.k1Page/k1Pos and the like) into dense rows of
// rowFloats floats at dst, so a long prefill can run prefillAttentionGemm over them.
void gatherPagedRows(const KvPages& kv, int64_t offset, int64_t pitch, int64_t rowFloats,
                     int64_t count, float* dst);

} // namespace kt::cuda
