// AVX-512 kernels of dx = dy · W (Kernels.h). Compiled with -mavx512f/bw/dq/vl; called only after
// CPUID says so (Kernels.cpp). Everything but the two entry points has internal linkage, so no
// AVX-512 copy of an inline function can be picked for a baseline caller (see quant/Layout.h).
// Packed weight rows come back to f32 through quant::dequantizeRows.
#include "kernels/cpu/grad/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
// GCC 12 reports its own _mm512_undefined_*() inside the intrinsic headers as (maybe-)uninitialized
// (GCC bug 105593), as in kernels/cpu/quant/MatmulAvx512.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace kt::cpu::grad::kernels::avx512 {

namespace {

__mmask16 tail(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u);
}

// c[0..MR) x [0..32) += a[0..MR) x [0..P) · b[0..P) x [0..32); columns past the masks untouched.
// The accumulators are named variables, not an array: GCC 12 keeps an array of __m512 in memory
// and stores all of it on every iteration, which made this loop store-bound (4x slower).
#define KT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
template <int MR>
void tile(int64_t P, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, __mmask16 m0, __mmask16 m1) {
#define KT_DECL(m) __m512 x##m = _mm512_setzero_ps(), y##m = _mm512_setzero_ps();
  KT_ROWS(KT_DECL)
#define KT_LOAD(m)                                                                                 \
  if constexpr (MR > m) {                                                                          \
    x##m = _mm512_maskz_loadu_ps(m0, c + m * ldc);                                                 \
    y##m = _mm512_maskz_loadu_ps(m1, c + m * ldc + 16);                                            \
  }
  KT_ROWS(KT_LOAD)
  for (int64_t p = 0; p < P; ++p) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + p * ldb);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, b + p * ldb + 16);
#define KT_FMA(m)                                                                                  \
  if constexpr (MR > m) {                                                                          \
    const __m512 av = _mm512_set1_ps(a[m * lda + p]);                                              \
    x##m = _mm512_fmadd_ps(av, b0, x##m);                                                          \
    y##m = _mm512_fmadd_ps(av, b1, y##m);                                                          \
  }
    KT_ROWS(KT_FMA)
  }
#define KT_STORE(m)                                                                                \
  if constexpr (MR > m) {                                                                          \
    _mm512_mask_storeu_ps(c + m * ldc, m0, x##m);                                                  \
    _mm512_mask_storeu_ps(c + m * ldc + 16, m1, y##m);                                             \
  }
  KT_ROWS(KT_STORE)
#undef KT_DECL
#undef KT_LOAD
#undef KT_FMA
#undef KT_STORE
}
#undef KT_ROWS

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t,
                        __mmask16, __mmask16);
constexpr int kMr = 12; // 24 accumulators + 2 b registers + 1 broadcast of 32 zmm
constexpr TileFn kTiles[kMr + 1] = {nullptr, tile<1>, tile<2>, tile<3>,  tile<4>,  tile<5>, tile<6>,
                                    tile<7>, tile<8>, tile<9>, tile<10>, tile<11>, tile<12>};

} // namespace

void gemmAcc(int64_t M, int64_t N, int64_t P, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc) {
  // Column strips of 32 outside, row tiles inside: a strip of b (P x 32) stays in L1 while every
  // row tile of a streams past it.
  for (int64_t j = 0; j < N; j += 32) {
    const __mmask16 m0 = tail(N - j), m1 = N - j > 16 ? tail(N - j - 16) : __mmask16(0);
    for (int64_t m = 0; m < M; m += kMr) {
      const int mr = int(std::min<int64_t>(kMr, M - m));
      kTiles[mr](P, a + m * lda, lda, b + j, ldb, c + m * ldc + j, ldc, m0, m1);
    }
  }
}

namespace {
// exp(x) for x <= 0 (Cephes expf): x = n·ln2 + r, |r| <= ln2/2, exp(r) by its degree-6 polynomial,
// 2^n through the exponent bits; x < -87.3 (2^n below the normal range) gives 0.
__m512 expNonPositive(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.3f);
  const __mmask16 valid = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
  x = _mm512_max_ps(x, lo);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __m512i e =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_maskz_mul_ps(valid, p, _mm512_castsi512_ps(e));
}
} // namespace

ExpSum expShift(float* l, int64_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    mx = _mm512_max_ps(mx, _mm512_loadu_ps(l + j));
  if (j < n)
    mx = _mm512_mask_max_ps(mx, tail(n - j), mx, _mm512_maskz_loadu_ps(tail(n - j), l + j));
  ExpSum r;
  r.max = _mm512_reduce_max_ps(mx);
  const __m512 m = _mm512_set1_ps(r.max);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 e0 = expNonPositive(_mm512_sub_ps(_mm512_loadu_ps(l + j), m));
    const __m512 e1 = expNonPositive(_mm512_sub_ps(_mm512_loadu_ps(l + j + 16), m));
    _mm512_storeu_ps(l + j, e0);
    _mm512_storeu_ps(l + j + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 k = tail(n - j);
    const __m512 e =
        _mm512_maskz_mov_ps(k, expNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, l + j), m)));
    _mm512_mask_storeu_ps(l + j, k, e);
    s0 = _mm512_add_ps(s0, e);
  }
  r.sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  return r;
}

} // namespace kt::cpu::grad::kernels::avx512
