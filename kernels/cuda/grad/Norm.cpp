// rms_norm forward and backward on the GPU (TrainKernels.h), as kernels/cpu/grad Norm.cpp:
//   y = w·x·s,  dx = s·w·dy - x·s³(Σ w·dy·x)/dim  with s = (Σx²/dim + eps)^(-1/2).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

namespace kt::cuda::grad {

void rmsNormForward(Context& c, const float* x, int64_t rows, int64_t dim, const float* w,
                    float eps, float* y) {
  rmsNormRows(x, dim, rows, dim, w, eps, y, dim);
  c.checkLaunch("rms_norm");
}

void rmsNormBackward(Context& c, const float* x, int64_t rows, int64_t dim, const float* w,
                     float eps, const float* dy, float* dx, bool accumulate) {
  rmsNormBackwardRows(x, dim, rows, dim, w, eps, dy, dim, dx, dim, accumulate);
  c.checkLaunch("rms_norm_grad");
}

} // namespace kt::cuda::grad
