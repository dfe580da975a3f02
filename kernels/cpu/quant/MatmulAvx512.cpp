// AVX-512 kernels (F + BW + VL + BF16 + VNNI). Compiled with those -m flags; only called after
// Dispatch.cpp verified CPU and OS support. No std:: templates or inline functions with external
// linkage here (see Layout.h): everything is in an anonymous namespace.
//
// Each kernel reads a 64-byte line of a 16-row panel with one load and feeds it to 16 output lanes:
//   f32  : FMA with a broadcast x[k]                    16 MACs / instruction / token
//   bf16 : VDPBF16PS with a broadcast bf16 pair         32
//   int8 : VPDPBUSD (u8 weights q+128, s8 activations)  64, minus 128 * sum(q_x) at the end
//   int4 : 2 x VPDPBUSD per line (low, high nibbles)    64; then per group
//          acc += d * s_x * isum + min * s_x * sum(q_x)
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
inline int64_t imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}

struct Out {
  float* y;
  int64_t n, n0, n1;
};

// Stores 16 outputs of rows [r0, r0+16) for token s, masked to [n0, n1).
inline void storeRows(const Out& o, int64_t s, int64_t r0, __m512 v) {
  float* dst = o.y + s * o.n + r0;
  if (r0 >= o.n0 && r0 + 16 <= o.n1) {
    _mm512_storeu_ps(dst, v);
    return;
  }
  const int64_t lo = imax(o.n0 - r0, 0), hi = imin(o.n1 - r0, 16);
  if (lo >= hi)
    return;
  const __mmask16 m = __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  _mm512_mask_storeu_ps(dst, m, v); // masked-off lanes never touch memory
}

inline __m512i bcast32(const void* p) {
  int v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline const uint8_t* actRow(const Job& j, int64_t s) {
  return j.act + size_t(s) * j.a.rowBytes;
}
inline float actScale(const Job& j, int64_t s, int64_t b) {
  return reinterpret_cast<const float*>(j.act + j.a.scaleOff)[s * j.a.blocks + b];
}
inline float actSumF(const Job& j, int64_t s, int64_t b) {
  return reinterpret_cast<const float*>(j.act + j.a.sumfOff)[s * j.a.blocks + b];
}
inline int32_t actSumQ(const Job& j, int64_t s, int64_t b) {
  return reinterpret_cast<const int32_t*>(j.act + j.a.sumqOff)[s * j.a.blocks + b];
}

template <int U> inline __m512 sumChains(const __m512* a) {
  __m512 s = a[0];
  KT_UNROLL
  for (int u = 1; u < U; ++u)
    s = _mm512_add_ps(s, a[u]);
  return s;
}
template <int U> inline __m512i sumChainsI(const __m512i* a) {
  __m512i s = a[0];
  KT_UNROLL
  for (int u = 1; u < U; ++u)
    s = _mm512_add_epi32(s, a[u]);
  return s;
}

// Software prefetch distance for the streaming GEMV (bytes ahead of the line being consumed).
#ifndef KT_QUANT_PREFETCH
#define KT_QUANT_PREFETCH 4096
#endif
constexpr int kPrefetch = KT_QUANT_PREFETCH; // 0: rely on the hardware prefetchers alone
inline void prefetchAhead(const void* p) {
  if constexpr (kPrefetch > 0)
    _mm_prefetch(static_cast<const char*>(p) + kPrefetch, _MM_HINT_T0);
}

// ==== GEMV: t <= 4 tokens, 1 panel at a time, 4-8 accumulator chains per token ====

template <int T> void gemvF32(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  constexpr int U = T <= 2 ? 8 : 4; // independent chains per token (latency hiding)
  const int64_t kp = j.w.kp;
  const float* x[T];
  KT_UNROLL
  for (int s = 0; s < T; ++s)
    x[s] = reinterpret_cast<const float*>(actRow(j, s));
  for (int64_t p = p0; p < p1; ++p) {
    const float* w = reinterpret_cast<const float*>(panelPtr(j.w, j.packed, p));
    __m512 acc[T][U];
    KT_UNROLL
    for (int s = 0; s < T; ++s) {
      KT_UNROLL
      for (int u = 0; u < U; ++u)
        acc[s][u] = _mm512_setzero_ps();
    }
    for (int64_t c = 0; c < kp; c += U) {
      KT_UNROLL
      for (int u = 0; u < U; ++u) {
        prefetchAhead(w + (c + u) * 16);
        const __m512 wv = _mm512_loadu_ps(w + (c + u) * 16);
        KT_UNROLL
        for (int s = 0; s < T; ++s)
          acc[s][u] = _mm512_fmadd_ps(wv, _mm512_set1_ps(x[s][c + u]), acc[s][u]);
      }
    }
    KT_UNROLL
    for (int s = 0; s < T; ++s)
      storeRows(o, s, p * 16, sumChains<U>(acc[s]));
  }
}

// The dot-product GEMVs (bf16: vdpbf16ps, int8: vpdpbusd) share one loop: 64-byte lines of a
// 16-row panel, each against 4 broadcast activation bytes per row, U independent chains per token.
struct Bf16Dot {
  using Acc = __m512;
  static constexpr int kBytesPerElement = 2;
  static Acc zero() { return _mm512_setzero_ps(); }
  static __m512i bcast(const uint8_t* x) { return bcast32(x); } // 2 columns of one token
  static Acc dot(Acc acc, __m512i w, __m512i x) {
    return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
  }
  template <int U> static __m512 finish(const Job&, const uint8_t*, int64_t, const Acc* acc) {
    return sumChains<U>(acc);
  }
};

// y = w_scale * x_scale * (sum (q_w + 128) q_x - 128 * sum q_x)
inline __m512 int8Finish(const Job& j, const uint8_t* panel, int64_t s, __m512i isum) {
  const __m512 ws = _mm512_loadu_ps(reinterpret_cast<const float*>(panel + j.w.scaleOff));
  isum = _mm512_sub_epi32(isum, _mm512_set1_epi32(128 * actSumQ(j, s, 0)));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(isum),
                       _mm512_mul_ps(ws, _mm512_set1_ps(actScale(j, s, 0))));
}

struct Int8Dot {
  using Acc = __m512i;
  static constexpr int kBytesPerElement = 1;
  static Acc zero() { return _mm512_setzero_si512(); }
  static __m512i bcast(const uint8_t* x) { return bcast32(x); } // 4 columns of one token
  static Acc dot(Acc acc, __m512i w, __m512i x) { return _mm512_dpbusd_epi32(acc, w, x); }
  template <int U>
  static __m512 finish(const Job& j, const uint8_t* panel, int64_t s, const Acc* acc) {
    return int8Finish(j, panel, s, sumChainsI<U>(acc));
  }
};

// One token: NP panels side by side, 2 chains each. A single 16-row panel is one sequential
// stream; from memory, one core then reached only ~65% (int4:g32) to ~80% (bf16) of its plain
// read rate on the dev VM's EPYC, even with the software prefetch, while the same kernel on a
// matrix hot in L2 runs 3-4x faster than memory: the core waited on one stream. Four streams at
// once (four panels' lines interleaved) read at the plain rate: int4:g32 17 -> 26 GB/s, bf16
// 21 -> 29-35 GB/s, int8 26 -> 30 GB/s per core (1408x2048 expert matrices, 200 copies).
constexpr int kGemvPanels = 4;

template <class D, int NP> void gemvDotPanels(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  constexpr int U = 2;
  const int64_t lines = j.w.kp / (4 / D::kBytesPerElement); // a multiple of 16
  const uint8_t* x = actRow(j, 0);
  for (int64_t p = p0; p + NP <= p1; p += NP) {
    const uint8_t* w[NP];
    typename D::Acc acc[NP][U];
    KT_UNROLL
    for (int q = 0; q < NP; ++q) {
      w[q] = panelPtr(j.w, j.packed, p + q);
      KT_UNROLL
      for (int u = 0; u < U; ++u)
        acc[q][u] = D::zero();
    }
    for (int64_t l = 0; l < lines; l += U) {
      KT_UNROLL
      for (int u = 0; u < U; ++u) {
        const __m512i xv = bcast32(x + (l + u) * 4);
        KT_UNROLL
        for (int q = 0; q < NP; ++q) {
          prefetchAhead(w[q] + (l + u) * 64);
          acc[q][u] = D::dot(acc[q][u], _mm512_loadu_si512(w[q] + (l + u) * 64), xv);
        }
      }
    }
    KT_UNROLL
    for (int q = 0; q < NP; ++q)
      storeRows(o, 0, (p + q) * 16, D::template finish<U>(j, w[q], 0, acc[q]));
  }
}

template <class D> void gemvDotOneToken(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  const int64_t pm = p0 + (p1 - p0) / kGemvPanels * kGemvPanels;
  gemvDotPanels<D, kGemvPanels>(j, o, p0, pm);
  gemvDotPanels<D, 1>(j, o, pm, p1);
}

template <class D, int T> void gemvDot(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  if constexpr (T == 1) { // several panels at once (the multi-token body is not instantiated)
    gemvDotOneToken<D>(j, o, p0, p1);
  } else {
    constexpr int U = T <= 2 ? 8 : 4; // independent chains per token (latency hiding)
    // A 64-byte line holds 16 rows x 4 bytes: 2 bf16 or 4 int8 columns. Multiple of 16.
    const int64_t lines = j.w.kp / (4 / D::kBytesPerElement);
    const uint8_t* x[T];
    KT_UNROLL
    for (int s = 0; s < T; ++s)
      x[s] = actRow(j, s);
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* w = panelPtr(j.w, j.packed, p);
      typename D::Acc acc[T][U];
      KT_UNROLL
      for (int s = 0; s < T; ++s) {
        KT_UNROLL
        for (int u = 0; u < U; ++u)
          acc[s][u] = D::zero();
      }
      for (int64_t l = 0; l < lines; l += U) {
        KT_UNROLL
        for (int u = 0; u < U; ++u) {
          prefetchAhead(w + (l + u) * 64);
          const __m512i wv = _mm512_loadu_si512(w + (l + u) * 64);
          KT_UNROLL
          for (int s = 0; s < T; ++s)
            acc[s][u] = D::dot(acc[s][u], wv, bcast32(x[s] + (l + u) * 4));
        }
      }
      KT_UNROLL
      for (int s = 0; s < T; ++s)
        storeRows(o, s, p * 16, D::template finish<U>(j, w, s, acc[s]));
    }
  }
}

// int4 unpacking: low nibbles = v & 0x0f; high nibbles are used in place as v & 0xf0 = 16 * u (one
// AND instead of shift + AND), so the high-nibble sums come out 16x too large. The group epilogue
// combines 16 * sum_lo + sum_hi16 (exact in int32 and in f32: |value| < 2^22) and folds the 1/16
// into the scale (exact: a power of two).
// Per-group f32 update: acc += (d/16) * s_x * isum16 + min * (s_x * sum q_x); sym: min = -8d.
template <bool ASYM>
inline void int4GroupScales(const uint8_t* panel, const Layout& L, int64_t g, __m512* d16,
                            __m512* m) {
  const __m512 d = _mm512_cvtph_ps(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + L.scaleOff + size_t(g) * 32)));
  *d16 = _mm512_mul_ps(d, _mm512_set1_ps(1.f / 16.f));
  if (ASYM)
    *m = _mm512_cvtph_ps(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + L.minOff + size_t(g) * 32)));
  else
    *m = _mm512_mul_ps(d, _mm512_set1_ps(-8.f));
}

inline __m512 int4Update(const Job& j, int64_t s, int64_t g, __m512i lo, __m512i hi16, __m512 d16,
                         __m512 m, __m512 acc) {
  const __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(lo, 4), hi16));
  acc = _mm512_fmadd_ps(v, _mm512_mul_ps(d16, _mm512_set1_ps(actScale(j, s, g))), acc);
  return _mm512_fmadd_ps(m, _mm512_set1_ps(actSumF(j, s, g)), acc);
}

// The group scales (and mins) sit after the panel's weight lines: a second stream that starts
// afresh in every panel, where the hardware prefetcher would only catch on after a few demand
// misses. Prefetch that region of the next panel one panel ahead (of the first panel, right away).
inline void prefetchScales(const Layout& L, const uint8_t* blob, int64_t p, int64_t p1) {
  if (p >= p1)
    return;
  const uint8_t* base = panelPtr(L, blob, p);
  for (size_t off = L.scaleOff; off < L.panelBytes; off += 64)
    _mm_prefetch(reinterpret_cast<const char*>(base + off), _MM_HINT_T0);
}

// One token, NP panels side by side (see kGemvPanels): per group, LG lines of each panel, low and
// high chains per panel (2-fold by line index when few panels are in flight).
template <int NP, int G, bool ASYM>
void gemvInt4Panels(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  constexpr int LG = G / 8;
  constexpr int C = NP >= 4 ? 1 : 2;
  const int64_t groups = j.w.groups;
  const __m512i low = _mm512_set1_epi8(0x0f), high = _mm512_set1_epi8(char(0xf0));
  const uint8_t* x = actRow(j, 0);
  for (int64_t p = p0; p + NP <= p1; p += NP) {
    const uint8_t* panel[NP];
    __m512 facc[NP];
    KT_UNROLL
    for (int q = 0; q < NP; ++q) {
      panel[q] = panelPtr(j.w, j.packed, p + q);
      prefetchScales(j.w, j.packed, p + NP + q, p1);
      facc[q] = _mm512_setzero_ps();
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m512i lo[NP][C], hi[NP][C];
      KT_UNROLL
      for (int q = 0; q < NP; ++q) {
        KT_UNROLL
        for (int c = 0; c < C; ++c)
          lo[q][c] = hi[q][c] = _mm512_setzero_si512();
      }
      KT_UNROLL
      for (int l = 0; l < LG; ++l) {
        const uint8_t* xk = x + g * G + l * 8;
        const __m512i xl = bcast32(xk), xh = bcast32(xk + 4);
        KT_UNROLL
        for (int q = 0; q < NP; ++q) {
          const uint8_t* w = panel[q] + size_t(g) * G * 8 + l * 64;
          prefetchAhead(w);
          const __m512i v = _mm512_loadu_si512(w);
          lo[q][l % C] = _mm512_dpbusd_epi32(lo[q][l % C], _mm512_and_si512(v, low), xl);
          hi[q][l % C] = _mm512_dpbusd_epi32(hi[q][l % C], _mm512_and_si512(v, high), xh);
        }
      }
      KT_UNROLL
      for (int q = 0; q < NP; ++q) {
        KT_UNROLL
        for (int c = 1; c < C; ++c) {
          lo[q][0] = _mm512_add_epi32(lo[q][0], lo[q][c]);
          hi[q][0] = _mm512_add_epi32(hi[q][0], hi[q][c]);
        }
        __m512 d16, m;
        int4GroupScales<ASYM>(panel[q], j.w, g, &d16, &m);
        facc[q] = int4Update(j, 0, g, lo[q][0], hi[q][0], d16, m, facc[q]);
      }
    }
    KT_UNROLL
    for (int q = 0; q < NP; ++q)
      storeRows(o, 0, (p + q) * 16, facc[q]);
  }
}

template <int T, int G, bool ASYM>
void gemvInt4(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  if constexpr (T == 1) { // several panels at once (the multi-token body is not instantiated)
    for (int q = 0; q < kGemvPanels; ++q)
      prefetchScales(j.w, j.packed, p0 + q, p1);
    const int64_t pm = p0 + (p1 - p0) / kGemvPanels * kGemvPanels;
    gemvInt4Panels<kGemvPanels, G, ASYM>(j, o, p0, pm);
    gemvInt4Panels<1, G, ASYM>(j, o, pm, p1);
  } else {
    constexpr int LG = G / 8; // lines per group
    const int64_t groups = j.w.groups;
    const __m512i low = _mm512_set1_epi8(0x0f), high = _mm512_set1_epi8(char(0xf0));
    const uint8_t* x[T];
    KT_UNROLL
    for (int s = 0; s < T; ++s)
      x[s] = actRow(j, s);
    prefetchScales(j.w, j.packed, p0, p1);
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* panel = panelPtr(j.w, j.packed, p);
      prefetchScales(j.w, j.packed, p + 1, p1);
      __m512 facc[T];
      KT_UNROLL
      for (int s = 0; s < T; ++s)
        facc[s] = _mm512_setzero_ps();
      for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* w = panel + size_t(g) * G * 8;
        // Low and high chains per token, C-fold by line index so more VPDPBUSD are in flight
        // (for one token, C = 4 measured ~10% faster than C = 1 before gemvInt4Panels replaced it;
        // a second f32 accumulator per token for odd groups measured ~10% slower).
        constexpr int C = 2;
        __m512i lo[T][C], hi[T][C];
        KT_UNROLL
        for (int s = 0; s < T; ++s) {
          KT_UNROLL
          for (int c = 0; c < C; ++c)
            lo[s][c] = hi[s][c] = _mm512_setzero_si512();
        }
        KT_UNROLL
        for (int l = 0; l < LG; ++l) {
          prefetchAhead(w + l * 64);
          const __m512i v = _mm512_loadu_si512(w + l * 64);
          const __m512i vl = _mm512_and_si512(v, low), vh = _mm512_and_si512(v, high);
          KT_UNROLL
          for (int s = 0; s < T; ++s) {
            const uint8_t* xk = x[s] + g * G + l * 8;
            lo[s][l % C] = _mm512_dpbusd_epi32(lo[s][l % C], vl, bcast32(xk));
            hi[s][l % C] = _mm512_dpbusd_epi32(hi[s][l % C], vh, bcast32(xk + 4));
          }
        }
        KT_UNROLL
        for (int s = 0; s < T; ++s) {
          KT_UNROLL
          for (int c = 1; c < C; ++c) {
            lo[s][0] = _mm512_add_epi32(lo[s][0], lo[s][c]);
            hi[s][0] = _mm512_add_epi32(hi[s][0], hi[s][c]);
          }
        }
        __m512 d16, m;
        int4GroupScales<ASYM>(panel, j.w, g, &d16, &m);
        KT_UNROLL
        for (int s = 0; s < T; ++s)
          facc[s] = int4Update(j, s, g, lo[s][0], hi[s][0], d16, m, facc[s]);
      }
      KT_UNROLL
      for (int s = 0; s < T; ++s)
        storeRows(o, s, p * 16, facc[s]);
    }
  }
}

// ==== GEMM: register tiles of NP panels x 8 tokens; weights stay in L1/L2 across token blocks ====
constexpr int TT = 8;

// f32 weights through the same tile as bf16 and int8: a 64-byte line of a panel holds one f32
// column of its 16 rows, against that column's activation broadcast (4 bytes, as the others).
struct F32Dot {
  using Acc = __m512;
  static constexpr int kBytesPerElement = 4;
  static Acc zero() { return _mm512_setzero_ps(); }
  // A float broadcast (vbroadcastss): the FMA reads it in the FP domain, as it did before the
  // three tiles shared one loop.
  static __m512i bcast(const uint8_t* x) {
    float v;
    __builtin_memcpy(&v, x, 4);
    return _mm512_castps_si512(_mm512_set1_ps(v));
  }
  static Acc dot(Acc acc, __m512i w, __m512i x) {
    return _mm512_fmadd_ps(_mm512_castsi512_ps(w), _mm512_castsi512_ps(x), acc);
  }
  template <int U> static __m512 finish(const Job&, const uint8_t*, int64_t, const Acc* acc) {
    return sumChains<U>(acc);
  }
};

// NP panels x TT tokens of products in f32 (F32Dot), bf16 (Bf16Dot) or int8 (Int8Dot): each
// 64-byte weight line is loaded once and used by all TT tokens' broadcast activations.
template <class D, int NP> void tileDot(const Job& j, const Out& o, int64_t p, int64_t s0) {
  const int64_t lines = j.w.kp / (4 / D::kBytesPerElement);
  const uint8_t* w[NP];
  KT_UNROLL
  for (int q = 0; q < NP; ++q)
    w[q] = panelPtr(j.w, j.packed, p + q);
  const uint8_t* x = actRow(j, s0);
  const size_t xs = j.a.rowBytes;
  typename D::Acc acc[TT][NP];
  KT_UNROLL
  for (int s = 0; s < TT; ++s) {
    KT_UNROLL
    for (int q = 0; q < NP; ++q)
      acc[s][q] = D::zero();
  }
  for (int64_t l = 0; l < lines; ++l) {
    __m512i wv[NP];
    KT_UNROLL
    for (int q = 0; q < NP; ++q)
      wv[q] = _mm512_loadu_si512(w[q] + l * 64);
    KT_UNROLL
    for (int s = 0; s < TT; ++s) {
      const __m512i b = D::bcast(x + s * xs + l * 4);
      KT_UNROLL
      for (int q = 0; q < NP; ++q)
        acc[s][q] = D::dot(acc[s][q], wv[q], b);
    }
  }
  KT_UNROLL
  for (int s = 0; s < TT; ++s) {
    KT_UNROLL
    for (int q = 0; q < NP; ++q)
      if (s0 + s < j.a.t)
        storeRows(o, s0 + s, (p + q) * 16, D::template finish<1>(j, w[q], s0 + s, &acc[s][q]));
  }
}

// int4: one panel x 8 tokens, a low and a high chain per token (16 VPDPBUSD in flight).
// The GEMM tile shifts each line's high nibbles down once (shared by the 8 tokens) so both
// nibbles feed ONE accumulator per token: per (token, group) that saves the combine of two sums
// (shift + add) and frees 8 registers, for one shift per line. The integer sums are the same, so
// the result is bit-identical to the two-chain form (the scale is d instead of d/16).
template <int G, bool ASYM> void tileInt4(const Job& j, const Out& o, int64_t p, int64_t s0) {
  constexpr int LG = G / 8;
  const int64_t groups = j.w.groups;
  const __m512i low = _mm512_set1_epi8(0x0f);
  const uint8_t* panel = panelPtr(j.w, j.packed, p);
  const uint8_t* x = actRow(j, s0);
  const size_t xs = j.a.rowBytes;
  __m512 facc[TT];
  KT_UNROLL
  for (int s = 0; s < TT; ++s)
    facc[s] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* w = panel + size_t(g) * G * 8;
    __m512i acc[TT];
    KT_UNROLL
    for (int s = 0; s < TT; ++s)
      acc[s] = _mm512_setzero_si512();
    for (int l = 0; l < LG; ++l) {
      const __m512i v = _mm512_loadu_si512(w + l * 64);
      const __m512i vl = _mm512_and_si512(v, low);
      const __m512i vh = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      KT_UNROLL
      for (int s = 0; s < TT; ++s) {
        const uint8_t* xk = x + s * xs + g * G + l * 8;
        acc[s] = _mm512_dpbusd_epi32(acc[s], vl, bcast32(xk));
        acc[s] = _mm512_dpbusd_epi32(acc[s], vh, bcast32(xk + 4));
      }
    }
    __m512 d16, m;
    int4GroupScales<ASYM>(panel, j.w, g, &d16, &m);
    const __m512 d = _mm512_mul_ps(d16, _mm512_set1_ps(16.f)); // exact: a power of two
    KT_UNROLL
    for (int s = 0; s < TT; ++s) {
      const __m512 sum = _mm512_cvtepi32_ps(acc[s]);
      facc[s] =
          _mm512_fmadd_ps(sum, _mm512_mul_ps(d, _mm512_set1_ps(actScale(j, s0 + s, g))), facc[s]);
      facc[s] = _mm512_fmadd_ps(m, _mm512_set1_ps(actSumF(j, s0 + s, g)), facc[s]);
    }
  }
  KT_UNROLL
  for (int s = 0; s < TT; ++s)
    if (s0 + s < j.a.t)
      storeRows(o, s0 + s, p * 16, facc[s]);
}

// Loop order: token super-blocks of activations that fit in L2 (tokenSuperBlock), then panel
// pairs, then 8-token register tiles. Inside a super-block each panel pair (<= 2 x 16 rows x kp)
// is read once and reused from L1/L2 by every 8-token tile, while the super-block's activations
// stay in L2 for all panels. Without the super-blocks, 512 tokens x 2048 columns of int8
// activations (1 MiB) spilled out of L2 and were re-read from L3 for every panel pair (t=512 ran
// ~40% slower than t=128). Weights are read ceil(t / super-block) times; those passes hit L3 for
// expert-sized matrices and are small next to the GEMM's arithmetic otherwise.
template <void (*Tile2)(const Job&, const Out&, int64_t, int64_t),
          void (*Tile1)(const Job&, const Out&, int64_t, int64_t)>
void gemmPairs(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  const int64_t tb = tokenSuperBlock(j.a.rowBytes, TT);
  for (int64_t t0 = 0; t0 < j.a.t; t0 += tb)
    for (int64_t p = p0; p < p1; p += 2)
      for (int64_t s0 = t0; s0 < imin(j.a.t, t0 + tb); s0 += TT) {
        if (p + 1 < p1)
          Tile2(j, o, p, s0);
        else
          Tile1(j, o, p, s0);
      }
}

template <int G, bool ASYM> void gemmInt4(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  const int64_t tb = tokenSuperBlock(j.a.rowBytes, TT);
  for (int64_t t0 = 0; t0 < j.a.t; t0 += tb)
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t s0 = t0; s0 < imin(j.a.t, t0 + tb); s0 += TT)
        tileInt4<G, ASYM>(j, o, p, s0);
}

template <int T> void gemvAll(const Job& j, const Out& o, int64_t p0, int64_t p1) {
  switch (j.w.fmt) {
  case WeightFormat::F32:
    return gemvF32<T>(j, o, p0, p1);
  case WeightFormat::BF16:
    return gemvDot<Bf16Dot, T>(j, o, p0, p1);
  case WeightFormat::Int8:
    return gemvDot<Int8Dot, T>(j, o, p0, p1);
  case WeightFormat::Int4G32Sym:
    return gemvInt4<T, 32, false>(j, o, p0, p1);
  case WeightFormat::Int4G32Asym:
    return gemvInt4<T, 32, true>(j, o, p0, p1);
  case WeightFormat::Int4G128Sym:
    return gemvInt4<T, 128, false>(j, o, p0, p1);
  case WeightFormat::Int4G128Asym:
    return gemvInt4<T, 128, true>(j, o, p0, p1);
  }
}

// ---- activation preparation (byte-identical to prepareActivationsRef) ----

inline __mmask16 tailMask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
}

void prepareBf16(const ActLayout& A, const float* x, int64_t k, int64_t r0, int64_t r1,
                 uint8_t* buf) {
  for (int64_t s = r0; s < r1; ++s) {
    const float* xr = x + s * k;
    uint16_t* o = reinterpret_cast<uint16_t*>(buf + size_t(s) * A.rowBytes);
    for (int64_t c = 0; c < k; c += 16) {
      const __mmask16 m = tailMask(k - c);
      const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, xr + c));
      _mm256_mask_storeu_epi16(o + c, m, (__m256i)b);
    }
  }
}

void prepareInt8(const ActLayout& A, const float* x, int64_t k, int64_t r0, int64_t r1,
                 uint8_t* buf) {
  const __m512 fmax = _mm512_set1_ps(3.402823466e38f);
  for (int64_t s = r0; s < r1; ++s) {
    const float* xr = x + s * k;
    int8_t* q = reinterpret_cast<int8_t*>(buf + size_t(s) * A.rowBytes);
    float* scale = reinterpret_cast<float*>(buf + A.scaleOff) + s * A.blocks;
    float* sumf = reinterpret_cast<float*>(buf + A.sumfOff) + s * A.blocks;
    int32_t* sumq = reinterpret_cast<int32_t*>(buf + A.sumqOff) + s * A.blocks;
    for (int64_t b = 0; b < A.blocks; ++b) {
      const int64_t c0 = b * A.blockSize, c1 = imin(c0 + A.blockSize, k);
      __m512 vmax = _mm512_setzero_ps();
      __mmask16 bad = 0;
      for (int64_t c = c0; c < c1; c += 16) {
        const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(tailMask(c1 - c), xr + c));
        bad |= _mm512_cmp_ps_mask(a, fmax, _CMP_NLE_UQ); // inf or NaN
        vmax = _mm512_max_ps(vmax, a);
      }
      const float amax = c1 > c0 ? _mm512_reduce_max_ps(vmax) : 0.f;
      const float sc = amax / 127.f;
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      int32_t sum = 0;
      if (!bad) {
        const __m512 vinv = _mm512_set1_ps(inv);
        __m512i vsum = _mm512_setzero_si512();
        for (int64_t c = c0; c < c1; c += 16) {
          const __mmask16 m = tailMask(c1 - c);
          const __m512i qi =
              _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + c), vinv));
          vsum = _mm512_add_epi32(vsum, qi);
          _mm_mask_storeu_epi8(q + c, m, _mm512_cvtepi32_epi8(qi));
        }
        sum = _mm512_reduce_add_epi32(vsum);
      }
      const float nan = __builtin_nanf("");
      scale[b] = bad ? nan : sc;
      sumq[b] = sum;
      sumf[b] = bad ? nan : sc * float(sum);
    }
  }
}

} // namespace

void matmulAvx512(const Job& j) {
  const Out o{j.y, j.w.n, j.n0, j.n1};
  const int64_t p0 = j.n0 / 16, p1 = (j.n1 + 15) / 16;
  const int64_t t = j.a.t;
  if (t <= 4) {
    switch (t) {
    case 1:
      return gemvAll<1>(j, o, p0, p1);
    case 2:
      return gemvAll<2>(j, o, p0, p1);
    case 3:
      return gemvAll<3>(j, o, p0, p1);
    default:
      return gemvAll<4>(j, o, p0, p1);
    }
  }
  switch (j.w.fmt) {
  case WeightFormat::F32:
    return gemmPairs<tileDot<F32Dot, 2>, tileDot<F32Dot, 1>>(j, o, p0, p1);
  case WeightFormat::BF16:
    return gemmPairs<tileDot<Bf16Dot, 2>, tileDot<Bf16Dot, 1>>(j, o, p0, p1);
  case WeightFormat::Int8:
    return gemmPairs<tileDot<Int8Dot, 2>, tileDot<Int8Dot, 1>>(j, o, p0, p1);
  case WeightFormat::Int4G32Sym:
    return gemmInt4<32, false>(j, o, p0, p1);
  case WeightFormat::Int4G32Asym:
    return gemmInt4<32, true>(j, o, p0, p1);
  case WeightFormat::Int4G128Sym:
    return gemmInt4<128, false>(j, o, p0, p1);
  case WeightFormat::Int4G128Asym:
    return gemmInt4<128, true>(j, o, p0, p1);
  }
}

void prepareAvx512Rows(const ActLayout& a, const float* x, int64_t k, int64_t r0, int64_t r1,
                       uint8_t* buf) {
  if (a.mode == ActMode::Bf16)
    prepareBf16(a, x, k, r0, r1, buf);
  else
    prepareInt8(a, x, k, r0, r1, buf);
}

} // namespace kt::cpu::quant::detail
