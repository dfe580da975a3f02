// AMX kernels for bf16 (TDPBF16PS) and int8 (TDPBSUD) weights, t > kGemvMaxTokens. Compiled with
// -mamx-tile -mamx-bf16 -mamx-int8 (+ AVX-512 for the epilogue); called only when Dispatch.cpp
// found AMX in CPUID, XCR0 and got the Linux XTILEDATA permission. No std:: code here (Layout.h).
//
// The packed panels are already AMX "B" tiles: 16 consecutive 64-byte lines of a panel are one
// 16 x 64-byte tile (bf16: 32 k as pairs; int8: 64 k as quads), loaded with stride 64. Activations
// (prepared, rows padded to 16 with zeros) are "A" tiles: 16 tokens x 64 bytes with the row stride
// of the prepared buffer. A register block is 2 token tiles x 2 panels: C tiles 0-3, A 4-5, B 6-7.
// C[m][n] is token m, output row n of the panel; each C tile is stored to a 1 KiB buffer and
// copied (int8: scaled) into y with the same masked stores as the AVX-512 kernels.
//
// NOTE: the development machine has no AMX: there the unit tests run this code against a scalar
// model of the tile instructions (AmxEmulation.h); on a CPU with AMX they run the real thing.
#include "kernels/cpu/quant/Kernels.h"

// GCC 12 reports its own _mm512_undefined_*() inside the intrinsic headers as maybe-uninitialized
// (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

// Tests compile this file a second time with KT_AMX_EMULATE naming a header that replaces the tile
// intrinsics by a scalar model of the AMX registers, so the tiling and addressing below are
// checked on machines without AMX (test/unit/kernels/AmxEmulation.h).
#ifdef KT_AMX_EMULATE
#include KT_AMX_EMULATE
#endif

namespace kt::cpu::quant::detail {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

inline int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}
inline int64_t imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}

struct Out {
  float* y;
  int64_t n, t, n0, n1;
};

inline void storeRows(const Out& o, int64_t s, int64_t r0, __m512 v) {
  float* dst = o.y + s * o.n + r0;
  const int64_t lo = imax(o.n0 - r0, 0), hi = imin(o.n1 - r0, 16);
  if (lo >= hi)
    return;
  const __mmask16 m = __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  _mm512_mask_storeu_ps(dst, m, v);
}

inline void emitF32(const Out& o, int64_t s0, int64_t p, const float* c) {
  for (int r = 0; r < 16 && s0 + r < o.t; ++r)
    storeRows(o, s0 + r, p * 16, _mm512_load_ps(c + r * 16));
}

inline void emitInt8(const Job& j, const Out& o, int64_t s0, int64_t p, const int32_t* c) {
  const uint8_t* panel = panelPtr(j.w, j.packed, p);
  const __m512 ws = _mm512_loadu_ps(reinterpret_cast<const float*>(panel + j.w.scaleOff));
  const float* xsc = reinterpret_cast<const float*>(j.act + j.a.scaleOff);
  const int32_t* xsq = reinterpret_cast<const int32_t*>(j.act + j.a.sumqOff);
  for (int r = 0; r < 16 && s0 + r < o.t; ++r) {
    const int64_t s = s0 + r;
    __m512i v = _mm512_load_si512(c + r * 16);
    v = _mm512_sub_epi32(v, _mm512_set1_epi32(128 * xsq[s]));
    storeRows(o, s, p * 16,
              _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(ws, _mm512_set1_ps(xsc[s]))));
  }
}

// One register block: NT token tiles (16 tokens each) x NP panels, over all of K.
template <bool INT8, int NT, int NP> void block(const Job& j, const Out& o, int64_t p, int64_t s0) {
  const size_t xs = j.a.rowBytes;
  const uint8_t* x0 = j.act + size_t(s0) * xs;
  const uint8_t* x1 = x0 + 16 * xs;
  const uint8_t* w0 = panelPtr(j.w, j.packed, p);
  const uint8_t* w1 = NP == 2 ? panelPtr(j.w, j.packed, p + 1) : w0;
  // Bytes of K per tile step: 64 bytes of activations = 32 bf16 or 64 int8 columns, which is
  // 16 weight lines (1024 bytes) of the panel.
  const int64_t steps = INT8 ? j.w.kp / 64 : j.w.kp / 32;
  _tile_zero(0);
  if (NP == 2)
    _tile_zero(1);
  if (NT == 2)
    _tile_zero(2);
  if (NT == 2 && NP == 2)
    _tile_zero(3);
  for (int64_t i = 0; i < steps; ++i) {
    _tile_loadd(4, x0 + i * 64, xs);
    if (NT == 2)
      _tile_loadd(5, x1 + i * 64, xs);
    _tile_loadd(6, w0 + i * 1024, 64);
    if (NP == 2)
      _tile_loadd(7, w1 + i * 1024, 64);
    if (INT8) {
      _tile_dpbsud(0, 4, 6);
      if (NP == 2)
        _tile_dpbsud(1, 4, 7);
      if (NT == 2)
        _tile_dpbsud(2, 5, 6);
      if (NT == 2 && NP == 2)
        _tile_dpbsud(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      if (NP == 2)
        _tile_dpbf16ps(1, 4, 7);
      if (NT == 2)
        _tile_dpbf16ps(2, 5, 6);
      if (NT == 2 && NP == 2)
        _tile_dpbf16ps(3, 5, 7);
    }
  }
  alignas(64) int32_t cbuf[256];
  auto emit = [&](int64_t ss, int64_t pp) {
    if (INT8)
      emitInt8(j, o, ss, pp, cbuf);
    else
      emitF32(o, ss, pp, reinterpret_cast<const float*>(cbuf));
  };
  _tile_stored(0, cbuf, 64);
  emit(s0, p);
  if (NP == 2) {
    _tile_stored(1, cbuf, 64);
    emit(s0, p + 1);
  }
  if (NT == 2) {
    _tile_stored(2, cbuf, 64);
    emit(s0 + 16, p);
  }
  if (NT == 2 && NP == 2) {
    _tile_stored(3, cbuf, 64);
    emit(s0 + 16, p + 1);
  }
}

// Same loop order as the AVX-512 GEMM: token super-blocks that fit in L2 (multiples of 32 tokens),
// then panel pairs, then 32-token x 32-row register blocks.
template <bool INT8> void run(const Job& j) {
  const Out o{j.y, j.w.n, j.a.t, j.n0, j.n1};
  const int64_t p0 = j.n0 / 16, p1 = (j.n1 + 15) / 16;
  const int64_t tb = tokenSuperBlock(j.a.rowBytes, 32);
  for (int64_t t0 = 0; t0 < j.a.t; t0 += tb)
    for (int64_t p = p0; p < p1; p += 2) {
      const bool twoP = p + 1 < p1;
      for (int64_t s0 = t0; s0 < imin(j.a.t, t0 + tb); s0 += 32) {
        const bool twoT = s0 + 16 < j.a.t; // rows are padded to 16, so tokens s0+16.. exist
        if (twoP && twoT)
          block<INT8, 2, 2>(j, o, p, s0);
        else if (twoP)
          block<INT8, 1, 2>(j, o, p, s0);
        else if (twoT)
          block<INT8, 2, 1>(j, o, p, s0);
        else
          block<INT8, 1, 1>(j, o, p, s0);
      }
    }
}

// Palette 1; tiles 0-7 all 16 rows x 64 bytes. A constant in .rodata: GCC's _tile_loadconfig asm
// names only the first 8 bytes of the config as its input, so a stack copy could be incomplete.
const TileConfig kTileConfig = {
    1, 0, {}, {64, 64, 64, 64, 64, 64, 64, 64}, {16, 16, 16, 16, 16, 16, 16, 16}};

} // namespace

void matmulAmx(const Job& j) {
  // tileloadd's asm has no memory operand: make sure the prepared activations are in memory.
  __asm__ volatile("" ::: "memory");
  _tile_loadconfig(&kTileConfig);
  if (j.w.fmt == WeightFormat::Int8)
    run<true>(j);
  else
    run<false>(j);
  _tile_release();
}

} // namespace kt::cpu::quant::detail
