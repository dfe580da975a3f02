#pragma once
// Internal: the packed weight layouts and prepared-activation layouts, shared by the packer, the
// reference and every ISA kernel.
//
// Everything here has internal linkage (`static`) and the structs have no member functions on
// purpose: the ISA-specific .cpp files are compiled with -mavx512f etc., and an inline function
// with external linkage emitted there could be the copy the linker keeps for a baseline caller —
// executing AVX-512 on an AVX2-only machine. Static functions stay private to each translation
// unit.
//
// ==== Packed weight blob ====
// Offset 0: PackedHeader (64 bytes). Then ceil(n/16) panels of `panelBytes` each (a multiple of
// 64). Panel p holds output rows [16p, 16p+16); rows >= n are zero. Every 64-byte "line" of a
// panel holds one k-slice of all 16 rows, so one aligned 512-bit load feeds 16 output accumulators:
//   f32  : line k            = W[16p+i][k]                        i = 0..15, 4 bytes each
//   bf16 : line j (k=2j,2j+1) = {W[16p+i][2j], W[16p+i][2j+1]}     4 bytes per row (lo = even k)
//          -> VDPBF16PS operand, and exactly the AMX-BF16 "B" tile row layout (16 lines = 1 tile).
//   int8 : line j (k=4j..4j+3) = {q+128 for the 4 k of row i}      4 bytes per row (u8)
//          -> VPDPBUSD unsigned operand / AMX TDPBSUD "B" tile row; after kp*16 bytes of lines,
//          16 f32 row scales (64 bytes).
//   int4 : per group g, G/8 lines; line j covers k = gG+8j .. gG+8j+7: byte 4i+c holds
//          u(row i, k=gG+8j+c) in the low nibble and u(row i, k=gG+8j+4+c) in the high nibble, so
//          (v & 0x0f) and (v & 0xf0) = 16 u are two VPDPBUSD operands of 4 k each. After kp*8
//          bytes of lines: scales f16 [groups][16], then (asym) mins f16 [groups][16], then zero
//          padding to 64. Sym: w = d * (u - 8); asym: w = d * u + min.
// K is padded with zero weights (and zero activations) to kp: f32 8, bf16 32 (one AMX tile of K),
// int8 64 (one AMX tile of K), int4 the group size.
//
// Alignment: every line is 64-byte aligned relative to the blob start; kernels use unaligned loads,
// so any address works, but a blob placed at a 64-byte-aligned address (the sidecar writer must
// place blobs at 64-byte-aligned file offsets; mmap returns page-aligned memory) never splits a
// line across two cache lines.
#include "kernels/cpu/quant/QuantMatmul.h"

#include <cstdint>
#include <cstring>

namespace kt::cpu::quant::detail {

struct PackedHeader {
  char magic[4];       // "KTQW"
  uint32_t version;    // kPackedVersion
  uint32_t format;     // WeightFormat
  uint32_t rowBlock;   // 16
  int64_t n, k;        // logical shape
  uint64_t panelBytes; // bytes per 16-row panel
  uint64_t totalBytes; // header + panels
  uint8_t reserved[16];
};
static_assert(sizeof(PackedHeader) == 64, "header is one cache line");
static constexpr uint32_t kPackedVersion = 1;
static constexpr size_t kHeaderBytes = 64;

struct Layout {
  WeightFormat fmt;
  int64_t n, k;
  int64_t kp;         // K padded
  int64_t panels;     // ceil(n / 16)
  int64_t group;      // int4 group size, else 0
  int64_t groups;     // kp / group (int4), else 0
  bool asym;          // int4 with min
  size_t weightBytes; // bytes of lines per panel
  size_t scaleOff;    // int8: f32[16]; int4: f16[groups][16]
  size_t minOff;      // int4 asym: f16[groups][16]
  size_t panelBytes;  // multiple of 64
  size_t totalBytes;  // header + panels
};

static inline int64_t roundUpI(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

static inline int64_t kAlignOf(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return 8;
  case WeightFormat::BF16:
    return 32;
  case WeightFormat::Int8:
    return 64;
  case WeightFormat::Int4G32Sym:
  case WeightFormat::Int4G32Asym:
    return 32;
  case WeightFormat::Int4G128Sym:
  case WeightFormat::Int4G128Asym:
    return 128;
  }
  return 64;
}

static inline bool int4Format(WeightFormat f) {
  return f == WeightFormat::Int4G32Sym || f == WeightFormat::Int4G32Asym ||
         f == WeightFormat::Int4G128Sym || f == WeightFormat::Int4G128Asym;
}

static inline Layout makeLayout(WeightFormat f, int64_t n, int64_t k) {
  Layout L;
  std::memset(&L, 0, sizeof L);
  L.fmt = f;
  L.n = n;
  L.k = k;
  L.kp = roundUpI(k, kAlignOf(f));
  L.panels = (n + 15) / 16;
  L.asym = f == WeightFormat::Int4G32Asym || f == WeightFormat::Int4G128Asym;
  switch (f) {
  case WeightFormat::F32:
    L.weightBytes = size_t(L.kp) * 64;
    L.panelBytes = L.weightBytes;
    break;
  case WeightFormat::BF16:
    L.weightBytes = size_t(L.kp) * 32;
    L.panelBytes = L.weightBytes;
    break;
  case WeightFormat::Int8:
    L.weightBytes = size_t(L.kp) * 16;
    L.scaleOff = L.weightBytes;
    L.panelBytes = L.weightBytes + 64;
    break;
  default:
    L.group = kAlignOf(f);
    L.groups = L.kp / L.group;
    L.weightBytes = size_t(L.kp) * 8;
    L.scaleOff = L.weightBytes;
    L.minOff = L.scaleOff + size_t(L.groups) * 32;
    L.panelBytes = size_t(roundUpI(int64_t(L.minOff + (L.asym ? size_t(L.groups) * 32 : 0)), 64));
    break;
  }
  L.totalBytes = kHeaderBytes + size_t(L.panels) * L.panelBytes;
  return L;
}

static inline const uint8_t* panelPtr(const Layout& L, const uint8_t* blob, int64_t p) {
  return blob + kHeaderBytes + size_t(p) * L.panelBytes;
}

// ==== Prepared activations ====
// rows x rowBytes of converted activations (f32 / bf16 / int8, zero-padded to kp columns and to
// `rows` rows), then for the int8 modes three [rows][blocks] arrays: f32 scale s, f32 s*sum(q) and
// int32 sum(q) of each (token, block). A block is all of K (Int8PerToken) or one weight group.
struct ActLayout {
  ActMode mode;
  int64_t t, rows, kp;
  int64_t blockSize, blocks; // int8 modes
  size_t rowBytes;           // multiple of 64
  size_t scaleOff, sumfOff, sumqOff;
  size_t totalBytes;
};

static inline ActLayout makeActLayout(ActMode mode, WeightFormat f, int64_t k, int64_t t,
                                      int64_t rows) {
  ActLayout A;
  std::memset(&A, 0, sizeof A);
  A.mode = mode;
  A.t = t;
  A.rows = rows;
  A.kp = roundUpI(k, kAlignOf(f));
  size_t elem = mode == ActMode::F32 ? 4 : mode == ActMode::Bf16 ? 2 : 1;
  A.rowBytes = size_t(roundUpI(int64_t(A.kp * elem), 64));
  size_t off = size_t(rows) * A.rowBytes;
  if (mode == ActMode::Int8PerToken || mode == ActMode::Int8PerGroup) {
    A.blockSize = mode == ActMode::Int8PerToken ? (A.kp > 0 ? A.kp : 1) : kAlignOf(f);
    A.blocks = mode == ActMode::Int8PerToken ? 1 : A.kp / A.blockSize;
    size_t arr = size_t(roundUpI(rows * A.blocks * 4, 64));
    A.scaleOff = off;
    A.sumfOff = off + arr;
    A.sumqOff = off + 2 * arr;
    off += 3 * arr;
  }
  A.totalBytes = off;
  return A;
}

// Tokens per GEMM super-block: as many prepared activation rows as fit in ~256 KiB (a quarter of a
// typical 1-2 MiB L2, leaving room for the weight panels), a multiple of the register tile `tile`.
static inline int64_t tokenSuperBlock(size_t rowBytes, int64_t tile) {
  const int64_t rows = int64_t((size_t(256) << 10) / (rowBytes ? rowBytes : 1));
  return rows < tile ? tile : rows / tile * tile;
}

// ==== Scalar conversions (bit-exact definitions) ====
static inline uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static inline float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline float bf16ToF32(uint16_t b) {
  return floatOf(uint32_t(b) << 16);
}

// Round-to-nearest-even with denormal inputs treated as zero and NaN quieted: the definition of
// VCVTNEPS2BF16, so scalar and SIMD activation rounding agree bit for bit.
static inline uint16_t f32ToBf16(float f) {
  uint32_t u = bitsOf(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40u); // NaN -> quiet NaN
  if ((u & 0x7f800000u) == 0)
    return uint16_t((u >> 16) & 0x8000u); // denormal -> +-0
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

static inline float f16ToF32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) { // zero / subnormal: mant * 2^-24 (exact in f32)
    float v = float(mant) * 5.9604644775390625e-8f;
    return floatOf(bitsOf(v) | sign);
  }
  if (exp == 31)
    return floatOf(sign | 0x7f800000u | (mant << 13));
  return floatOf(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Round-to-nearest-even; overflow -> inf (callers clamp to +-65504 first).
static inline uint16_t f32ToF16(float f) {
  uint32_t x = bitsOf(f);
  uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u)
    return uint16_t(sign | 0x7e00u);
  if (x >= 0x477ff000u)
    return uint16_t(sign | 0x7c00u); // >= 65520 rounds to inf
  if (x < 0x38800000u) { // below 2^-14: f16 subnormal = round(|f| * 2^24) (1024 -> min normal)
    float a = floatOf(x) * 16777216.0f;
    uint32_t m = uint32_t(a);
    float rem = a - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u)))
      ++m;
    return uint16_t(sign | m);
  }
  uint32_t mant = x & 0x7fffffu;
  uint32_t h = ((((x >> 23) - 127u + 15u) << 10) | (mant >> 13));
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    ++h; // carry may bump the exponent: correct
  return uint16_t(sign | h);
}

} // namespace kt::cpu::quant::detail
