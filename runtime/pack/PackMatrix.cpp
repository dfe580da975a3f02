#include "runtime/pack/PackMatrix.h"

#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/Error.h"

#include <string>

namespace kt::pack {

namespace q = kt::cpu::quant;

uint64_t packedAlign() {
  return q::kPackedAlign;
}

namespace {
q::WeightFormat checkedFormat(int format) {
  for (q::WeightFormat f : q::kAllWeightFormats)
    if (int(f) == format)
      return f;
  throw Error("unknown packed format " + std::to_string(format));
}
} // namespace

size_t packedMatrixBytes(int format, int64_t n, int64_t k) {
  const q::WeightFormat fmt = checkedFormat(format);
  size_t bytes = q::packedBytes(fmt, n, k);
  if (bytes == 0)
    throw Error(std::string("format ") + q::formatName(fmt) + " cannot hold a [" +
                std::to_string(n) + ", " + std::to_string(k) + "] matrix");
  return bytes;
}

void packMatrix(int format, DType srcType, const uint8_t* src, int64_t n, int64_t k, uint8_t* out) {
  const q::WeightFormat fmt = checkedFormat(format);
  q::SourceType st;
  switch (srcType) {
  case DType::F32:
    st = q::SourceType::F32;
    break;
  case DType::BF16:
    st = q::SourceType::BF16;
    break;
  case DType::F16:
    st = q::SourceType::F16;
    break;
  default:
    throw Error(std::string("cannot pack a matrix of dtype ") + dtypeName(srcType) +
                " (only f32, bf16 and f16)");
  }
  q::packWeights(fmt, st, src, n, k, out);
}

} // namespace kt::pack
