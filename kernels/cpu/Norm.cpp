#include "kernels/cpu/Norm.h"

#include <cmath>
#include <vector>

namespace kt::cpu {

void rmsNorm(const float* x, int64_t rows, int64_t dim, const MatrixView& w, double eps, float* y) {
  std::vector<float> wf(static_cast<size_t>(dim));
  w.rowToF32(0, wf.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float ss = 0.f;
    for (int64_t i = 0; i < dim; ++i)
      ss += xr[i] * xr[i];
    float inv = 1.0f / std::sqrt(ss / float(dim) + float(eps));
    for (int64_t i = 0; i < dim; ++i)
      yr[i] = wf[i] * (xr[i] * inv);
  }
}

} // namespace kt::cpu
