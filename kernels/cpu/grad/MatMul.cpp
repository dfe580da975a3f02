// The matrix products of the training math, threaded over the pool. Frozen weights are read through
// MatrixView::rowToF32 or its exact AVX-512 equivalent for packed panels (Kernels.h), so every
// storage format the inference kernels accept works here. f32 runs the register-tiled kernels of
// Kernels.h; double (the finite-difference tests) the plain loops below.
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/grad/Detail.h"
#include "kernels/cpu/grad/Kernels.h"
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

} // namespace

// 32 partial sums: two AVX-512 (four AVX2) accumulator chains, so the loop is not bound by the
// latency of one FMA chain (attention scores and LoRA's x·Aᵀ are long dot products).
KT_GRAD_CLONES float dotF32(const float* a, const float* b, int64_t n) {
  float s[32] = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int j = 0; j < 32; ++j)
      s[j] += a[i + j] * b[i + j];
  for (int j = 0; j < 16; ++j)
    s[j] += s[j + 16];
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j)
      s[j] += a[i + j] * b[i + j];
  for (int j = 0; j < 8; ++j)
    s[j] += s[j + 8];
  float acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i)
    acc += a[i] * b[i];
  return acc;
}

KT_GRAD_CLONES void axpyF32(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += alpha * x[i];
}

namespace {

// dx (+)= dy · W in f32 (Kernels.h): blocks of kDyWRows weight rows are converted to f32 once
// (threads split the block's 16-row panels; f32 weights are read in place), then threads take
// (token block, column block) tiles of dx and accumulate the block into them with the
// register-tiled kernel. Every dx element sums the weight rows in ascending order whatever the
// number of threads, so results are bit-identical for any pool size.
constexpr int64_t kDyWRows = 128;   // weight rows per converted block (a multiple of 16)
constexpr int64_t kDyWCols = 128;   // dx columns per task
constexpr int64_t kDyWTokens = 256; // dx rows per task: a task's tile stays in L2

void matmulDyWF32(ThreadPool& pool, const float* dy, int64_t rows, const MatrixView& w, float* dx) {
  const int64_t n = w.rows, k = w.cols;
  const kernels::Path path = kernels::bestPath();
  const bool direct = w.dtype == DType::F32 && w.packed < 0;
  const int64_t ld = (k + 15) / 16 * 16;
  // Reused across calls (experts call this thousands of times per step): no allocation or
  // zero-fill per call.
  thread_local std::vector<float> block;
  if (!direct && block.size() < size_t(kDyWRows * ld))
    block.resize(size_t(kDyWRows * ld));
  const int64_t colTasks = (k + kDyWCols - 1) / kDyWCols;
  const int64_t tokTasks = (rows + kDyWTokens - 1) / kDyWTokens;
  for (int64_t r0 = 0; r0 < n; r0 += kDyWRows) {
    const int64_t nr = std::min(kDyWRows, n - r0);
    const float* b = nullptr;
    int64_t ldb = k;
    if (direct) {
      b = reinterpret_cast<const float*>(w.row(r0));
    } else {
      float* out = block.data();
      pool.parallelFor((nr + 15) / 16, 1, [&](int64_t g0, int64_t g1) {
        kernels::weightRowsToF32(path, w, r0 + g0 * 16, std::min(nr, g1 * 16) - g0 * 16,
                                 out + g0 * 16 * ld, ld);
      });
      b = out;
      ldb = ld;
    }
    pool.parallelFor(colTasks * tokTasks, 1, [&](int64_t j0, int64_t j1) {
      for (int64_t job = j0; job < j1; ++job) {
        const int64_t t0 = (job / colTasks) * kDyWTokens, c0 = (job % colTasks) * kDyWCols;
        const int64_t tn = std::min(kDyWTokens, rows - t0), cn = std::min(kDyWCols, k - c0);
        kernels::gemmAcc(path, tn, cn, nr, dy + t0 * n + r0, n, b + c0, ldb, dx + t0 * k + c0, k);
      }
    });
  }
}

// y = x · Wᵀ (+ bias) for unpacked weights (bf16/f16/f32 as in the checkpoint) and enough tokens
// for a GEMM: each task converts kXWtCols weight rows to f32 transposed ([K, cols], so that the
// register-tiled kernel streams it) and computes those output columns for every token. The
// inference linear (cpu::linear) runs a dot product per (token, row) there, which is several
// times slower for training's hundreds of tokens; packed weights keep the quantized kernels.
constexpr int64_t kXWtCols = 64;
constexpr int64_t kXWtMinRows = 16;

void matmulXWtF32(ThreadPool& pool, const float* x, int64_t rows, const MatrixView& w,
                  const float* bias, float* y) {
  const int64_t n = w.rows, k = w.cols;
  const kernels::Path path = kernels::bestPath();
  pool.parallelFor((n + kXWtCols - 1) / kXWtCols, 1, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<float> wt, row;
    wt.resize(size_t(k * kXWtCols));
    row.resize(size_t(k));
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * kXWtCols, nb = std::min(kXWtCols, n - n0);
      for (int64_t i = 0; i < nb; ++i) {
        w.rowToF32(n0 + i, row.data());
        for (int64_t c = 0; c < k; ++c)
          wt[size_t(c * nb + i)] = row[size_t(c)];
      }
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t i = 0; i < nb; ++i)
          y[t * n + n0 + i] = bias ? bias[n0 + i] : 0.f;
      kernels::gemmAcc(path, rows, nb, k, x, k, wt.data(), nb, y + n0, n);
    }
  });
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
    if (w.packed < 0 && rows >= kXWtMinRows)
      matmulXWtF32(pool, x, rows, w, b.empty() ? nullptr : b.data(), y);
    else
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
  if constexpr (std::is_same_v<T, float>) {
    matmulDyWF32(pool, dy, rows, w, dx);
    return;
  }
  // double: panels of weight rows are converted once (f32 weights are read in place). With enough
  // token rows each task owns whole rows of dx and sweeps the panel (the lm_head backward:
  // thousands of tokens, a narrow hidden size); otherwise each task owns a strip of dx columns.
  // Either way every dx element sums over the weight rows in the same order, whatever the number of
  // threads.
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
