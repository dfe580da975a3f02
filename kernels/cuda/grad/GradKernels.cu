// The training kernels of GradKernels.h. Row kernels run one block per row with a block-wide
// reduction; element-wise ones use kernels/cuda's grid-stride launch shape.
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Stream.cuh"
#include "kernels/cuda/grad/GradKernels.h"

#include <cuda_runtime.h>

#include <cfloat>

namespace kt::cuda::grad {

namespace {

constexpr int kRowThreads = 256;

// Block-wide sum / max of one value per thread (kRowThreads threads); every thread gets the result.
template <class T, bool Max> __device__ T blockReduce(T v) {
  __shared__ T partial[kRowThreads / 32];
  __shared__ T result;
  for (int off = 16; off > 0; off /= 2) {
    T o = __shfl_down_sync(0xffffffffu, v, off);
    v = Max ? (o > v ? o : v) : v + o;
  }
  __syncthreads(); // partial/result may still be read by a previous reduction
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = partial[0];
    for (int i = 1; i < kRowThreads / 32; ++i)
      r = Max ? (partial[i] > r ? partial[i] : r) : r + partial[i];
    result = r;
  }
  __syncthreads();
  return result;
}

__global__ void rmsNormBackwardKernel(const float* x, int64_t xStride, int64_t dim, const float* w,
                                      float eps, const float* dy, int64_t dyStride, float* dx,
                                      int64_t dxStride, bool accumulate) {
  const float* xr = x + blockIdx.x * xStride;
  const float* g = dy + blockIdx.x * dyStride;
  float* d = dx + blockIdx.x * dxStride;
  float ss = 0.f, dot = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    ss += xr[i] * xr[i];
    dot += w[i] * g[i] * xr[i];
  }
  ss = blockReduce<float, false>(ss);
  dot = blockReduce<float, false>(dot);
  const float s = 1.0f / sqrtf(ss / float(dim) + eps);
  const float c = s * s * s * dot / float(dim);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = s * w[i] * g[i] - xr[i] * c;
    d[i] = accumulate ? d[i] + v : v;
  }
}

__global__ void swigluForwardKernel(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void swigluBackwardKernel(float* g, float* u, const float* dh, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i], ui = u[i], sg = 1.0f / (1.0f + expf(-gi));
    u[i] = dh[i] * gi * sg;
    g[i] = dh[i] * ui * sg * (1.0f + gi * (1.0f - sg));
  }
}

__global__ void ropeRowsKernel(float* x, int64_t rows, int heads, int64_t rowStride,
                               int64_t headStride, int64_t offset, int64_t seqLen,
                               const float* invFreq, int half, float factor, bool interleaved,
                               float sign) {
  const int64_t n = rows * heads * half;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(j % half);
    const int64_t rh = j / half;
    const int h = int(rh % heads);
    const int64_t r = rh / heads;
    // As applyRope: the angle in f32, cos and sin scaled by the attention factor.
    const float angle = float(r % seqLen) * invFreq[i];
    const float c = cosf(angle) * factor, s = sign * (sinf(angle) * factor);
    float* v = x + r * rowStride + h * headStride + offset;
    float* a = interleaved ? &v[2 * i] : &v[i];
    float* b = interleaved ? &v[2 * i + 1] : &v[i + half];
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x1 * c + x0 * s;
  }
}

// One block per row (mats * L rows).
__global__ void causalSoftmaxKernel(float* s, int64_t L) {
  const int64_t row = blockIdx.x, t = row % L;
  float* p = s + row * L;
  float mx = -FLT_MAX;
  for (int64_t j = threadIdx.x; j <= t; j += blockDim.x)
    mx = fmaxf(mx, p[j]);
  mx = blockReduce<float, true>(mx);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j <= t; j += blockDim.x) {
    const float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  sum = blockReduce<float, false>(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x)
    p[j] = j <= t ? p[j] * inv : 0.f;
}

__global__ void softmaxBackwardKernel(const float* p, float* dp, int64_t L) {
  const float* pr = p + int64_t(blockIdx.x) * L;
  float* d = dp + int64_t(blockIdx.x) * L;
  float D = 0.f;
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x)
    D += pr[j] * d[j];
  D = blockReduce<float, false>(D);
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x)
    d[j] = pr[j] * (d[j] - D);
}

__global__ void copyRowsKernel(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch,
                               int64_t n, int64_t width, int64_t srcDiv, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * width;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    const float v = src[(r / srcDiv) * srcPitch + c];
    float* o = dst + r * dstPitch + c;
    *o = accumulate ? *o + v : v;
  }
}

__global__ void sumGroupsKernel(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch,
                                int64_t n, int group, int64_t width) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * width;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    float acc = 0.f;
    for (int g = 0; g < group; ++g)
      acc += src[(r * group + g) * srcPitch + c];
    dst[r * dstPitch + c] = acc;
  }
}

__global__ void accumulateKernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void crossEntropyKernel(float* logits, int64_t vocab, const int32_t* targets,
                                   double* rowLoss, bool grad, double norm) {
  float* l = logits + int64_t(blockIdx.x) * vocab;
  const int32_t c = targets[blockIdx.x];
  const float lc = l[c];
  __syncthreads(); // every thread has read l[c] before it is overwritten below
  float mx = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    mx = fmaxf(mx, l[j]);
  mx = blockReduce<float, true>(mx);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float e = expf(l[j] - mx);
    l[j] = e;
    sum += e;
  }
  sum = blockReduce<float, false>(sum);
  if (threadIdx.x == 0)
    rowLoss[blockIdx.x] = double(mx + logf(sum) - lc);
  if (!grad)
    return;
  const float inv = float(1.0 / norm), scale = inv / sum;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    l[j] = l[j] * scale - (j == c ? inv : 0.f);
}

unsigned rowsGrid(int64_t rows) {
  return unsigned(rows);
}

} // namespace

void rmsNormBackwardRows(const float* x, int64_t xStride, int64_t rows, int64_t dim, const float* w,
                         float eps, const float* dy, int64_t dyStride, float* dx, int64_t dxStride,
                         bool accumulate) {
  if (rows <= 0)
    return;
  countLaunches();
  rmsNormBackwardKernel<<<rowsGrid(rows), kRowThreads, 0, stream()>>>(
      x, xStride, dim, w, eps, dy, dyStride, dx, dxStride, accumulate);
}

void swigluForward(const float* g, const float* u, float* out, int64_t n) {
  if (n <= 0)
    return;
  countLaunches();
  swigluForwardKernel<<<blocksFor(n), kThreads, 0, stream()>>>(g, u, out, n);
}

void swigluBackward(float* g, float* u, const float* dh, int64_t n) {
  if (n <= 0)
    return;
  countLaunches();
  swigluBackwardKernel<<<blocksFor(n), kThreads, 0, stream()>>>(g, u, dh, n);
}

void ropeRows(float* x, int64_t rows, int heads, int64_t rowStride, int64_t headStride,
              int64_t offset, int64_t seqLen, const float* invFreq, int half, float factor,
              bool interleaved, bool inverse) {
  const int64_t n = rows * heads * half;
  if (n <= 0)
    return;
  countLaunches();
  ropeRowsKernel<<<blocksFor(n), kThreads, 0, stream()>>>(x, rows, heads, rowStride, headStride,
                                                          offset, seqLen, invFreq, half, factor,
                                                          interleaved, inverse ? -1.f : 1.f);
}

void causalSoftmax(float* s, int64_t mats, int64_t L) {
  if (mats * L <= 0)
    return;
  countLaunches();
  causalSoftmaxKernel<<<rowsGrid(mats * L), kRowThreads, 0, stream()>>>(s, L);
}

void softmaxBackward(const float* p, float* dp, int64_t mats, int64_t L) {
  if (mats * L <= 0)
    return;
  countLaunches();
  softmaxBackwardKernel<<<rowsGrid(mats * L), kRowThreads, 0, stream()>>>(p, dp, L);
}

void copyRows(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch, int64_t n,
              int64_t width, int64_t srcDiv, bool accumulate) {
  if (n * width <= 0)
    return;
  countLaunches();
  copyRowsKernel<<<blocksFor(n * width), kThreads, 0, stream()>>>(dst, dstPitch, src, srcPitch, n,
                                                                  width, srcDiv, accumulate);
}

void sumGroups(float* dst, int64_t dstPitch, const float* src, int64_t srcPitch, int64_t n,
               int group, int64_t width) {
  if (n * width <= 0)
    return;
  countLaunches();
  sumGroupsKernel<<<blocksFor(n * width), kThreads, 0, stream()>>>(dst, dstPitch, src, srcPitch, n,
                                                                   group, width);
}

void accumulate(float* y, const float* x, int64_t n) {
  if (n <= 0)
    return;
  countLaunches();
  accumulateKernel<<<blocksFor(n), kThreads, 0, stream()>>>(y, x, n);
}

void crossEntropyRows(float* logits, int64_t n, int64_t vocab, const int32_t* targets,
                      double* rowLoss, bool grad, double norm) {
  if (n <= 0)
    return;
  countLaunches();
  crossEntropyKernel<<<rowsGrid(n), kRowThreads, 0, stream()>>>(logits, vocab, targets, rowLoss,
                                                                grad, norm);
}

} // namespace kt::cuda::grad
