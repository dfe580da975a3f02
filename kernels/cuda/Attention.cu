// Causal attention over a GPU-resident KV cache, for GQA and absorbed MLA (DeviceKernels.h).
// A block per (head, query token, key split) streams its range of cached positions in chunks of
// kChunk with an online softmax (running max and sum), so no [tokens, context] score matrix is
// materialised: each warp scores positions of the chunk (lanes over the key's floats, coalesced),
// then the block accumulates the chunk's values into an output vector in shared memory.
//
// Decode ("flash-decoding"): one block per (head, token) is only 16 (DeepSeek) or 32 (Qwen3)
// blocks on a 132-SM GPU, each streaming the whole cache. Up to kAttentionSplitMaxTokens tokens
// the keys are split among S blocks per (head, token) that write unnormalised partials (output
// row, running max, sum); mergeKernel combines them exactly (log-sum-exp). S is a host value
// fixed by the KV capacity (dense arrays: which only changes when they grow, and then a CUDA
// graph is captured again; the paged cache: its page table's, fixed), while each block's key range
// is cut from the context length read on the GPU: the same launches serve every position of a
// replayed graph, and a split whose range is empty writes an empty partial (max -inf, sum 0) that
// the merge skips. A context of c keys uses at most ceil(c / kMinKeysPerSplit) of the S splits
// (decided on the GPU), so a large S fixed by a long page table costs little while the sequence is
// short.
//
// Paged KV cache (AttentionArgs.kv): a key's rows are found through the sequence's page table
// (one 8-byte load per key, shared by the lanes); the scores and sums are the same operations in
// the same order as over dense arrays, so paged and dense results are bit-identical.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace kt::cuda {

namespace {
constexpr int kChunk = 128; // = threads per block
constexpr int kWarps = kChunk / 32;
// Split choice: aim for kBlocksPerSm blocks per SM, at most kMaxSplits splits, and splits of at
// least kMinKeysPerSplit positions of the KV capacity (short caches are not split).
constexpr int kBlocksPerSm = 4;
constexpr int kMaxSplits = 64;
constexpr int64_t kMinKeysPerSplit = 32;

// Position j's row of one KV array: dense at base + j * pitch, paged inside j's page.
__device__ __forceinline__ const float* kvRow(const KvPages& kv, const float* base,
                                              int64_t pageOffset, int64_t pitch, int64_t j) {
  if (!kv.pages)
    return base + j * pitch;
  const float* page = reinterpret_cast<const float*>(kv.pages[j / kv.pageTokens]);
  return page + pageOffset + (j % kv.pageTokens) * pitch;
}

// Splits a context of ctx keys is cut into: at most one per kMinKeysPerSplit keys, at least 1.
__device__ __forceinline__ int64_t usedSplits(int64_t ctx, int splits) {
  const int64_t byKeys = (ctx + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  return byKeys < splits ? (byKeys > 0 ? byKeys : 1) : splits;
}

__device__ float blockReduce(float v, bool isMax, float* red) {
  for (int off = 16; off > 0; off /= 2) {
    float o = __shfl_down_sync(0xffffffffu, v, off);
    v = isMax ? fmaxf(v, o) : v + o;
  }
  __syncthreads(); // red may still be read from the previous reduction
  if (threadIdx.x % 32 == 0)
    red[threadIdx.x / 32] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kWarps; ++w)
    r = isMax ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

// x . y over n floats, lanes striding (coalesced), summed across the warp (every lane has it).
__device__ float warpDot(const float* x, const float* y, int n) {
  float d = 0.f;
  for (int i = int(threadIdx.x) % 32; i < n; i += 32)
    d += x[i] * y[i];
  for (int off = 16; off > 0; off /= 2)
    d += __shfl_xor_sync(0xffffffffu, d, off);
  return d;
}

// grid (heads, len, splits). splits == 1: the normalised output row; else the partial of split
// z at row r = (t * heads + h) * splits + z: unnormalised output partials[r * dv ..], max
// partials[rows * dv + r] (-inf when the range is empty), sum partials[rows * (dv + 1) + r].
__global__ void attentionKernel(AttentionArgs a, int splits) {
  extern __shared__ __align__(16) float smem[];
  // The chunk's value rows (one pointer per key, written with its score): the value loop reads
  // them instead of recomputing page addresses per float.
  const float** vrow = reinterpret_cast<const float**>(smem);
  float* q1 = smem + 2 * kChunk;
  float* q2 = q1 + a.d1;
  float* acc = q2 + a.d2;
  float* p = acc + a.dv; // the chunk's scores, then their exponentials (each slot by one thread)
  float* red = p + kChunk;

  const int h = blockIdx.x;
  const int64_t t = blockIdx.y;
  const int split = blockIdx.z;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int kvh = h / (a.heads / a.kvHeads);
  const int64_t pos0 = a.pos0Dev ? int64_t(*a.pos0Dev) : a.pos0;
  const int64_t ctx = pos0 + t + 1; // causal: keys 0 .. own position
  // This split's keys [lo, hi): an even cut of the current context (read on the GPU) among the
  // splits it needs; the others are empty.
  const int64_t used = usedSplits(ctx, splits);
  const int64_t per = (ctx + used - 1) / used;
  const int64_t lo = int64_t(split) * per;
  int64_t hi = lo + per < ctx ? lo + per : ctx;
  if (a.maxKeys > 0 && hi > a.maxKeys) // never past the arrays (a position beyond them is a bug)
    hi = a.maxKeys;
  for (int i = threadIdx.x; i < a.d1; i += kChunk)
    q1[i] = a.q1[t * a.q1Token + h * a.q1Head + i];
  for (int i = threadIdx.x; i < a.d2; i += kChunk)
    q2[i] = a.q2[t * a.q2Token + h * a.q2Head + i];
  for (int i = threadIdx.x; i < a.dv; i += kChunk)
    acc[i] = 0.f;
  __syncthreads();

  float m = -FLT_MAX, l = 0.f;
  for (int64_t base = lo; base < hi; base += kChunk) {
    const int n = int(hi - base < kChunk ? hi - base : kChunk);
    for (int jj = warp; jj < n; jj += kWarps) {
      const int64_t j = base + jj;
      float d = warpDot(q1, kvRow(a.kv, a.k1, a.k1Page, a.k1Pos, j) + kvh * a.k1Head, a.d1);
      if (a.d2)
        d += warpDot(q2, kvRow(a.kv, a.k2, a.k2Page, a.k2Pos, j), a.d2);
      if (lane == 0) {
        p[jj] = d * a.scale;
        vrow[jj] = kvRow(a.kv, a.v, a.vPage, a.vPos, j) + kvh * a.vHead;
      }
    }
    __syncthreads();
    const bool mine = int(threadIdx.x) < n;
    const float s = mine ? p[threadIdx.x] : -FLT_MAX;
    const float mNew = fmaxf(m, blockReduce(s, true, red));
    const float pj = mine ? expf(s - mNew) : 0.f;
    const float alpha = expf(m - mNew); // 0 on the first chunk (m = -FLT_MAX)
    l = l * alpha + blockReduce(pj, false, red);
    p[threadIdx.x] = pj; // blockReduce synchronised: every score of the chunk has been read
    __syncthreads();
    for (int i = threadIdx.x; i < a.dv; i += kChunk) {
      float sum = 0.f;
      for (int jj = 0; jj < n; ++jj)
        sum += p[jj] * vrow[jj][i];
      acc[i] = acc[i] * alpha + sum;
    }
    m = mNew;
    __syncthreads(); // p is rewritten by the next chunk's scores
  }
  if (splits == 1) {
    const float inv = l > 0.f ? 1.0f / l : 0.f; // l >= 1 whenever the range has a key
    float* o = a.out + t * a.outToken + h * a.outHead;
    for (int i = threadIdx.x; i < a.dv; i += kChunk)
      o[i] = acc[i] * inv;
    return;
  }
  const int64_t rows = int64_t(gridDim.x) * gridDim.y * splits;
  const int64_t r = (t * a.heads + h) * splits + split;
  float* po = a.partials + r * a.dv;
  for (int i = threadIdx.x; i < a.dv; i += kChunk)
    po[i] = acc[i];
  if (threadIdx.x == 0) {
    a.partials[rows * a.dv + r] = hi > lo ? m : -INFINITY;
    a.partials[rows * (a.dv + 1) + r] = l;
  }
}

// grid (heads, len): out[t, h] = sum_z w_z O_z / sum_z w_z l_z with w_z = exp(m_z - max m) over
// the splits that saw a key (l_z > 0); empty splits (m -inf, l 0) contribute nothing.
__global__ void mergeKernel(AttentionArgs a, int splits) {
  __shared__ float w[kMaxSplits];
  __shared__ float inv;
  const int h = blockIdx.x;
  const int64_t t = blockIdx.y;
  const int64_t rows = int64_t(gridDim.x) * gridDim.y * splits;
  const int64_t r0 = (t * a.heads + h) * splits;
  const float* pm = a.partials + rows * a.dv + r0;
  const float* pl = a.partials + rows * (a.dv + 1) + r0;
  if (threadIdx.x == 0) {
    float mMax = -INFINITY;
    for (int z = 0; z < splits; ++z)
      if (pl[z] > 0.f)
        mMax = fmaxf(mMax, pm[z]);
    float denom = 0.f;
    for (int z = 0; z < splits; ++z) {
      w[z] = pl[z] > 0.f ? expf(pm[z] - mMax) : 0.f;
      denom += w[z] * pl[z];
    }
    inv = denom > 0.f ? 1.0f / denom : 0.f;
  }
  __syncthreads();
  float* o = a.out + t * a.outToken + h * a.outHead;
  for (int i = threadIdx.x; i < a.dv; i += kChunk) {
    float sum = 0.f;
    for (int z = 0; z < splits; ++z)
      if (w[z] > 0.f)
        sum += w[z] * a.partials[(r0 + z) * a.dv + i];
    o[i] = sum * inv;
  }
}

__global__ void appendRowsKernel(float* cache, KvPages kv, int64_t pageOffset, int64_t cachePitch,
                                 int64_t capacity, const float* src, int64_t srcPitch,
                                 int64_t width, int64_t rows, const int32_t* pos0Dev,
                                 int64_t pos0) {
  const int64_t p0 = pos0Dev ? int64_t(*pos0Dev) : pos0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * width;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width, p = p0 + r;
    if (p < 0 || p >= capacity)
      continue;
    if (kv.pages && kv.pages[p / kv.pageTokens] == 0) // no page given: dropped, as past capacity
      continue;
    float* row = const_cast<float*>(kvRow(kv, cache, pageOffset, cachePitch, p));
    row[c] = src[r * srcPitch + c];
  }
}

// SMs of the current device (cached per device; 0 when CUDA cannot say).
int smCount() {
  static int cached[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64)
    return 0;
  if (cached[dev] == 0) {
    int n = 0;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 0;
    cached[dev] = n;
  }
  return cached[dev];
}

// The most splits a step of heads x len blocks gets, before the context and scratch limits.
int splitsForBlocks(int heads, int64_t len) {
  if (heads <= 0 || len <= 0 || len > kAttentionSplitMaxTokens)
    return 1;
  const int64_t sms = smCount();
  const int64_t blocks = int64_t(heads) * len, target = int64_t(kBlocksPerSm) * sms;
  if (blocks >= target)
    return 1;
  return int(std::min<int64_t>(kMaxSplits, (target + blocks - 1) / blocks));
}

int64_t partialFloatsPerSplit(int heads, int64_t len, int dv) {
  return int64_t(heads) * len * (int64_t(dv) + 2);
}
} // namespace

void appendRows(float* cache, KvPages kv, int64_t pageOffset, int64_t cachePitch, int64_t capacity,
                const float* src, int64_t srcPitch, int64_t width, int64_t rows,
                const int32_t* pos0Dev, int64_t pos0) {
  if (rows <= 0 || width <= 0)
    return;
  countLaunches();
  appendRowsKernel<<<blocksFor(rows * width), kThreads, 0, stream()>>>(
      cache, kv, pageOffset, cachePitch, capacity, src, srcPitch, width, rows, pos0Dev, pos0);
}

int64_t attentionPartialFloats(int heads, int64_t len, int dv) {
  const int s = splitsForBlocks(heads, len);
  return s > 1 ? s * partialFloatsPerSplit(heads, len, dv) : 0;
}

int attentionSplits(const AttentionArgs& a) {
  if (!a.partials || a.len <= 0 || a.heads <= 0 || a.len > kAttentionSplitMaxTokens)
    return 1;
  int64_t s = a.splits;
  if (s <= 0) {
    const int64_t keys = a.maxKeys > 0 ? a.maxKeys : a.pos0 + a.len;
    s = std::min<int64_t>(splitsForBlocks(a.heads, a.len),
                          (keys + kMinKeysPerSplit - 1) / kMinKeysPerSplit);
  }
  // Never more than the scratch holds (nor than the merge's table).
  s = std::min<int64_t>(
      {s, kMaxSplits, a.partialFloats / partialFloatsPerSplit(a.heads, a.len, a.dv)});
  return s > 1 ? int(s) : 1;
}

void attention(const AttentionArgs& a) {
  if (a.len <= 0 || a.heads <= 0)
    return;
  const int splits = attentionSplits(a);
  // vrow (kChunk pointers), q1, q2, acc, the chunk's scores, the reduction's warp values.
  size_t shared = size_t(2 * kChunk + a.d1 + a.d2 + a.dv + kChunk + 32) * sizeof(float);
  // Failure here shows as a failed launch (launchOk / synchronize report it).
  if (shared > 48 * 1024)
    (void)cudaFuncSetAttribute(attentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(shared));
  countLaunches();
  attentionKernel<<<dim3(unsigned(a.heads), unsigned(a.len), unsigned(splits)), kChunk, shared,
                    stream()>>>(a, splits);
  if (splits > 1) {
    countLaunches();
    mergeKernel<<<dim3(unsigned(a.heads), unsigned(a.len)), kChunk, 0, stream()>>>(a, splits);
  }
}

} // namespace kt::cuda
