// linear (+LoRA) on the GPU (TrainKernels.h): kernels/cpu/grad Linear.cpp's products as cuBLAS f32
// GEMMs.
//   forward:  u = x Aᵀ;  y = x Wᵀ + b + scale·u Bᵀ
//   backward: dB += scale·dyᵀ u;  du = scale·dy B;  dA += duᵀ x;  dx (+)= dy W + du A
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

namespace kt::cuda::grad {

namespace {
bool active(const DevLora* l) {
  return l && l->A && l->B && l->r > 0;
}
} // namespace

void linearForward(Context& c, const DevProjection& p, const float* x, int64_t rows, float* y) {
  const int64_t out = p.out, in = p.in;
  c.gemm("linear x·Wᵀ", false, true, rows, out, in, 1.f, x, in, p.w, in, 0.f, y, out);
  if (p.bias) {
    addBias(y, p.bias, rows, out);
    c.checkLaunch("linear bias");
  }
  if (!active(p.lora))
    return;
  const DevLora& l = *p.lora;
  float* u = c.scratch(kLinearSlot, rows * l.r);
  c.gemm("lora x·Aᵀ", false, true, rows, l.r, in, 1.f, x, in, l.A, in, 0.f, u, l.r);
  c.gemm("lora u·Bᵀ", false, true, rows, out, l.r, l.scale, u, l.r, l.B, l.r, 1.f, y, out);
}

void linearBackward(Context& c, const DevProjection& p, const float* x, int64_t rows,
                    const float* dy, float* dx, bool accumulate) {
  const int64_t out = p.out, in = p.in;
  if (dx)
    c.gemm("linear dy·W", false, false, rows, in, out, 1.f, dy, out, p.w, in,
           accumulate ? 1.f : 0.f, dx, in);
  if (!active(p.lora))
    return;
  const DevLora& l = *p.lora;
  if (l.dB) {
    float* u = c.scratch(kLinearSlot, rows * l.r);
    c.gemm("lora x·Aᵀ", false, true, rows, l.r, in, 1.f, x, in, l.A, in, 0.f, u, l.r);
    c.gemm("lora dB", true, false, out, l.r, rows, l.scale, dy, out, u, l.r, 1.f, l.dB, l.r);
  }
  float* du = c.scratch(kLinearSlot + 1, rows * l.r);
  c.gemm("lora dy·B", false, false, rows, l.r, out, l.scale, dy, out, l.B, l.r, 0.f, du, l.r);
  if (l.dA)
    c.gemm("lora dA", true, false, l.r, in, rows, 1.f, du, l.r, x, in, 1.f, l.dA, in);
  if (dx)
    c.gemm("lora du·A", false, false, rows, in, l.r, 1.f, du, l.r, l.A, in, 1.f, dx, in);
}

} // namespace kt::cuda::grad
