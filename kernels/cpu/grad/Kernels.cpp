// Dispatch, portable paths and scalar definitions of the dx = dy · W building blocks (Kernels.h).
#include "kernels/cpu/grad/Kernels.h"

#include "kernels/cpu/quant/QuantMatmul.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace kt::cpu::grad::kernels {

namespace {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KT_GRAD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KT_GRAD_CLONES
#endif

KT_GRAD_CLONES void axpyRow(float s, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += s * x[i];
}
} // namespace

bool pathSupported(Path path) {
  if (path == Path::Generic)
    return true;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return avx512;
#else
  return false;
#endif
}

Path bestPath() {
  static const Path best = [] {
    if (!pathSupported(Path::Avx512))
      return Path::Generic;
    // KT_ISA=avx2|scalar (what the quantized kernels obey) also keeps these kernels off AVX-512.
    const char* request = std::getenv("KT_ISA");
    if (request && *request && int(quant::detectIsa()) < int(quant::Isa::Avx512))
      return Path::Generic;
    return Path::Avx512;
  }();
  return best;
}

void weightRowsToF32(Path path, const MatrixView& w, int64_t r0, int64_t nr, float* out,
                     int64_t ld) {
  if (path == Path::Avx512 && w.packed >= 0 &&
      quant::dequantizeRows(quant::Isa::Avx512, quant::WeightFormat(w.packed), w.data, w.rows,
                            w.cols, r0, nr, out, ld))
    return;
  for (int64_t i = 0; i < nr; ++i)
    w.rowToF32(r0 + i, out + i * ld);
}

void gemmAcc(Path path, int64_t M, int64_t N, int64_t P, const float* a, int64_t lda,
             const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (path == Path::Avx512 && pathSupported(path)) {
    avx512::gemmAcc(M, N, P, a, lda, b, ldb, c, ldc);
    return;
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t p = 0; p < P; ++p)
      axpyRow(a[m * lda + p], b + p * ldb, c + m * ldc, N);
}

void gemmAccRef(int64_t M, int64_t N, int64_t P, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* c, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < N; ++j) {
      double s = c[m * ldc + j];
      for (int64_t p = 0; p < P; ++p)
        s += double(a[m * lda + p]) * double(b[p * ldb + j]);
      c[m * ldc + j] = float(s);
    }
}

ExpSum expShift(Path path, float* l, int64_t n) {
  if (path == Path::Avx512 && pathSupported(path))
    return avx512::expShift(l, n);
  ExpSum r;
  r.max = *std::max_element(l, l + n);
  for (int64_t j = 0; j < n; ++j)
    r.sum += (l[j] = std::exp(l[j] - r.max));
  return r;
}

ExpSum expShiftRef(float* l, int64_t n) {
  ExpSum r;
  r.max = *std::max_element(l, l + n);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j)
    sum += (l[j] = std::exp(l[j] - r.max));
  r.sum = float(sum);
  return r;
}

} // namespace kt::cpu::grad::kernels
