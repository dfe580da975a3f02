// Causal attention over a GPU-resident KV cache, for GQA and absorbed MLA (DeviceKernels.h).
// One block per (head, query token) streams the cached positions in chunks of kChunk with an
// online softmax (running max and sum), so no [tokens, context] score matrix is materialised:
// each thread scores one position of the chunk, then the block accumulates the chunk's values
// into the output vector held in shared memory.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

#include <cfloat>

namespace kt::cuda {

namespace {
constexpr int kChunk = 128; // = threads per block

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
  for (int w = 1; w < kChunk / 32; ++w)
    r = isMax ? fmaxf(r, red[w]) : r + red[w];
  return r;
}

__global__ void attentionKernel(AttentionArgs a) {
  extern __shared__ float smem[];
  float* q1 = smem;
  float* q2 = q1 + a.d1;
  float* acc = q2 + a.d2;
  float* p = acc + a.dv;
  float* red = p + kChunk;

  const int h = blockIdx.x;
  const int64_t t = blockIdx.y;
  const int kvh = h / (a.heads / a.kvHeads);
  const int64_t pos0 = a.pos0Dev ? int64_t(*a.pos0Dev) : a.pos0;
  const int64_t ctx = pos0 + t + 1; // causal: keys 0 .. own position
  for (int i = threadIdx.x; i < a.d1; i += kChunk)
    q1[i] = a.q1[t * a.q1Token + h * a.q1Head + i];
  for (int i = threadIdx.x; i < a.d2; i += kChunk)
    q2[i] = a.q2[t * a.q2Token + h * a.q2Head + i];
  for (int i = threadIdx.x; i < a.dv; i += kChunk)
    acc[i] = 0.f;
  __syncthreads();

  const float* k1 = a.k1 + kvh * a.k1Head;
  const float* v = a.v + kvh * a.vHead;
  float m = -FLT_MAX, l = 0.f;
  for (int64_t base = 0; base < ctx; base += kChunk) {
    const int64_t j = base + threadIdx.x;
    float s = -FLT_MAX;
    if (j < ctx) {
      float d = 0.f;
      const float* kr = k1 + j * a.k1Pos;
      for (int i = 0; i < a.d1; ++i)
        d += q1[i] * kr[i];
      if (a.d2) {
        float d2 = 0.f;
        const float* kr2 = a.k2 + j * a.k2Pos;
        for (int i = 0; i < a.d2; ++i)
          d2 += q2[i] * kr2[i];
        d += d2;
      }
      s = d * a.scale;
    }
    const float mNew = fmaxf(m, blockReduce(s, true, red));
    const float pj = j < ctx ? expf(s - mNew) : 0.f;
    const float alpha = expf(m - mNew); // 0 on the first chunk (m = -FLT_MAX)
    l = l * alpha + blockReduce(pj, false, red);
    p[threadIdx.x] = pj;
    __syncthreads();
    const int n = int(ctx - base < kChunk ? ctx - base : kChunk);
    for (int i = threadIdx.x; i < a.dv; i += kChunk) {
      float sum = 0.f;
      for (int jj = 0; jj < n; ++jj)
        sum += p[jj] * v[(base + jj) * a.vPos + i];
      acc[i] = acc[i] * alpha + sum;
    }
    m = mNew;
    __syncthreads();
  }
  const float inv = 1.0f / l;
  float* o = a.out + t * a.outToken + h * a.outHead;
  for (int i = threadIdx.x; i < a.dv; i += kChunk)
    o[i] = acc[i] * inv;
}
__global__ void appendRowsKernel(float* cache, int64_t cachePitch, int64_t capacity,
                                 const float* src, int64_t srcPitch, int64_t width, int64_t rows,
                                 const int32_t* pos0Dev, int64_t pos0) {
  const int64_t p0 = pos0Dev ? int64_t(*pos0Dev) : pos0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * width;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    if (p0 + r >= 0 && p0 + r < capacity)
      cache[(p0 + r) * cachePitch + c] = src[r * srcPitch + c];
  }
}
} // namespace

void appendRows(float* cache, int64_t cachePitch, int64_t capacity, const float* src,
                int64_t srcPitch, int64_t width, int64_t rows, const int32_t* pos0Dev,
                int64_t pos0) {
  if (rows <= 0 || width <= 0)
    return;
  countLaunches();
  appendRowsKernel<<<blocksFor(rows * width), kThreads, 0, stream()>>>(
      cache, cachePitch, capacity, src, srcPitch, width, rows, pos0Dev, pos0);
}

void attention(const AttentionArgs& a) {
  if (a.len <= 0 || a.heads <= 0)
    return;
  size_t shared = size_t(a.d1 + a.d2 + a.dv + kChunk + 32) * sizeof(float);
  if (shared > 48 * 1024)
    cudaFuncSetAttribute(attentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared));
  countLaunches();
  attentionKernel<<<dim3(unsigned(a.heads), unsigned(a.len)), kChunk, shared, stream()>>>(a);
}

} // namespace kt::cuda
