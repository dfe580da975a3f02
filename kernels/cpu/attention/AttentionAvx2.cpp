// AVX2 + FMA attention kernels (8 floats per register). Compiled with -mavx2 -mfma; called only
// after CPUID says so (Attention.cpp).
#include "kernels/cpu/attention/AttentionKernels.h"

#include <cmath>
#include <immintrin.h>

namespace kt::cpu::detail {

namespace {

struct V256 {
  static constexpr int kW = 8;
  static constexpr int kScoreKeys = 2; // see AttentionBody.inc
  static constexpr int kCtxVecs = 2; // see AttentionBody.inc
  using reg = __m256;
  // Lane i is loaded/stored when i < n (sign bit of the mask lane set).
  static __m256i tail(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg loadN(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail(n)); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static void storeN(float* p, reg v, int64_t n) { _mm256_maskstore_ps(p, tail(n), v); }
  static reg set1(float f) { return _mm256_set1_ps(f); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static float sum(reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(reg v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static reg round(reg v) {
    return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static reg pow2Scale(reg p, reg n) {
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
};

} // namespace

#include "kernels/cpu/attention/AttentionBody.inc"

void attendBlockAvx2(const AttendBlock& j, float* scores) {
  attendBlockV<V256>(j, scores);
}

void attendPartialAvx2(const AttendBlock& j, float* m, float* l) {
  attendPartialV<V256>(j, m, l);
}

} // namespace kt::cpu::detail
