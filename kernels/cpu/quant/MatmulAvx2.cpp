// AVX2 + FMA + F16C kernels. Compiled with those -m flags; called only after Dispatch.cpp verified
// support. No std:: templates or externally visible inline functions here (see Layout.h).
//
// This file: f32 and bf16 weights with exact f32 activations (ActMode::F32), so results match
// matmulRef to f32 rounding; int8 and int4 weights take int8 activations (MatmulAvx2Int.cpp).
// * GEMV (t <= 2; bf16): each 64-byte line is unpacked to f32 in registers and fed to FMAs for
//   both tokens at once, with 4 (t=1) / 2 (t=2) accumulator chains per 8 rows.
// * Otherwise (and f32 weights, which need no unpacking): per 16-row panel, dequantize a
//   256-column chunk to f32 [kc][16] in L1, then run an FMA micro-kernel of 16 rows x up to 4
//   tokens over it, so dequantization is amortized over every token.
// Both read each weight from memory once per call.
#include "kernels/cpu/quant/Kernels.h"

// GCC 12 reports its own _mm512_undefined_*() inside the intrinsic headers as maybe-uninitialized
// (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

// Register arrays (acc[T][4] ...) only stay in registers when their constant-trip loops are fully
// unrolled; GCC -O2 does not always do it on its own.
#define KT_UNROLL _Pragma("GCC unroll 16")

namespace kt::cpu::quant::detail {
namespace {

inline int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}

// Dequantizes columns [k0, k0+kc) of a panel to out[kc][16]; returns the f32 [kc][16] to use.
const float* dequantChunk(const Layout& L, const uint8_t* panel, int64_t k0, int64_t kc,
                          float* out) {
  switch (L.fmt) {
  case WeightFormat::F32:
    return reinterpret_cast<const float*>(panel) + k0 * 16;
  case WeightFormat::BF16: {
    const __m256i hiMask = _mm256_set1_epi32(int(0xffff0000u));
    for (int64_t c = 0; c < kc; c += 2) {
      const uint8_t* line = panel + size_t((k0 + c) / 2) * 64;
      KT_UNROLL
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 32 * h));
        _mm256_storeu_ps(out + c * 16 + 8 * h, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        _mm256_storeu_ps(out + (c + 1) * 16 + 8 * h,
                         _mm256_castsi256_ps(_mm256_and_si256(v, hiMask)));
      }
    }
    return out;
  }
  default: // int8/int4 weights never reach this file's kernels (matmulAvx2Int)
    return out;
  }
}

// acc[s][16] += sum_c B[c][0..16) * x[s][c] for TT tokens. With <= 2 tokens, two k-parity
// accumulator sets keep 4 FMA chains in flight so a single token is not latency bound.
template <int TT> void micro(const float* B, int64_t kc, const float* const* x, float* acc) {
  constexpr int U = TT <= 2 ? 2 : 1;
  __m256 a[TT][2 * U];
  KT_UNROLL
  for (int s = 0; s < TT; ++s) {
    a[s][0] = _mm256_loadu_ps(acc + s * 16);
    a[s][1] = _mm256_loadu_ps(acc + s * 16 + 8);
    for (int u = 2; u < 2 * U; ++u)
      a[s][u] = _mm256_setzero_ps();
  }
  for (int64_t c = 0; c < kc; c += U) {
    KT_UNROLL
    for (int u = 0; u < U; ++u) {
      const __m256 w0 = _mm256_loadu_ps(B + (c + u) * 16),
                   w1 = _mm256_loadu_ps(B + (c + u) * 16 + 8);
      KT_UNROLL
      for (int s = 0; s < TT; ++s) {
        const __m256 xb = _mm256_broadcast_ss(x[s] + c + u);
        a[s][2 * u] = _mm256_fmadd_ps(w0, xb, a[s][2 * u]);
        a[s][2 * u + 1] = _mm256_fmadd_ps(w1, xb, a[s][2 * u + 1]);
      }
    }
  }
  KT_UNROLL
  for (int s = 0; s < TT; ++s) {
    __m256 lo = a[s][0], hi = a[s][1];
    if constexpr (U == 2) {
      lo = _mm256_add_ps(lo, a[s][2]);
      hi = _mm256_add_ps(hi, a[s][3]);
    }
    _mm256_storeu_ps(acc + s * 16, lo);
    _mm256_storeu_ps(acc + s * 16 + 8, hi);
  }
}

// ---- direct GEMV ----

// Accumulator chains per (token, 8-row half): enough independent FMAs in flight for one token,
// within the 16 ymm registers for two.
template <int T> constexpr int chainsFor() {
  return T == 1 ? 4 : T == 2 ? 2 : 1;
}

template <int T, int P>
inline void fmaTokens(__m256 (&acc)[T][2][P], int h, int chain, __m256 w, const float* const* x,
                      int64_t k) {
  KT_UNROLL
  for (int s = 0; s < T; ++s)
    acc[s][h][chain] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x[s] + k), acc[s][h][chain]);
}

template <int T, int P> inline __m256 sumChains(const __m256 (&a)[P]) {
  __m256 r = a[0];
  KT_UNROLL
  for (int c = 1; c < P; ++c)
    r = _mm256_add_ps(r, a[c]);
  return r;
}

inline void storeHalf(const Job& j, int64_t s, int64_t r0, __m256 v) {
  if (r0 >= j.n0 && r0 + 8 <= j.n1) {
    _mm256_storeu_ps(j.y + s * j.w.n + r0, v);
    return;
  }
  float tmp[8];
  _mm256_storeu_ps(tmp, v);
  for (int i = 0; i < 8; ++i)
    if (r0 + i >= j.n0 && r0 + i < j.n1)
      j.y[s * j.w.n + r0 + i] = tmp[i];
}

template <int T> void gemvBf16(const Job& j, const float* const* x, int64_t p0, int64_t p1) {
  constexpr int P = chainsFor<T>();
  const __m256i hiMask = _mm256_set1_epi32(int(0xffff0000u));
  const int64_t lines = j.w.kp / 2;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = panelPtr(j.w, j.packed, p);
    __m256 acc[T][2][P];
    KT_UNROLL
    for (int s = 0; s < T; ++s) {
      KT_UNROLL
      for (int c = 0; c < 2 * P; ++c)
        acc[s][c / P][c % P] = _mm256_setzero_ps();
    }
    constexpr int LS = P > 2 ? P / 2 : 1; // lines per step: chain = k offset within the step
    for (int64_t l = 0; l < lines; l += LS) {
      KT_UNROLL
      for (int u = 0; u < LS; ++u) {
        const uint8_t* line = panel + size_t(l + u) * 64;
        KT_UNROLL
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 32 * h));
          const int64_t k = 2 * (l + u);
          fmaTokens<T, P>(acc, h, (2 * u) % P, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), x, k);
          fmaTokens<T, P>(acc, h, (2 * u + 1) % P, _mm256_castsi256_ps(_mm256_and_si256(v, hiMask)),
                          x, k + 1);
        }
      }
    }
    KT_UNROLL
    for (int s = 0; s < T; ++s) {
      KT_UNROLL
      for (int h = 0; h < 2; ++h)
        storeHalf(j, s, p * 16 + 8 * h, sumChains<T, P>(acc[s][h]));
    }
  }
}

template <int T> void gemvDirect(const Job& j, int64_t p0, int64_t p1) {
  const float* x[T];
  for (int s = 0; s < T; ++s)
    x[s] = reinterpret_cast<const float*>(j.act + size_t(s) * j.a.rowBytes);
  gemvBf16<T>(j, x, p0, p1);
}

} // namespace

void matmulAvx2(const Job& j, float* scratch) {
  if (j.a.mode == ActMode::Int8PerToken || j.a.mode == ActMode::Int8PerGroup)
    return matmulAvx2Int(j);
  const Layout& L = j.w;
  const int64_t t = j.a.t;
  float* buf = scratch;
  float* acc = scratch + kChunkK * 16;
  const int64_t p0 = j.n0 / 16, p1 = (j.n1 + 15) / 16;
  // Direct GEMV for 1-2 tokens; from 3 tokens on, dequantizing a chunk once for all tokens wins.
  if (t <= 2 && L.fmt == WeightFormat::BF16)
    return t == 1 ? gemvDirect<1>(j, p0, p1) : gemvDirect<2>(j, p0, p1);
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = panelPtr(L, j.packed, p);
    for (int64_t i = 0; i < t * 16; ++i)
      acc[i] = 0.f;
    for (int64_t k0 = 0; k0 < L.kp; k0 += kChunkK) {
      const int64_t kc = imin(kChunkK, L.kp - k0);
      const float* B = dequantChunk(L, panel, k0, kc, buf);
      for (int64_t s0 = 0; s0 < t; s0 += 4) {
        const float* x[4];
        for (int s = 0; s < 4 && s0 + s < t; ++s)
          x[s] = reinterpret_cast<const float*>(j.act + size_t(s0 + s) * j.a.rowBytes) + k0;
        switch (imin(4, t - s0)) {
        case 1:
          micro<1>(B, kc, x, acc + s0 * 16);
          break;
        case 2:
          micro<2>(B, kc, x, acc + s0 * 16);
          break;
        case 3:
          micro<3>(B, kc, x, acc + s0 * 16);
          break;
        default:
          micro<4>(B, kc, x, acc + s0 * 16);
          break;
        }
      }
    }
    for (int64_t s = 0; s < t; ++s)
      for (int i = 0; i < 16; ++i) {
        const int64_t r = p * 16 + i;
        if (r >= j.n0 && r < j.n1)
          j.y[s * L.n + r] = acc[s * 16 + i];
      }
  }
}

} // namespace kt::cpu::quant::detail
