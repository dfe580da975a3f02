#include "tools/kt-synth/Encode.h"

#include <cstring>

namespace kt::synth {

uint16_t f32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u)
    return uint16_t(sign | 0x7e00u); // NaN
  if (absx >= 0x477ff000u)
    return uint16_t(sign | 0x7c00u);                   // rounds to >= 65520: inf
  if (absx >= 0x38800000u) {                           // normal half (>= 2^-14)
    uint32_t m = absx + 0xfffu + ((absx >> 13) & 1u);  // round to nearest even at bit 13
    return uint16_t(sign | ((m - 0x38000000u) >> 13)); // rebias exponent 127 -> 15
  }
  if (absx < 0x33000000u)
    return uint16_t(sign); // below half the smallest subnormal: zero
  // Subnormal half: value = mant * 2^-24; shift the full 24-bit significand into place.
  const uint32_t e = absx >> 23;
  const uint32_t sig = (absx & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e; // 14..24 for e in 102..112
  uint32_t m = sig >> shift;
  const uint32_t rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u)))
    ++m;
  return uint16_t(sign | m);
}

void encode(const float* in, size_t n, DType dtype, uint8_t* out) {
  switch (dtype) {
  case DType::BF16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = f32ToBf16(in[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return;
  case DType::F16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = f32ToF16(in[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
    return;
  default:
    std::memcpy(out, in, n * 4);
    return;
  }
}

} // namespace kt::synth
