// The matrix products of the training math, threaded over the pool. Frozen weights are read only
// through MatrixView::rowToF32, so every storage format the inference kernels accept works here.
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <type_traits>

namespace kt::cpu::grad::detail {

namespace {
constexpr int64_t kColBlock = 64;   // output columns per task: one cache-resident strip
constexpr int64_t kPanelRows = 256; // weight rows converted per panel in matmulDyW

// The f32 hot loops are compiled for AVX-512, AVX2+FMA and the baseline; the loader picks one by
// CPUID (GCC/Clang target_clones, an ifunc), so no build flag can produce an illegal instruction.
// Results depend on the ISA (FMA rounding) but never on the number of threads.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KT_GRAD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KT_GRAD_CLONES
#endif

KT_GRAD_CLONES float dotF32(const float* a, const float* b, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      s[j] += a[i + j] * b[i + j];
  float acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i)
    acc += a[i] * b[i];
  return acc;
}

KT_GRAD_CLONES void axpyF32(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += alpha * x[i];
}

template <class T> T dotT(const T* a, const T* b, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return dotF32(a, b, n);
  } else {
    // Independent partial sums let the compiler vectorize without reassociating a single chain.
    T s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; ++j)
        s[j] += a[i + j] * b[i + j];
    T acc = (s[0] + s[1]) + (s[2] + s[3]);
    for (; i < n; ++i)
      acc += a[i] * b[i];
    return acc;
  }
}

template <class T> void axpy(T alpha, const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    axpyF32(alpha, x, y, n);
  } else {
    for (int64_t i = 0; i < n; ++i)
      y[i] += alpha * x[i];
  }
}
} // namespace

template <class T> std::vector<T> vectorOf(const MatrixView& v) {
  std::vector<float> f(size_t(v.cols));
  v.rowToF32(0, f.data());
  return std::vector<T>(f.begin(), f.end());
}

template <class T>
void matmulXWt(ThreadPool& pool, const T* x, int64_t rows, const MatrixView& w,
               const MatrixView& bias, T* y) {
  const int64_t n = w.rows, k = w.cols;
  std::vector<T> b;
  if (bias.data)
    b = vectorOf<T>(bias);
  if constexpr (std::is_same_v<T, float>) {
    cpu::linear(pool, x, rows, w, b.empty() ? nullptr : b.data(), y);
  } else {
    pool.parallelFor(n, 16, [&](int64_t begin, int64_t end) {
      std::vector<float> rf(static_cast<size_t>(k));
      std::vector<T> rt(static_cast<size_t>(k));
      for (int64_t r = begin; r < end; ++r) {
        w.rowToF32(r, rf.data());
        std::copy(rf.begin(), rf.end(), rt.begin());
        T add = b.empty() ? T(0) : b[size_t(r)];
        for (int64_t t = 0; t < rows; ++t)
          y[t * n + r] = dotT(x + t * k, rt.data(), k) + add;
      }
    });
  }
}

template <class T>
void matmulDyW(ThreadPool& pool, const T* dy, int64_t rows, const MatrixView& w, T* dx,
               bool accumulate) {
  const int64_t n = w.rows, k = w.cols;
  if (!accumulate)
    std::fill(dx, dx + rows * k, T(0));
  // Panels of weight rows are converted once (f32 weights are read in place). With enough token
  // rows each task owns whole rows of dx and sweeps the panel (the lm_head backward: thousands of
  // tokens, a narrow hidden size); otherwise each task owns a strip of dx columns. Either way every
  // dx element sums over the weight rows in the same order, whatever the number of threads.
  const bool byRows = rows >= 4 * int64_t(pool.size());
  const bool direct = std::is_same_v<T, float> && w.dtype == DType::F32 && w.packed < 0;
  std::vector<T> panel;
  const int64_t colBlocks = (k + kColBlock - 1) / kColBlock;
  for (int64_t r0 = 0; r0 < n; r0 += kPanelRows) {
    const int64_t pr = std::min(kPanelRows, n - r0);
    const T* pw = nullptr;
    if (direct) {
      pw = reinterpret_cast<const T*>(w.row(r0));
    } else {
      panel.resize(size_t(pr * k));
      pool.parallelFor(pr, 4, [&](int64_t b, int64_t e) {
        std::vector<float> rf(static_cast<size_t>(k));
        for (int64_t r = b; r < e; ++r) {
          w.rowToF32(r0 + r, rf.data());
          std::copy(rf.begin(), rf.end(), panel.begin() + r * k);
        }
      });
      pw = panel.data();
    }
    if (byRows) {
      pool.parallelFor(rows, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          T* d = dx + t * k;
          const T* g = dy + t * n + r0;
          for (int64_t r = 0; r < pr; ++r)
            if (g[r] != T(0))
              axpy(g[r], pw + r * k, d, k);
        }
      });
      continue;
    }
    pool.parallelFor(colBlocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t cb = b; cb < e; ++cb) {
        const int64_t c0 = cb * kColBlock, cn = std::min(kColBlock, k - c0);
        for (int64_t t = 0; t < rows; ++t) {
          T* d = dx + t * k + c0;
          const T* g = dy + t * n + r0;
          for (int64_t r = 0; r < pr; ++r)
            if (g[r] != T(0))
              axpy(g[r], pw + r * k + c0, d, cn);
        }
      }
    });
  }
}

template <class T>
void gemmNT(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate) {
  pool.parallelFor(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N * K)),
                   [&](int64_t m0, int64_t m1) {
                     for (int64_t m = m0; m < m1; ++m)
                       for (int64_t j = 0; j < N; ++j) {
                         T v = alpha * dotT(a + m * K, b + j * K, K);
                         c[m * N + j] = accumulate ? c[m * N + j] + v : v;
                       }
                   });
}

template <class T>
void gemmNN(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate) {
  pool.parallelFor(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N * K)),
                   [&](int64_t m0, int64_t m1) {
                     for (int64_t m = m0; m < m1; ++m) {
                       T* cr = c + m * N;
                       if (!accumulate)
                         std::fill(cr, cr + N, T(0));
                       for (int64_t kk = 0; kk < K; ++kk) {
                         T s = alpha * a[m * K + kk];
                         if (s != T(0))
                           axpy(s, b + kk * N, cr, N);
                       }
                     }
                   });
}

template <class T>
void gemmTN(ThreadPool& pool, int64_t M, int64_t N, int64_t K, T alpha, const T* a, const T* b,
            T* c, bool accumulate) {
  // Tasks are (row of c, strip of columns): enough of them even when M is a LoRA rank.
  const int64_t strips = (N + kColBlock - 1) / kColBlock;
  pool.parallelFor(M * strips, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t job = j0; job < j1; ++job) {
      const int64_t m = job / strips, c0 = (job % strips) * kColBlock,
                    cn = std::min(kColBlock, N - c0);
      T* cr = c + m * N + c0;
      if (!accumulate)
        std::fill(cr, cr + cn, T(0));
      for (int64_t kk = 0; kk < K; ++kk) {
        T s = alpha * a[kk * M + m];
        if (s != T(0))
          axpy(s, b + kk * N + c0, cr, cn);
      }
    }
  });
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template std::vector<T> vectorOf<T>(const MatrixView&);                                          \
  template void matmulXWt<T>(ThreadPool&, const T*, int64_t, const MatrixView&, const MatrixView&, \
                             T*);                                                                  \
  template void matmulDyW<T>(ThreadPool&, const T*, int64_t, const MatrixView&, T*, bool);         \
  template void gemmNT<T>(ThreadPool&, int64_t, int64_t, int64_t, T, const T*, const T*, T*,       \
                          bool);                                                                   \
  template void gemmNN<T>(ThreadPool&, int64_t, int64_t, int64_t, T, const T*, const T*, T*,       \
                          bool);                                                                   \
  template void gemmTN<T>(ThreadPool&, int64_t, int64_t, int64_t, T, const T*, const T*, T*, bool);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad::detail
