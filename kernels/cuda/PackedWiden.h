#pragma once
// Widening the CPU's packed weight blobs (kernels/cpu/quant/Layout.h) into the GPU's row-major
// f32 or bf16 matrices. Prefill offload (runtime/exec/cuda/ExpertStream) copies a CPU-held
// expert's packed bytes to the GPU as they are (int8 is half of bf16, int4 a quarter) and the
// widenPacked kernel (DeviceKernels.h) converts them there, instead of dequantizing on the host.
//
// The index math lives here once, host and device: packedWeight() is what the kernel computes per
// element and what the CPU unit test (test/unit/cuda/packed_widen_test.cpp) checks against
// quant::dequantizeRow, bit for bit, for every packed format. The products use one rounding each
// (__fmul_rn / __fadd_rn on the device, where nvcc would otherwise contract int4-asym's d*u + min
// into an FMA; the host's baseline x86-64 build has no FMA), so the GPU's weights are exactly the
// CPU's dequantized ones, rounded to bf16 as packForGpu rounds them.
#include "kernels/cpu/quant/Layout.h"

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KT_HD __host__ __device__
#else
#define KT_HD
#endif

namespace kt::cuda {

// Geometry of one packed [n, k] blob (a plain struct so it can be a kernel argument).
struct PackedGeom {
  uint32_t format = 0; // cpu::quant::WeightFormat
  int64_t n = 0, k = 0;
  int64_t group = 0; // int4 group size, else 0
  int32_t asym = 0;  // int4 with mins
  uint64_t panelBytes = 0, scaleOff = 0, minOff = 0;
};

// Host only: the geometry of a blob the CPU packer made (Layout.h's makeLayout).
inline PackedGeom packedGeom(cpu::quant::WeightFormat f, int64_t n, int64_t k) {
  const cpu::quant::detail::Layout L = cpu::quant::detail::makeLayout(f, n, k);
  PackedGeom g;
  g.format = uint32_t(f);
  g.n = n;
  g.k = k;
  g.group = L.group;
  g.asym = L.asym ? 1 : 0;
  g.panelBytes = L.panelBytes;
  g.scaleOff = L.scaleOff;
  g.minOff = L.minOff;
  return g;
}

namespace widen {

// Aligned loads on the device (blobs start 64-byte aligned, and every f32/bf16/scale sits at a
// multiple of its size inside a panel); memcpy on the host.
KT_HD inline uint32_t load32(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  return *reinterpret_cast<const uint32_t*>(p);
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}
KT_HD inline uint16_t load16(const uint8_t* p) {
#ifdef __CUDA_ARCH__
  return *reinterpret_cast<const uint16_t*>(p);
#else
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}
KT_HD inline float asFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
KT_HD inline uint32_t asBits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
KT_HD inline float mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
KT_HD inline float add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// Layout.h's f16ToF32 (subnormals: mant * 2^-24, exact in f32).
KT_HD inline float f16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0)
    return asFloat(asBits(mul(float(mant), 5.9604644775390625e-8f)) | sign);
  if (exp == 31)
    return asFloat(sign | 0x7f800000u | (mant << 13));
  return asFloat(sign | ((exp + 112u) << 23) | (mant << 13));
}

// GpuFormat.cpp's toBf16Bits: round to nearest even, no flushing (what the upload does).
KT_HD inline uint16_t toBf16(float f) {
  uint32_t u = asBits(f);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

} // namespace widen

// W[r][c] of the packed blob (header included) as quant::dequantizeRow gives it.
KT_HD inline float packedWeight(const PackedGeom& g, const uint8_t* blob, int64_t r, int64_t c) {
  const uint8_t* panel = blob + 64 + uint64_t(r / 16) * g.panelBytes; // 64: PackedHeader
  const int64_t i = r % 16;
  switch (g.format) {
  case 0: // F32: line c holds W[16p+i][c] at 4i
    return widen::asFloat(widen::load32(panel + c * 64 + i * 4));
  case 1: // BF16: line c/2 holds the pair (2j, 2j+1) of row i at 4i, even k low
    return widen::asFloat(uint32_t(widen::load16(panel + (c / 2) * 64 + i * 4 + (c % 2) * 2))
                          << 16);
  case 2: { // Int8: line c/4 holds q+128 of row i's 4 k at 4i; f32 row scales after the lines
    const float s = widen::asFloat(widen::load32(panel + g.scaleOff + i * 4));
    return widen::mul(float(int(panel[(c / 4) * 64 + i * 4 + c % 4]) - 128), s);
  }
  default: { // Int4: line c/8, byte 4i + c%4, low nibble for c%8 < 4; f16 [groups][16] scales
    const int64_t grp = c / g.group;
    const uint8_t byte = panel[(c / 8) * 64 + i * 4 + (c % 4)];
    const int u = (c % 8) < 4 ? (byte & 15) : (byte >> 4);
    const float d = widen::f16ToF32(widen::load16(panel + g.scaleOff + (grp * 16 + i) * 2));
    if (!g.asym)
      return widen::mul(d, float(u - 8));
    const float m = widen::f16ToF32(widen::load16(panel + g.minOff + (grp * 16 + i) * 2));
    return widen::add(widen::mul(d, float(u)), m);
  }
  }
}

// Host reference of the widenPacked kernel: rows [r0, r1) of the blob into row-major `out`
// ([n, k] f32, or bf16 bits when `bf16`).
inline void widenPackedRows(const PackedGeom& g, const uint8_t* blob, bool bf16, void* out,
                            int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = 0; c < g.k; ++c) {
      const float w = packedWeight(g, blob, r, c);
      if (bf16)
        static_cast<uint16_t*>(out)[r * g.k + c] = widen::toBf16(w);
      else
        static_cast<float*>(out)[r * g.k + c] = w;
    }
}

} // namespace kt::cuda
