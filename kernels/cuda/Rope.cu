// Rotary embeddings: one thread per (token, head, pair); the frequency schedule (default, linear,
// YaRN, Llama-3) is folded into invFreq by kernels/cpu/Rope's ropeInvFreq, so one kernel serves
// every schedule.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

namespace kt::cuda {

namespace {
__global__ void ropeKernel(float* x, int64_t tokens, int heads, int64_t tokenStride,
                           int64_t headStride, int64_t offset, const int32_t* positions,
                           const float* invFreq, int half, float attentionFactor,
                           bool interleaved) {
  int64_t n = tokens * heads * half;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n;
       j += int64_t(gridDim.x) * blockDim.x) {
    int i = int(j % half);
    int64_t th = j / half;
    int h = int(th % heads);
    int64_t t = th / heads;
    // Same float arithmetic as the CPU: angle in f32, then cos/sin scaled.
    float angle = float(positions[t]) * invFreq[i];
    float c = cosf(angle) * attentionFactor, s = sinf(angle) * attentionFactor;
    float* v = x + t * tokenStride + h * headStride + offset;
    float* a = interleaved ? &v[2 * i] : &v[i];
    float* b = interleaved ? &v[2 * i + 1] : &v[i + half];
    float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x1 * c + x0 * s;
  }
}
} // namespace

void rope(float* x, int64_t tokens, int heads, int64_t tokenStride, int64_t headStride,
          int64_t offset, const int32_t* positions, const float* invFreq, int dim,
          float attentionFactor, bool interleaved) {
  int64_t n = tokens * heads * (dim / 2);
  if (n <= 0)
    return;
  int64_t blocks = (n + 255) / 256;
  countLaunches();
  ropeKernel<<<unsigned(blocks > 262140 ? 262140 : blocks), 256, 0, stream()>>>(
      x, tokens, heads, tokenStride, headStride, offset, positions, invFreq, dim / 2,
      attentionFactor, interleaved);
}

} // namespace kt::cuda
