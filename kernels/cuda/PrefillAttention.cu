// Prefill attention as two strided-batched GEMMs per KV head around a masked softmax
// (PrefillAttention.h). Row-major matrices are handed to cuBLAS as their column-major transposes:
// the scores S[q, p] (ld = ctx) of a head are the column-major [ctx, q] product K · Qᵀ, and its
// output rows O[q, :] (ld = outToken) the column-major [dv, q] product Vᵀ · Sᵀ.
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/PrefillAttention.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>

namespace kt::cuda {

namespace {

constexpr int kSoftmaxThreads = 256;

__device__ float blockReduce(float v, bool isMax, float* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = isMax ? fmaxf(v, w) : v + w;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads(); // `shared` may still be read from the previous reduction
  if (lane == 0)
    shared[warp] = v;
  __syncthreads();
  v = isMax ? -FLT_MAX : 0.f;
  for (int w = 0; w < kSoftmaxThreads / 32; ++w)
    v = isMax ? fmaxf(v, shared[w]) : v + shared[w];
  return v;
}

// Row (blockIdx.x, head blockIdx.y) of a [heads][rows][ctx] score block: query row i sees keys
// 0 .. firstVisible + i - 1; the rest of the row becomes 0.
__global__ void causalSoftmaxKernel(float* scores, int64_t rows, int64_t ctx,
                                    int64_t firstVisible) {
  __shared__ float shared[kSoftmaxThreads / 32];
  float* row = scores + (int64_t(blockIdx.y) * rows + blockIdx.x) * ctx;
  const int64_t visible = min(ctx, firstVisible + int64_t(blockIdx.x));
  float m = -FLT_MAX;
  for (int64_t p = threadIdx.x; p < visible; p += kSoftmaxThreads)
    m = fmaxf(m, row[p]);
  m = blockReduce(m, true, shared);
  float sum = 0.f;
  for (int64_t p = threadIdx.x; p < visible; p += kSoftmaxThreads) {
    const float e = expf(row[p] - m);
    row[p] = e;
    sum += e;
  }
  sum = blockReduce(sum, false, shared);
  const float inv = 1.f / sum;
  for (int64_t p = threadIdx.x; p < ctx; p += kSoftmaxThreads)
    row[p] = p < visible ? row[p] * inv : 0.f;
}

__global__ void gatherPagedRowsKernel(const uint64_t* pages, int64_t pageTokens, int64_t offset,
                                      int64_t pitch, int64_t rowFloats, int64_t count, float* dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count * rowFloats;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i / rowFloats, c = i % rowFloats;
    const float* page = reinterpret_cast<const float*>(pages[p / pageTokens]);
    dst[i] = page[offset + (p % pageTokens) * pitch + c];
  }
}

} // namespace

bool usePrefillGemm(const AttentionArgs& a) {
  return a.len >= kPrefillGemmMinTokens && a.pos0Dev == nullptr && a.kv.pages == nullptr &&
         a.k1 != nullptr && a.v != nullptr && a.heads % a.kvHeads == 0;
}

int64_t prefillGemmBlockTokens(const AttentionArgs& a, int64_t maxScoreFloats) {
  const int64_t group = a.heads / std::max(1, a.kvHeads), keys = a.pos0 + a.len;
  return std::clamp<int64_t>(maxScoreFloats / std::max<int64_t>(1, group * keys), 1, a.len);
}

int64_t prefillGemmScratchFloats(const AttentionArgs& a, int64_t maxScoreFloats) {
  const int64_t group = a.heads / std::max(1, a.kvHeads);
  return group * prefillGemmBlockTokens(a, maxScoreFloats) * (a.pos0 + a.len);
}

bool prefillAttentionGemm(Blas& blas, const AttentionArgs& a, float* scratch, std::string* err,
                          int64_t maxScoreFloats) {
  const int group = a.heads / a.kvHeads;
  const int64_t block = prefillGemmBlockTokens(a, maxScoreFloats);
  for (int64_t t0 = 0; t0 < a.len; t0 += block) {
    const int64_t rows = std::min(block, a.len - t0);
    const int64_t ctx = a.pos0 + t0 + rows; // keys the block's last query sees
    const int64_t perHead = rows * ctx;
    for (int g = 0; g < a.kvHeads; ++g) {
      const int h0 = g * group;
      // scores = scale · (q1 · k1ᵀ [+ q2 · k2ᵀ]), one product per head of the group.
      if (!blas.gemmBatched(true, false, ctx, rows, a.d1, a.k1 + g * a.k1Head, a.k1Pos, 0,
                            a.q1 + t0 * a.q1Token + h0 * a.q1Head, a.q1Token, a.q1Head, scratch,
                            ctx, perHead, group, err, a.scale, 0.f))
        return false;
      if (a.q2 && a.d2 > 0 &&
          !blas.gemmBatched(true, false, ctx, rows, a.d2, a.k2, a.k2Pos, 0,
                            a.q2 + t0 * a.q2Token + h0 * a.q2Head, a.q2Token, a.q2Head, scratch,
                            ctx, perHead, group, err, a.scale, 1.f))
        return false;
      causalSoftmaxKernel<<<dim3(unsigned(rows), unsigned(group)), kSoftmaxThreads, 0, stream()>>>(
          scratch, rows, ctx, a.pos0 + t0 + 1);
      countLaunches();
      // out rows = probabilities · v.
      if (!blas.gemmBatched(false, false, a.dv, rows, ctx, a.v + g * a.vHead, a.vPos, 0, scratch,
                            ctx, perHead, a.out + t0 * a.outToken + h0 * a.outHead, a.outToken,
                            a.outHead, group, err))
        return false;
    }
  }
  return true;
}

void gatherPagedRows(const KvPages& kv, int64_t offset, int64_t pitch, int64_t rowFloats,
                     int64_t count, float* dst) {
  if (count <= 0 || rowFloats <= 0)
    return;
  gatherPagedRowsKernel<<<blocksFor(count * rowFloats), kThreads, 0, stream()>>>(
      kv.pages, kv.pageTokens, offset, pitch, rowFloats, count, dst);
  countLaunches();
}

} // namespace kt::cuda
