#pragma once
#include "kernels/cpu/Matrix.h"

namespace kt::cpu {

// RMSNorm over the last dimension `dim` of `rows` rows, in place allowed (y may equal x):
// y = x / sqrt(mean(x^2) + eps) * w — as Hugging Face computes it (f32 throughout).
void rmsNorm(const float* x, int64_t rows, int64_t dim, const MatrixView& w, double eps, float* y);

} // namespace kt::cpu
