#include "kernels/cpu/Matrix.h"

#include "kernels/cpu/quant/QuantMatmul.h"

#include <cstring>

namespace kt::cpu {

float MatrixView::at(int64_t r, int64_t c) const {
  const uint8_t* p = row(r) + size_t(c) * dtypeSize(dtype);
  switch (dtype) {
  case DType::F32: {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  case DType::BF16: {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return bf16ToF32(h);
  }
  case DType::F16: {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16ToF32(h);
  }
  default:
    return 0.f;
  }
}

void MatrixView::rowToF32(int64_t r, float* out) const {
  if (packed >= 0) {
    quant::dequantizeRow(quant::WeightFormat(packed), data, rows, cols, r, out);
    return;
  }
  const uint8_t* p = row(r);
  switch (dtype) {
  case DType::F32:
    std::memcpy(out, p, size_t(cols) * 4);
    return;
  case DType::BF16: {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    for (int64_t i = 0; i < cols; ++i)
      out[i] = bf16ToF32(h[i]);
    return;
  }
  case DType::F16: {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    for (int64_t i = 0; i < cols; ++i)
      out[i] = f16ToF32(h[i]);
    return;
  }
  default:
    for (int64_t i = 0; i < cols; ++i)
      out[i] = 0.f;
  }
}

} // namespace kt::cpu
