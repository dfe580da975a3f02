// AVX-512F attention kernels (16 floats per register). Compiled with -mavx512f etc.; called only
// after CPUID says so (Attention.cpp).
#include "kernels/cpu/attention/AttentionKernels.h"

#include <cmath>
// GCC 12 reports its own _mm512_undefined_*() inside the intrinsic headers as (maybe-)uninitialized
// (GCC bug 105593, fixed in 13), as in kernels/cpu/quant/MatmulAvx512.cpp.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

namespace kt::cpu::detail {

namespace {

struct V512 {
  static constexpr int kW = 16;
  static constexpr int kScoreKeys = 4; // see AttentionBody.inc
  static constexpr int kCtxVecs = 4; // see AttentionBody.inc
  using reg = __m512;
  static __mmask16 tail(int64_t n) { return __mmask16((1u << n) - 1u); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg loadN(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void storeN(float* p, reg v, int64_t n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static reg set1(float f) { return _mm512_set1_ps(f); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static float sum(reg v) { return _mm512_reduce_add_ps(v); }
  static float hmax(reg v) { return _mm512_reduce_max_ps(v); }
  static reg round(reg v) {
    return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static reg pow2Scale(reg p, reg n) {
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
};

} // namespace

#include "kernels/cpu/attention/AttentionBody.inc"

void attendBlockAvx512(const AttendBlock& j, float* scores) {
  attendBlockV<V512>(j, scores);
}

void attendPartialAvx512(const AttendBlock& j, float* m, float* l) {
  attendPartialV<V512>(j, m, l);
}

} // namespace kt::cpu::detail
