// SwiGLU MLP on the GPU (TrainKernels.h), as kernels/cpu/grad Mlp.cpp: h = silu(gate(x))·up(x),
// y = down(h); the backward recomputes g, u and h from x.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

namespace kt::cuda::grad {

void mlpForward(Context& c, const DevMlp& w, const float* x, int64_t rows, float* y) {
  const int64_t inter = w.gate.out;
  float* g = c.scratch(kMlpSlot, rows * inter);
  float* u = c.scratch(kMlpSlot + 1, rows * inter);
  linearForward(c, w.gate, x, rows, g);
  linearForward(c, w.up, x, rows, u);
  swigluForward(g, u, g, rows * inter);
  c.checkLaunch("mlp swiglu");
  linearForward(c, w.down, g, rows, y);
}

void mlpBackward(Context& c, const DevMlp& w, const float* x, int64_t rows, const float* dy,
                 float* dx, bool accumulate) {
  const int64_t inter = w.gate.out;
  float* g = c.scratch(kMlpSlot, rows * inter);
  float* u = c.scratch(kMlpSlot + 1, rows * inter);
  float* h = c.scratch(kMlpSlot + 2, rows * inter);
  float* dh = c.scratch(kMlpSlot + 3, rows * inter);
  linearForward(c, w.gate, x, rows, g);
  linearForward(c, w.up, x, rows, u);
  swigluForward(g, u, h, rows * inter);
  c.checkLaunch("mlp_grad swiglu");
  linearBackward(c, w.down, h, rows, dy, dh, false);
  swigluBackward(g, u, dh, rows * inter); // g := dg, u := du
  c.checkLaunch("mlp_grad swiglu backward");
  linearBackward(c, w.gate, x, rows, g, dx, accumulate);
  linearBackward(c, w.up, x, rows, u, dx, true);
}

} // namespace kt::cuda::grad
