// RMSNorm (frozen weight) and add.
// y_i = w_i x_i s with s = (Σx²/n + eps)^(-1/2). Since ∂s/∂x_j = -s³ x_j / n,
//   dx_j = s a_j - x_j s³ (Σ_i a_i x_i) / n   with a_i = w_i dy_i.
#include "kernels/cpu/Norm.h"
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"

#include <cmath>
#include <type_traits>

namespace kt::cpu::grad {

namespace {
// The inverse RMS exactly as cpu::rmsNorm computes it (in T).
template <class T> T invRms(const T* x, int64_t dim, double eps) {
  T ss = 0;
  for (int64_t i = 0; i < dim; ++i)
    ss += x[i] * x[i];
  return T(1) / std::sqrt(ss / T(dim) + T(eps));
}
} // namespace

template <class T>
void rmsNormForward(ThreadPool& pool, const T* x, int64_t rows, int64_t dim, const MatrixView& w,
                    double eps, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    cpu::rmsNorm(x, rows, dim, w, eps, y);
  } else {
    std::vector<T> wt = detail::vectorOf<T>(w);
    pool.parallelFor(rows, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * dim;
        T* yr = y + r * dim;
        T inv = invRms(xr, dim, eps);
        for (int64_t i = 0; i < dim; ++i)
          yr[i] = wt[size_t(i)] * (xr[i] * inv);
      }
    });
  }
}

namespace detail {
template <class T>
void rmsNormBackwardAcc(ThreadPool& pool, const T* x, int64_t rows, int64_t dim,
                        const MatrixView& w, double eps, const T* dy, T* dx, bool accumulate) {
  std::vector<T> wt = vectorOf<T>(w);
  pool.parallelFor(rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * dim;
      const T* g = dy + r * dim;
      T* d = dx + r * dim;
      T s = invRms(xr, dim, eps);
      T dot = 0;
      for (int64_t i = 0; i < dim; ++i)
        dot += wt[size_t(i)] * g[i] * xr[i];
      T c = s * s * s * dot / T(dim);
      for (int64_t i = 0; i < dim; ++i) {
        T v = s * wt[size_t(i)] * g[i] - xr[i] * c;
        d[i] = accumulate ? d[i] + v : v;
      }
    }
  });
}
} // namespace detail

template <class T>
void rmsNormBackward(ThreadPool& pool, const T* x, int64_t rows, int64_t dim, const MatrixView& w,
                     double eps, const T* dy, T* dx) {
  detail::rmsNormBackwardAcc(pool, x, rows, dim, w, eps, dy, dx, false);
}

template <class T> void addForward(const T* a, const T* b, int64_t n, T* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

template <class T> void addBackward(const T* dy, int64_t n, T* da, T* db) {
  for (int64_t i = 0; i < n; ++i) {
    if (da)
      da[i] = dy[i];
    if (db)
      db[i] = dy[i];
  }
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void rmsNormForward<T>(ThreadPool&, const T*, int64_t, int64_t, const MatrixView&,      \
                                  double, T*);                                                     \
  template void rmsNormBackward<T>(ThreadPool&, const T*, int64_t, int64_t, const MatrixView&,     \
                                   double, const T*, T*);                                          \
  template void detail::rmsNormBackwardAcc<T>(ThreadPool&, const T*, int64_t, int64_t,             \
                                              const MatrixView&, double, const T*, T*, bool);      \
  template void addForward<T>(const T*, const T*, int64_t, T*);                                    \
  template void addBackward<T>(const T*, int64_t, T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
