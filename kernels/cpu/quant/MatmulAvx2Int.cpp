// AVX2 kernels for int8 and int4 weights against int8 activations (ActMode::Int8PerToken /
// Int8PerGroup, prepared as for AVX-512 VNNI). Compiled with -mavx2 -mfma -mf16c; called only from
// matmulAvx2 after Dispatch.cpp verified support. No std:: templates or externally visible inline
// functions here (see Layout.h).
//
// Why integer products: unpacking every weight to f32 and issuing one 8-lane FMA per 8 weights
// made the AVX2 int4 GEMV compute-bound (~7.5 GB/s of weights per core, far below DRAM).
// VPMADDUBSW multiplies 32 unsigned by 32 signed bytes and adds neighbouring pairs into 16 bits, so
// one instruction does the work of four FMAs:
//   int4: the nibbles u in [0, 15] are the unsigned operand, the activations q in [-127, 127] the
//         signed one. A pair is at most 2 * 15 * 127 = 3810, so the low- and high-nibble products
//         of four lines (8 k each) add up in 16 bits (<= 30480) before VPMADDWD widens them to 32.
//         Per group: acc += d * s_x * sum(u q) + m * s_x * sum(q) (sym: m = -8 d), as AVX-512 does.
//   int8: weights q_w in [-127, 127] are signed too, so the sign trick of the other int8 kernels:
//         |q_w| is the unsigned operand and q_x with q_w's sign the signed one; a pair is at most
//         2 * 127 * 127 = 32258, so each line is widened to 32 bits at once.
// Every panel is read from memory once per call: token blocks of up to 4 loop inside a panel,
// which stays in L1 meanwhile (prefill), and one token processes both 8-row halves together.
#include "kernels/cpu/quant/Kernels.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized" // GCC bug 105593, as in MatmulAvx2.cpp
#include <immintrin.h>

#define KT_UNROLL _Pragma("GCC unroll 16")

namespace kt::cpu::quant::detail {
namespace {

inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline const int8_t* actRow(const Job& j, int64_t s) {
  return reinterpret_cast<const int8_t*>(j.act + size_t(s) * j.a.rowBytes);
}
inline float actScale(const Job& j, int64_t s, int64_t b) {
  return reinterpret_cast<const float*>(j.act + j.a.scaleOff)[s * j.a.blocks + b];
}
inline float actSumF(const Job& j, int64_t s, int64_t b) {
  return reinterpret_cast<const float*>(j.act + j.a.sumfOff)[s * j.a.blocks + b];
}

// Writes rows [r0, r0 + 8) of token s that lie in the job's row range.
inline void storeHalf(const Job& j, int64_t s, int64_t r0, __m256 v) {
  float* y = j.y + s * j.w.n;
  if (r0 >= j.n0 && r0 + 8 <= j.n1) {
    _mm256_storeu_ps(y + r0, v);
    return;
  }
  float tmp[8];
  _mm256_storeu_ps(tmp, v);
  for (int i = 0; i < 8; ++i)
    if (r0 + i >= j.n0 && r0 + i < j.n1)
      y[r0 + i] = tmp[i];
}

// Tokens [s0, s0 + T) against the 8-row halves [h0, h0 + H) of one int4 panel. G: group size.
template <int T, int H, int G, bool ASYM>
void int4Block(const Job& j, const uint8_t* panel, int64_t p, int64_t s0, int h0) {
  constexpr int LG = G / 8;           // lines per group
  constexpr int LB = LG < 4 ? LG : 4; // lines per 16-bit batch (see the top)
  const __m256i nib = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const int64_t groups = j.w.groups;
  const int8_t* x[T];
  KT_UNROLL
  for (int s = 0; s < T; ++s)
    x[s] = actRow(j, s0 + s);
  __m256 facc[T][H];
  KT_UNROLL
  for (int s = 0; s < T; ++s) {
    KT_UNROLL
    for (int h = 0; h < H; ++h)
      facc[s][h] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* lines = panel + size_t(g) * LG * 64;
    __m256i acc32[T][H];
    KT_UNROLL
    for (int s = 0; s < T; ++s) {
      KT_UNROLL
      for (int h = 0; h < H; ++h)
        acc32[s][h] = _mm256_setzero_si256();
    }
    for (int l0 = 0; l0 < LG; l0 += LB) {
      __m256i acc16[T][H];
      KT_UNROLL
      for (int s = 0; s < T; ++s) {
        KT_UNROLL
        for (int h = 0; h < H; ++h)
          acc16[s][h] = _mm256_setzero_si256();
      }
      KT_UNROLL
      for (int l = l0; l < l0 + LB; ++l) {
        __m256i lo[H], hi[H];
        // One line ahead per line read, 1 KiB out: keeps DRAM busy across the group epilogues
        // (the hardware prefetcher alone left a core at 45-70% of its read rate).
        if (h0 == 0)
          _mm_prefetch(reinterpret_cast<const char*>(lines + size_t(l) * 64 + 1024), _MM_HINT_T0);
        KT_UNROLL
        for (int h = 0; h < H; ++h) {
          const __m256i v = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(lines + size_t(l) * 64 + 32 * (h0 + h)));
          lo[h] = _mm256_and_si256(v, nib);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
        }
        KT_UNROLL
        for (int s = 0; s < T; ++s) {
          const int8_t* xk = x[s] + g * G + l * 8;
          const __m256i xl = bcast32(xk), xh = bcast32(xk + 4);
          KT_UNROLL
          for (int h = 0; h < H; ++h)
            acc16[s][h] =
                _mm256_add_epi16(acc16[s][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], xl),
                                                               _mm256_maddubs_epi16(hi[h], xh)));
        }
      }
      KT_UNROLL
      for (int s = 0; s < T; ++s) {
        KT_UNROLL
        for (int h = 0; h < H; ++h)
          acc32[s][h] = _mm256_add_epi32(acc32[s][h], _mm256_madd_epi16(acc16[s][h], ones));
      }
    }
    KT_UNROLL
    for (int h = 0; h < H; ++h) {
      const size_t so = size_t(g) * 32 + 16 * size_t(h0 + h);
      const __m256 d = _mm256_cvtph_ps(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(panel + j.w.scaleOff + so)));
      const __m256 m = ASYM ? _mm256_cvtph_ps(_mm_loadu_si128(
                                  reinterpret_cast<const __m128i*>(panel + j.w.minOff + so)))
                            : _mm256_mul_ps(d, _mm256_set1_ps(-8.f));
      KT_UNROLL
      for (int s = 0; s < T; ++s) {
        const __m256 ds = _mm256_mul_ps(d, _mm256_set1_ps(actScale(j, s0 + s, g)));
        facc[s][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc32[s][h]), ds, facc[s][h]);
        facc[s][h] = _mm256_fmadd_ps(m, _mm256_set1_ps(actSumF(j, s0 + s, g)), facc[s][h]);
      }
    }
  }
  KT_UNROLL
  for (int s = 0; s < T; ++s) {
    KT_UNROLL
    for (int h = 0; h < H; ++h)
      storeHalf(j, s0 + s, p * 16 + 8 * (h0 + h), facc[s][h]);
  }
}

// Tokens [s0, s0 + T) against halves [h0, h0 + H) of one int8 panel (one activation block).
template <int T, int H>
void int8Block(const Job& j, const uint8_t* panel, int64_t p, int64_t s0, int h0) {
  const __m256i flip = _mm256_set1_epi8(char(0x80)), ones = _mm256_set1_epi16(1);
  const int64_t lines = j.w.kp / 4;
  const int8_t* x[T];
  KT_UNROLL
  for (int s = 0; s < T; ++s)
    x[s] = actRow(j, s0 + s);
  __m256i acc[T][H];
  KT_UNROLL
  for (int s = 0; s < T; ++s) {
    KT_UNROLL
    for (int h = 0; h < H; ++h)
      acc[s][h] = _mm256_setzero_si256();
  }
  for (int64_t l = 0; l < lines; ++l) {
    __m256i w[H], aw[H];
    KT_UNROLL
    for (int h = 0; h < H; ++h) {
      w[h] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                  panel + size_t(l) * 64 + 32 * (h0 + h))),
                              flip); // u8 (q + 128) -> s8 q
      aw[h] = _mm256_abs_epi8(w[h]);
    }
    KT_UNROLL
    for (int s = 0; s < T; ++s) {
      const __m256i xb = bcast32(x[s] + 4 * l);
      KT_UNROLL
      for (int h = 0; h < H; ++h)
        acc[s][h] = _mm256_add_epi32(
            acc[s][h],
            _mm256_madd_epi16(_mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(xb, w[h])), ones));
    }
  }
  const float* rowScale = reinterpret_cast<const float*>(panel + j.w.scaleOff);
  KT_UNROLL
  for (int s = 0; s < T; ++s) {
    const __m256 sx = _mm256_set1_ps(actScale(j, s0 + s, 0));
    KT_UNROLL
    for (int h = 0; h < H; ++h)
      storeHalf(j, s0 + s, p * 16 + 8 * (h0 + h),
                _mm256_mul_ps(_mm256_cvtepi32_ps(acc[s][h]),
                              _mm256_mul_ps(_mm256_loadu_ps(rowScale + 8 * (h0 + h)), sx)));
  }
}

// One panel for tokens [s0, s0 + T): both halves at once for one token (two independent chains),
// one half at a time for more (the accumulators of both would not fit the 16 registers).
template <int T, int G, bool ASYM>
void int4Tokens(const Job& j, const uint8_t* panel, int64_t p, int64_t s0) {
  if constexpr (T == 1) {
    int4Block<1, 2, G, ASYM>(j, panel, p, s0, 0);
  } else {
    int4Block<T, 1, G, ASYM>(j, panel, p, s0, 0);
    int4Block<T, 1, G, ASYM>(j, panel, p, s0, 1);
  }
}

template <int T> void int8Tokens(const Job& j, const uint8_t* panel, int64_t p, int64_t s0) {
  if constexpr (T <= 2) {
    int8Block<T, 2>(j, panel, p, s0, 0);
  } else {
    int8Block<T, 1>(j, panel, p, s0, 0);
    int8Block<T, 1>(j, panel, p, s0, 1);
  }
}

template <int G, bool ASYM> void int4Panels(const Job& j, int64_t p0, int64_t p1) {
  const int64_t t = j.a.t;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = panelPtr(j.w, j.packed, p);
    int64_t s = 0;
    for (; s + 4 <= t; s += 4)
      int4Tokens<4, G, ASYM>(j, panel, p, s);
    switch (t - s) {
    case 1:
      int4Tokens<1, G, ASYM>(j, panel, p, s);
      break;
    case 2:
      int4Tokens<2, G, ASYM>(j, panel, p, s);
      break;
    case 3:
      int4Tokens<3, G, ASYM>(j, panel, p, s);
      break;
    default:
      break;
    }
  }
}

void int8Panels(const Job& j, int64_t p0, int64_t p1) {
  const int64_t t = j.a.t;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = panelPtr(j.w, j.packed, p);
    int64_t s = 0;
    for (; s + 4 <= t; s += 4)
      int8Tokens<4>(j, panel, p, s);
    switch (t - s) {
    case 1:
      int8Tokens<1>(j, panel, p, s);
      break;
    case 2:
      int8Tokens<2>(j, panel, p, s);
      break;
    case 3:
      int8Tokens<3>(j, panel, p, s);
      break;
    default:
      break;
    }
  }
}

// One block of activations quantized as prepareActivationsRef does (Activations.cpp), 8 at a time:
// s = max|x| / 127, q = rint(x * (127 / max|x|)) with the same single f32 multiply and
// round-to-nearest-even, q's sum; a block holding inf or NaN keeps q = 0 and gets NaN scales.
void quantizeBlock(const float* x, int64_t n, int8_t* q, float* scale, float* sumf, int32_t* sumq) {
  const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 fmax = _mm256_set1_ps(3.402823466e38f);
  float tail[8];
  auto load = [&](int64_t c) { // 8 values from c; past n: zeros
    if (c + 8 <= n)
      return _mm256_loadu_ps(x + c);
    for (int i = 0; i < 8; ++i)
      tail[i] = c + i < n ? x[c + i] : 0.f;
    return _mm256_loadu_ps(tail);
  };
  __m256 vmax = _mm256_setzero_ps();
  int bad = 0;
  for (int64_t c = 0; c < n; c += 8) {
    const __m256 a = _mm256_and_ps(load(c), absMask);
    bad |= _mm256_movemask_ps(_mm256_cmp_ps(a, fmax, _CMP_NLE_UQ)); // inf or NaN
    vmax = _mm256_max_ps(vmax, a);
  }
  float m8[8];
  _mm256_storeu_ps(m8, vmax);
  float amax = 0.f;
  for (float v : m8)
    amax = v > amax ? v : amax;
  const float s = amax / 127.f;
  const float inv = amax > 0.f ? 127.f / amax : 0.f;
  int32_t sum = 0;
  if (!bad) {
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i vsum = _mm256_setzero_si256();
    for (int64_t c = 0; c < n; c += 8) {
      const __m256i qi = _mm256_cvtps_epi32(_mm256_mul_ps(load(c), vinv));
      vsum = _mm256_add_epi32(vsum, qi);
      // |q| <= 127: the saturating packs keep every value; lanes 0-3 and 4-7 end up in the low
      // 4 bytes of each 128-bit half.
      const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(qi, qi), _mm256_setzero_si256());
      int32_t lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b)),
              hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
      int8_t bytes[8];
      __builtin_memcpy(bytes, &lo, 4);
      __builtin_memcpy(bytes + 4, &hi, 4);
      for (int i = 0; i < 8 && c + i < n; ++i)
        q[c + i] = bytes[i];
    }
    int32_t v[8];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(v), vsum);
    for (int32_t e : v)
      sum += e;
  }
  const float nan = __builtin_nanf("");
  *scale = bad ? nan : s;
  *sumq = sum;
  *sumf = bad ? nan : s * float(sum);
}

} // namespace

void prepareAvx2Int8Rows(const ActLayout& A, const float* x, int64_t k, int64_t r0, int64_t r1,
                         uint8_t* buf) {
  for (int64_t s = r0; s < r1; ++s) {
    const float* xr = x + s * k;
    int8_t* q = reinterpret_cast<int8_t*>(buf + size_t(s) * A.rowBytes);
    for (int64_t b = 0; b < A.blocks; ++b) {
      const int64_t c0 = b * A.blockSize, c1 = c0 + A.blockSize < k ? c0 + A.blockSize : k;
      const size_t at = size_t(s * A.blocks + b);
      quantizeBlock(xr + c0, c1 > c0 ? c1 - c0 : 0, q + c0,
                    reinterpret_cast<float*>(buf + A.scaleOff) + at,
                    reinterpret_cast<float*>(buf + A.sumfOff) + at,
                    reinterpret_cast<int32_t*>(buf + A.sumqOff) + at);
    }
  }
}

void matmulAvx2Int(const Job& j) {
  const int64_t p0 = j.n0 / 16, p1 = (j.n1 + 15) / 16;
  const bool asym = j.w.asym;
  switch (j.w.fmt) {
  case WeightFormat::Int8:
    return int8Panels(j, p0, p1);
  case WeightFormat::Int4G32Sym:
  case WeightFormat::Int4G32Asym:
    return asym ? int4Panels<32, true>(j, p0, p1) : int4Panels<32, false>(j, p0, p1);
  default: // group 128
    return asym ? int4Panels<128, true>(j, p0, p1) : int4Panels<128, false>(j, p0, p1);
  }
}

} // namespace kt::cpu::quant::detail
