#include "kernels/cpu/PlainDot.h"

#include <immintrin.h>

namespace kt::cpu {

namespace {

float combine(const float* s) {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <int NR, int NT>
void blockRef(const float* const* w, const float* const* x, int64_t k, float* dots) {
  float s[NR][NT][8] = {};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t)
        for (int j = 0; j < 8; ++j) {
          const float p = w[r][i + j] * x[t][i + j];
          s[r][t][j] += p;
        }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      float acc = combine(s[r][t]);
      for (int64_t j = i; j < k; ++j) {
        const float p = w[r][j] * x[t][j];
        acc += p;
      }
      dots[r * NT + t] = acc;
    }
}

// One ymm register per dot holds its eight partial sums; _mm256_mul_ps then _mm256_add_ps round
// as the scalar loop does (no "fma" target: the compiler cannot fuse them).
template <int NR, int NT>
__attribute__((target("avx2"))) void blockAvx2(const float* const* w, const float* const* x,
                                               int64_t k, float* dots) {
  __m256 s[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t)
      s[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[NR];
    for (int r = 0; r < NR; ++r)
      wv[r] = _mm256_loadu_ps(w[r] + i);
    for (int t = 0; t < NT; ++t) {
      const __m256 xv = _mm256_loadu_ps(x[t] + i);
      for (int r = 0; r < NR; ++r)
        s[r][t] = _mm256_add_ps(s[r][t], _mm256_mul_ps(wv[r], xv));
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, s[r][t]);
      float acc = combine(lanes);
      for (int64_t j = i; j < k; ++j) {
        const float p = w[r][j] * x[t][j];
        acc += p;
      }
      dots[r * NT + t] = acc;
    }
}

using Block = void (*)(const float* const*, const float* const*, int64_t, float*);

// Blocks of 2 x 4 (11 of the 16 ymm registers), 4 x 1 for single tokens; others one row at a time.
Block pick(bool avx2, int rows, int tokens) {
#define KT_PLAIN_SHAPE(R, T)                                                                       \
  if (rows == R && tokens == T)                                                                    \
    return avx2 ? &blockAvx2<R, T> : &blockRef<R, T>;
  KT_PLAIN_SHAPE(2, 4)
  KT_PLAIN_SHAPE(1, 4)
  KT_PLAIN_SHAPE(4, 1)
  KT_PLAIN_SHAPE(1, 1)
#undef KT_PLAIN_SHAPE
  return nullptr;
}

void run(bool avx2, const float* const* w, int rows, const float* const* x, int tokens, int64_t k,
         float* dots) {
  if (Block b = pick(avx2, rows, tokens))
    return b(w, x, k, dots);
  // Any other shape: rows of up to 4 tokens, or single dots.
  for (int r = 0; r < rows; ++r) {
    if (tokens == 4) {
      pick(avx2, 1, 4)(w + r, x, k, dots + r * tokens);
      continue;
    }
    for (int t = 0; t < tokens; ++t)
      pick(avx2, 1, 1)(w + r, x + t, k, dots + r * tokens + t);
  }
}

} // namespace

void plainDotBlock(const float* const* w, int rows, const float* const* x, int tokens, int64_t k,
                   float* dots) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  run(avx2, w, rows, x, tokens, k, dots);
}

void plainDotBlockRef(const float* const* w, int rows, const float* const* x, int tokens, int64_t k,
                      float* dots) {
  run(false, w, rows, x, tokens, k, dots);
}

} // namespace kt::cpu
