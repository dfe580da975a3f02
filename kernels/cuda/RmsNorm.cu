#include "kernels/cuda/CudaKernels.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

namespace kt::cuda {

namespace {

// One block per row; a block-wide reduction of the sum of squares, then the scaled write.
__global__ void rmsNormKernel(const float* x, int64_t xStride, int64_t dim, const float* w,
                              float eps, float* y, int64_t yStride) {
  const float* xr = x + blockIdx.x * xStride;
  float* yr = y + blockIdx.x * yStride;
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
  float inv = 1.0f / sqrtf(partial[0] / float(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = w[i] * (xr[i] * inv);
}

} // namespace

void rmsNormRows(const float* x, int64_t xStride, int64_t rows, int64_t dim, const float* w,
                 float eps, float* y, int64_t yStride) {
  if (rows <= 0)
    return;
  countLaunches();
  rmsNormKernel<<<unsigned(rows), 256, 0, stream()>>>(x, xStride, dim, w, eps, y, yStride);
}

bool rmsNorm(int device, const float* x, int64_t rows, int64_t dim, const float* w, float eps,
             float* y, std::string* err) {
  if (!setDevice(device, err))
    return false;
  size_t bytes = size_t(rows * dim) * sizeof(float);
  float* dx = static_cast<float*>(allocate(bytes, err));
  float* dw = dx ? static_cast<float*>(allocate(size_t(dim) * 4, err)) : nullptr;
  float* dy = dw ? static_cast<float*>(allocate(bytes, err)) : nullptr;
  bool ok = dy && toDevice(dx, x, bytes, err) && toDevice(dw, w, size_t(dim) * 4, err);
  if (ok) {
    rmsNormRows(dx, dim, rows, dim, dw, eps, dy, dim);
    ok = launchOk(err) && toHost(y, dy, bytes, err);
  }
  release(dx);
  release(dw);
  release(dy);
  return ok;
}

} // namespace kt::cuda
