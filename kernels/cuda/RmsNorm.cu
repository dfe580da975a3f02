#include "kernels/cuda/CudaKernels.h"

#include <cuda_runtime.h>

namespace kt::cuda {

namespace {

// One block per row; a block-wide reduction of the sum of squares, then the scaled write.
__global__ void rmsNormKernel(const float* x, int64_t dim, const float* w, float eps, float* y) {
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    ss += xr[i] * xr[i];
  __shared__ float partial[32];
  for (int off = 16; off > 0; off /= 2)
    ss += __shfl_down_sync(0xffffffffu, ss, off);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    ss = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.f;
    for (int off = 16; off > 0; off /= 2)
      ss += __shfl_down_sync(0xffffffffu, ss, off);
    if (threadIdx.x == 0)
      partial[0] = ss;
  }
  __syncthreads();
  float inv = rsqrtf(partial[0] / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = w[i] * (xr[i] * inv);
}

bool check(cudaError_t e, const char* what, std::string* err) {
  if (e == cudaSuccess)
    return true;
  if (err)
    *err = std::string(what) + ": " + cudaGetErrorString(e);
  cudaGetLastError();
  return false;
}

} // namespace

bool rmsNorm(int device, const float* x, int64_t rows, int64_t dim, const float* w, float eps,
             float* y, std::string* err) {
  if (!check(cudaSetDevice(device), "cudaSetDevice", err))
    return false;
  size_t bytes = size_t(rows * dim) * sizeof(float);
  float *dx = nullptr, *dw = nullptr, *dy = nullptr;
  bool ok = check(cudaMalloc(&dx, bytes), "cudaMalloc", err) &&
            check(cudaMalloc(&dw, size_t(dim) * 4), "cudaMalloc", err) &&
            check(cudaMalloc(&dy, bytes), "cudaMalloc", err) &&
            check(cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice), "copy x", err) &&
            check(cudaMemcpy(dw, w, size_t(dim) * 4, cudaMemcpyHostToDevice), "copy w", err);
  if (ok) {
    rmsNormKernel<<<unsigned(rows), 256>>>(dx, dim, dw, eps, dy);
    ok = check(cudaGetLastError(), "rmsNorm launch", err) &&
         check(cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost), "copy y", err);
  }
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dy);
  return ok;
}

} // namespace kt::cuda
