#pragma once
// A read-only view of a weight matrix [rows, cols] stored row-major in f32, bf16 or f16 — the
// layout of Hugging Face checkpoints, used in place from the memory-mapped file.
#include "runtime/support/DType.h"

#include <cstdint>

namespace kt::cpu {

struct MatrixView {
  const uint8_t* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  // >= 0: `data` is a blob the compiler packed for the quantized kernels, in this
  // kt::cpu::quant::WeightFormat (int8/int4/bf16...); rows are then read by dequantizing.
  int32_t packed = -1;

  size_t rowBytes() const { return size_t(cols) * dtypeSize(dtype); }
  const uint8_t* row(int64_t r) const { return data + size_t(r) * rowBytes(); }
  // Element (r, c) as f32 (slow path for small vectors such as norms and biases; not for packed).
  float at(int64_t r, int64_t c) const;
  // Converts row r into out[0..cols).
  void rowToF32(int64_t r, float* out) const;
};

// A vector (norm weight, bias) is a one-row matrix.
inline float vecAt(const MatrixView& v, int64_t i) {
  return v.at(0, i);
}

} // namespace kt::cpu
