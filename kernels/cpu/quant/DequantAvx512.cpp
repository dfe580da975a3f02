// AVX-512 conversion of packed f32 / bf16 / int8 panels back to f32 rows (QuantMatmul.h:
// dequantizeRows): sixteen 64-byte lines of a panel are transposed in registers, so row i's values
// come out in column order. Compiled with the AVX-512 flags; called only after Dispatch.cpp checked
// the CPU. Internal linkage except the entry point (see Layout.h).
#include "kernels/cpu/quant/Kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized" // GCC bug 105593, as in MatmulAvx512.cpp
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace kt::cpu::quant::detail {

namespace {

__mmask16 tail(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
}

// In-register transpose of a 16 x 16 matrix of dwords: r[i] lane j <-> r[j] lane i.
void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // Now per 128-bit lane L, u[4i + c] holds column 4L + c of rows 4i..4i+3.
  __m512i u[16];
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // Gather lane L of u[c], u[4 + c], u[8 + c], u[12 + c] into column 4L + c.
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
    const __m512i v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    r[c + 0] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[c + 8] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    r[c + 4] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[c + 12] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

} // namespace

bool dequantizeRowsAvx512(WeightFormat fmt, const uint8_t* packed, int64_t n, int64_t k, int64_t r0,
                          int64_t nr, float* out, int64_t ld) {
  if (r0 % 16 != 0 ||
      (fmt != WeightFormat::Int8 && fmt != WeightFormat::BF16 && fmt != WeightFormat::F32))
    return false;
  const Layout L = makeLayout(fmt, n, k);
  // A 64-byte line holds one dword per row: 4 int8 columns, 2 bf16 columns or 1 f32 column.
  const int64_t perLine = fmt == WeightFormat::Int8 ? 4 : fmt == WeightFormat::BF16 ? 2 : 1;
  const int64_t lines = L.kp / perLine, K = k, end = r0 + nr < n ? r0 + nr : n;
  const __m512i bias = _mm512_set1_epi32(128);
  for (int64_t p = r0 / 16; p * 16 < end; ++p) {
    const uint8_t* panel = panelPtr(L, packed, p);
    const int rows = int(end - p * 16 < 16 ? end - p * 16 : 16);
    float* o = out + (p * 16 - r0) * ld;
    float scale[16] = {};
    if (fmt == WeightFormat::Int8)
      __builtin_memcpy(scale, panel + L.scaleOff, sizeof scale);
    // 16 lines at a time; after the transpose register i holds row i's dwords of those lines, i.e.
    // its next 16·perLine columns in order (lines past the panel's last are zero, never read).
    for (int64_t l0 = 0; l0 < lines && l0 * perLine < K; l0 += 16) {
      __m512i r[16];
      for (int l = 0; l < 16; ++l)
        r[l] = l0 + l < lines ? _mm512_loadu_si512(panel + (l0 + l) * 64) : _mm512_setzero_si512();
      transpose16(r);
      const int64_t k0 = l0 * perLine;
      for (int i = 0; i < rows; ++i) {
        float* dst = o + i * ld + k0;
        if (fmt == WeightFormat::F32) {
          _mm512_mask_storeu_ps(dst, tail(K - k0), _mm512_castsi512_ps(r[i]));
        } else if (fmt == WeightFormat::BF16) { // bf16 -> f32 is a 16-bit shift, exact
          const __m512i lo = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(r[i]));
          const __m512i hi = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(r[i], 1));
          _mm512_mask_storeu_ps(dst, tail(K - k0), _mm512_castsi512_ps(_mm512_slli_epi32(lo, 16)));
          if (K - k0 > 16)
            _mm512_mask_storeu_ps(dst + 16, tail(K - k0 - 16),
                                  _mm512_castsi512_ps(_mm512_slli_epi32(hi, 16)));
        } else {
          const __m512 s = _mm512_set1_ps(scale[i]);
          const __m128i q4[4] = {
              _mm512_extracti32x4_epi32(r[i], 0), _mm512_extracti32x4_epi32(r[i], 1),
              _mm512_extracti32x4_epi32(r[i], 2), _mm512_extracti32x4_epi32(r[i], 3)};
          for (int q = 0; q < 4 && k0 + 16 * q < K; ++q) {
            // (u - 128) · s: the same single rounding as quant::dequantizeRow.
            const __m512 v = _mm512_mul_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q4[q]), bias)), s);
            _mm512_mask_storeu_ps(dst + 16 * q, tail(K - k0 - 16 * q), v);
          }
        }
      }
    }
  }
  return true;
}

} // namespace kt::cpu::quant::detail
