#include "tools/kt-synth/Random.h"

#include <cmath>
#include <cstring>

namespace kt::synth {

namespace {

inline uint32_t bitsOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float floatOf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ln(k * 2^-24) for k in [1, 2^24]: k = m * 2^e with m in [sqrt(1/2), sqrt(2)) (found branch-free
// by offsetting the bits by those of sqrt(1/2)), then ln m = 2 atanh(s), s = (m-1)/(m+1),
// |s| < 0.172, by its series to s^9 (error < 1e-8).
inline float logUnit(uint32_t k) {
  const uint32_t t = bitsOf(float(int32_t(k))) - 0x3f3504f3u; // k <= 2^24: exact; int32 is SIMD
  const int32_t e = int32_t(t) >> 23;
  const float m = floatOf((t & 0x7fffffu) + 0x3f3504f3u);
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9))));
  return float(e - 24) * 0.693147180559945309f + 2.0f * s * series;
}

// cos and sin of 2*pi*j/2^24 for j in [0, 2^24): the top two bits pick the quadrant, the rest is
// x in [0, pi/2) where Taylor polynomials to x^11 / x^12 are accurate to < 1e-7.
inline void sinCosTurn(uint32_t j, float* c, float* s) {
  const uint32_t q = j >> 22;
  const float x = float(j & 0x3fffffu) * (1.57079632679489662f / 4194304.0f);
  const float x2 = x * x;
  const float sx =
      x * (1.0f + x2 * (-1.0f / 6 +
                        x2 * (1.0f / 120 + x2 * (-1.0f / 5040 +
                                                 x2 * (1.0f / 362880 + x2 * (-1.0f / 39916800))))));
  const float cx =
      1.0f +
      x2 * (-0.5f + x2 * (1.0f / 24 + x2 * (-1.0f / 720 +
                                            x2 * (1.0f / 40320 + x2 * (-1.0f / 3628800 +
                                                                       x2 * (1.0f / 479001600))))));
  // Rotate by q quarter turns: (c, s) -> (-s, c) per quarter.
  const float a = (q & 1) ? sx : cx, b = (q & 1) ? cx : sx;
  *c = (q == 1 || q == 2) ? -a : a;
  *s = (q & 2) ? -b : b;
}

constexpr size_t kBlock = 256; // pairs per inner block: the arrays stay in L1

// Normals 2*p0 .. 2*(p0+np)-1 into z (2*np floats). Also built for AVX2, picked at run time by
// CPUID: twice the speed, the same bits (no FMA contraction: see CMakeLists.txt).
__attribute__((target_clones("avx2", "default"))) void normalPairs(uint64_t key, uint64_t p0,
                                                                   size_t np, float* z) {
  uint32_t hi[kBlock], lo[kBlock];
  float radius[kBlock], c[kBlock], s[kBlock];
  for (size_t b0 = 0; b0 < np; b0 += kBlock) {
    const size_t nb = np - b0 < kBlock ? np - b0 : kBlock;
    for (size_t i = 0; i < nb; ++i) {
      const uint64_t r = randomBits(key, p0 + b0 + i);
      hi[i] = uint32_t(r >> 40) + 1u; // (0, 2^24]: the log stays finite
      lo[i] = uint32_t(r) & 0xffffffu;
    }
    for (size_t i = 0; i < nb; ++i)
      radius[i] = std::sqrt(-2.0f * logUnit(hi[i]));
    for (size_t i = 0; i < nb; ++i)
      sinCosTurn(lo[i], &c[i], &s[i]);
    float* o = z + 2 * b0;
    for (size_t i = 0; i < nb; ++i) {
      o[2 * i] = radius[i] * c[i];
      o[2 * i + 1] = radius[i] * s[i];
    }
  }
}

} // namespace

void fillNormal(uint64_t key, uint64_t i0, size_t n, float mean, float std, float* out) {
  if (n == 0)
    return;
  size_t k = 0;
  float pair[2];
  if (i0 & 1) { // an odd start takes the second normal of its pair
    normalPairs(key, i0 >> 1, 1, pair);
    out[k++] = pair[1];
  }
  const size_t full = (n - k) / 2;
  normalPairs(key, (i0 + k) >> 1, full, out + k);
  k += 2 * full;
  if (k < n) {
    normalPairs(key, (i0 + k) >> 1, 1, pair);
    out[k++] = pair[0];
  }
  for (size_t i = 0; i < n; ++i)
    out[i] = mean + std * out[i];
}

} // namespace kt::synth
