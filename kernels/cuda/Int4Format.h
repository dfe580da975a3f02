#pragma once
// The GPU's weight-only int4 format (kt-compile --gpu-quant int4; plain C++ header, host code):
// the layout the kernels of QuantLinear.cu and MoeDecode.cu read, and the host-side quantizer the
// backend runs at upload (and the tests use to build inputs).
//
// A matrix W [rows, cols] is cut along its input dimension into groups of kInt4Group = 128
// columns (the last one partial when cols % 128 != 0). Each (row, group) has one signed f16 scale
// d and 128 values q in -8..7 with w ~ d * q, by the CPU's int4:g128 (symmetric) rule
// (kernels/cpu/quant/Formats.cpp): the value of largest magnitude m maps to -8 exactly,
// d = f16(m / -8), q = clamp(round(w / d), -8, 7). So a GPU int4 plan holds bit for bit the
// weights a CPU plan packed with --cpu-quant int4:g128 holds, and all 16 levels are used.
// Why f16 scales: 2 bytes per 128 weights (0.016 B per weight over the 0.5 of the nibbles, the
// size compiler/cost's matrixBytes charges for symmetric int4) with an 11-bit significand, 8x
// finer than bf16's; weight scales are far inside f16's range (|d| < 65504, subnormals to 6e-8).
//
// Bytes: row r occupies int4RowBytes(cols) = groups * 64 bytes (so every row starts 64-byte
// aligned and a lane's 16-byte load is 32 columns of one group); byte j holds column 2j in its
// low nibble and 2j+1 in its high nibble as u = q + 8. The columns past `cols` of the last group
// hold u = 8 (q = 0). Scales are [rows][groups] f16 bits. An expert stack is `count` such
// matrices back to back (data and scales).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

// The two size helpers are used by the kernels too.
#ifdef __CUDACC__
#define KT_INT4_HD __host__ __device__
#else
#define KT_INT4_HD
#endif

namespace kt::cuda {

constexpr int64_t kInt4Group = 128;

KT_INT4_HD inline int64_t int4Groups(int64_t cols) {
  return (cols + kInt4Group - 1) / kInt4Group;
}
KT_INT4_HD inline int64_t int4RowBytes(int64_t cols) {
  return int4Groups(cols) * (kInt4Group / 2);
}

// IEEE binary16 bits of f, round to nearest even (finite inputs within +-65504).
inline uint16_t int4ScaleBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x477ff000u) // rounds to >= 65520: clamp to the largest finite
    return uint16_t(sign | 0x7bffu);
  if (x < 0x38800000u) { // below 2^-14: subnormal, round(|f| * 2^24)
    float a;
    std::memcpy(&a, &x, 4);
    a *= 16777216.0f;
    uint32_t m = uint32_t(a);
    const float rem = a - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u)))
      ++m;
    return uint16_t(sign | m);
  }
  const uint32_t mant = x & 0x7fffffu, rem = mant & 0x1fffu;
  uint32_t h = (((x >> 23) - 127u + 15u) << 10) | (mant >> 13);
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    ++h; // a carry into the exponent is still the right rounding
  return uint16_t(sign | h);
}

inline float int4ScaleValue(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float v;
  if (exp == 0) { // zero or subnormal: mant * 2^-24
    v = float(mant) * 5.9604644775390625e-8f;
    uint32_t b;
    std::memcpy(&b, &v, 4);
    b |= sign;
    std::memcpy(&v, &b, 4);
    return v;
  }
  const uint32_t b = sign | ((exp + 112u) << 23) | (mant << 13); // no inf/NaN scales are made
  std::memcpy(&v, &b, 4);
  return v;
}

// Quantizes one row of `cols` finite floats into int4RowBytes(cols) bytes and int4Groups(cols)
// scale bits (the rule above; a group of zeros gets d = 0 and q = 0).
inline void quantizeInt4Row(const float* w, int64_t cols, uint8_t* packed, uint16_t* scales) {
  std::memset(packed, 0x88, size_t(int4RowBytes(cols))); // u = 8 in both nibbles: q = 0
  for (int64_t g = 0; g < int4Groups(cols); ++g) {
    const int64_t c0 = g * kInt4Group, c1 = std::min(cols, c0 + kInt4Group);
    float m = 0.f;
    for (int64_t c = c0; c < c1; ++c)
      if (std::fabs(w[c]) > std::fabs(m))
        m = w[c];
    const uint16_t dh = int4ScaleBits(std::max(-65504.f, std::min(65504.f, m / -8.f)));
    const float d = int4ScaleValue(dh);
    scales[g] = dh;
    for (int64_t c = c0; c < c1; ++c) {
      const int q = d != 0.f ? std::max(-8, std::min(7, int(std::nearbyint(w[c] / d)))) : 0;
      uint8_t& byte = packed[c / 2];
      byte = c % 2 ? uint8_t((byte & 0x0f) | ((q + 8) << 4)) : uint8_t((byte & 0xf0) | (q + 8));
    }
  }
}

// The quantized value q (-8..7) of column c of a packed row.
inline int int4At(const uint8_t* packed, int64_t c) {
  const uint8_t byte = packed[c / 2];
  return int(c % 2 ? byte >> 4 : byte & 0x0f) - 8;
}

// Weight (row, c) of a packed matrix as the kernels see it: d * q in f32.
inline float int4Weight(const uint8_t* data, const uint16_t* scales, int64_t cols, int64_t row,
                        int64_t c) {
  return int4ScaleValue(scales[row * int4Groups(cols) + c / kInt4Group]) *
         float(int4At(data + row * int4RowBytes(cols), c));
}

} // namespace kt::cuda
