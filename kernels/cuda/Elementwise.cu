// Gathers, scatters and element-wise ops: one thread per element (grid-stride loops).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Stream.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace kt::cuda {

namespace {
__device__ inline float bf16ToF32(uint16_t b) {
  return __uint_as_float(uint32_t(b) << 16);
}

__global__ void embeddingKernel(const int32_t* ids, int64_t tokens, const void* table, bool bf16,
                                int64_t cols, float* out) {
  int64_t n = tokens * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i / cols, c = i % cols;
    int64_t src = int64_t(ids[t]) * cols + c;
    out[i] = bf16 ? bf16ToF32(static_cast<const uint16_t*>(table)[src])
                  : static_cast<const float*>(table)[src];
  }
}

__global__ void addKernel(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void swigluKernel(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float x = g[i];
    out[i] = x / (1.0f + expf(-x)) * u[i];
  }
}

__global__ void addBiasKernel(float* y, const float* bias, int64_t rows, int64_t cols) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * cols;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % cols];
}

__global__ void sigmoidKernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = 1.0f / (1.0f + expf(-x[i]));
}

__global__ void toBf16Kernel(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

__global__ void gatherRowsKernel(const float* x, int64_t cols, const int32_t* rows, int64_t n,
                                 float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / cols, c = i % cols;
    out[i] = x[int64_t(rows[r]) * cols + c];
  }
}

__global__ void scatterAddRowsKernel(const float* y, int64_t cols, const int32_t* rows,
                                     const float* scale, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / cols, c = i % cols;
    int64_t dst = rows ? int64_t(rows[r]) : r;
    out[dst * cols + c] += (scale ? scale[r] : 1.0f) * y[i];
  }
}
} // namespace

void embedding(const int32_t* ids, int64_t tokens, const void* table, bool tableBf16, int64_t cols,
               float* out) {
  countLaunches();
  embeddingKernel<<<blocksFor(tokens * cols), kThreads, 0, stream()>>>(ids, tokens, table,
                                                                       tableBf16, cols, out);
}

void add(const float* a, const float* b, float* out, int64_t n) {
  countLaunches();
  addKernel<<<blocksFor(n), kThreads, 0, stream()>>>(a, b, out, n);
}

void swiglu(const float* g, const float* u, float* out, int64_t n) {
  countLaunches();
  swigluKernel<<<blocksFor(n), kThreads, 0, stream()>>>(g, u, out, n);
}

void addBias(float* y, const float* bias, int64_t rows, int64_t cols) {
  countLaunches();
  addBiasKernel<<<blocksFor(rows * cols), kThreads, 0, stream()>>>(y, bias, rows, cols);
}

void sigmoidInPlace(float* x, int64_t n) {
  countLaunches();
  sigmoidKernel<<<blocksFor(n), kThreads, 0, stream()>>>(x, n);
}

void toBf16(const float* x, uint16_t* y, int64_t n) {
  countLaunches();
  toBf16Kernel<<<blocksFor(n), kThreads, 0, stream()>>>(x, y, n);
}

void gatherRows(const float* x, int64_t cols, const int32_t* rows, int64_t n, float* out) {
  if (n <= 0)
    return;
  countLaunches();
  gatherRowsKernel<<<blocksFor(n * cols), kThreads, 0, stream()>>>(x, cols, rows, n, out);
}

void scatterAddRows(const float* y, int64_t cols, const int32_t* rows, const float* scale,
                    int64_t n, float* out) {
  if (n <= 0)
    return;
  countLaunches();
  scatterAddRowsKernel<<<blocksFor(n * cols), kThreads, 0, stream()>>>(y, cols, rows, scale, n,
                                                                       out);
}

} // namespace kt::cuda
