// The f32 kernels of dx = dy · W (kernels/cpu/grad/Kernels.h) on both paths (Generic, Avx512 when
// the CPU has it) against their scalar definitions on randomized odd shapes: weight rows to f32 for
// packed int8/bf16/f32 (the AVX-512 line transpose), packed int4 and plain bf16 weights, bit for
// bit; the
// register-tiled accumulation against a double-precision sum with strides wider than the shapes;
// the loss's vectorized exp pass (expShift) against std::exp; matmulDyW over packed int8 weights
// (several weight blocks, several token tasks), against a double reference on the dequantized
// weights and bit-identical for any number of threads; and the forward product x · Wᵀ of unpacked
// weights (matmulXWt), likewise.
#include "kernels/cpu/grad/Detail.h"
#include "kernels/cpu/grad/Kernels.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/common/PlainWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kt::cpu::grad {
namespace {

using kernels::Path;

std::vector<Path> paths() {
  std::vector<Path> p{Path::Generic};
  if (kernels::pathSupported(Path::Avx512))
    p.push_back(Path::Avx512);
  return p;
}

const char* name(Path p) {
  return p == Path::Avx512 ? "avx512" : "generic";
}

// A packed weight (quant::packWeights) and its view.
struct Packed {
  std::vector<uint8_t> bytes;
  MatrixView view;
};
Packed pack(quant::WeightFormat f, const std::vector<float>& w, int64_t n, int64_t k) {
  Packed p;
  p.bytes.resize(quant::packedBytes(f, n, k));
  quant::packWeights(f, w.data(), n, k, p.bytes.data());
  p.view.data = p.bytes.data();
  p.view.rows = n;
  p.view.cols = k;
  p.view.packed = int32_t(f);
  return p;
}

std::vector<float> randomVector(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v)
    x = nd(rng);
  return v;
}

TEST(DyWKernels, WeightRowsMatchRowToF32ForEveryFormat) {
  std::mt19937 rng(3);
  struct Shape {
    int64_t n, k;
  };
  for (Shape s :
       {Shape{1, 1}, Shape{5, 3}, Shape{16, 64}, Shape{37, 70}, Shape{130, 200}, Shape{33, 129}}) {
    const std::vector<float> wf = randomVector(rng, size_t(s.n * s.k));
    std::vector<uint16_t> wb(wf.size());
    for (size_t i = 0; i < wf.size(); ++i)
      wb[i] = f32ToBf16(wf[i]);
    MatrixView bf16;
    bf16.data = reinterpret_cast<const uint8_t*>(wb.data());
    bf16.dtype = DType::BF16;
    bf16.rows = s.n;
    bf16.cols = s.k;
    Packed i8 = pack(quant::WeightFormat::Int8, wf, s.n, s.k);
    Packed i4 = pack(quant::WeightFormat::Int4G32Asym, wf, s.n, s.k);
    Packed pb = pack(quant::WeightFormat::BF16, wf, s.n, s.k);
    Packed pf = pack(quant::WeightFormat::F32, wf, s.n, s.k);
    for (const MatrixView* w : {&i8.view, &i4.view, &pb.view, &pf.view, &bf16}) {
      const int64_t ld = s.k + 5; // a stride wider than the row
      std::vector<float> want(size_t(s.n * ld), -7.f);
      for (int64_t r = 0; r < s.n; ++r)
        w->rowToF32(r, want.data() + r * ld);
      for (Path p : paths())
        for (int64_t r0 = 0; r0 < s.n; r0 += 16) { // panel-aligned starts, partial row counts
          const int64_t nr = std::min<int64_t>(s.n - r0, 1 + int64_t(rng() % 40));
          std::vector<float> got(size_t(nr * ld), -7.f);
          kernels::weightRowsToF32(p, *w, r0, nr, got.data(), ld);
          for (int64_t i = 0; i < nr; ++i)
            for (int64_t c = 0; c < s.k; ++c)
              ASSERT_EQ(got[size_t(i * ld + c)], want[size_t((r0 + i) * ld + c)])
                  << name(p) << " format " << w->packed << " " << s.n << "x" << s.k << " row "
                  << r0 + i << " col " << c;
        }
    }
  }
}

TEST(DyWKernels, GemmAccMatchesDoubleReferenceOnOddShapes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t M = 1 + rng() % 29, N = 1 + rng() % 70, P = 1 + rng() % 300;
    const int64_t lda = P + rng() % 3, ldb = N + rng() % 5, ldc = N + rng() % 4;
    const std::vector<float> a = randomVector(rng, size_t(M * lda)),
                             b = randomVector(rng, size_t(P * ldb)),
                             c0 = randomVector(rng, size_t(M * ldc));
    std::vector<float> want = c0;
    kernels::gemmAccRef(M, N, P, a.data(), lda, b.data(), ldb, want.data(), ldc);
    for (Path p : paths()) {
      std::vector<float> got = c0;
      kernels::gemmAcc(p, M, N, P, a.data(), lda, b.data(), ldb, got.data(), ldc);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t i = size_t(m * ldc + j);
          if (j >= N) { // padding columns are never written
            ASSERT_EQ(got[i], c0[i]) << name(p);
            continue;
          }
          double mag = std::fabs(c0[i]);
          for (int64_t q = 0; q < P; ++q)
            mag += std::fabs(double(a[size_t(m * lda + q)]) * b[size_t(q * ldb + j)]);
          ASSERT_NEAR(got[i], want[i], 1e-6 * mag + 1e-6)
              << name(p) << " " << M << "x" << N << "x" << P << " at " << m << "," << j;
        }
    }
  }
}

TEST(DyWKernels, MatmulDyWOverPackedInt8) {
  std::mt19937 rng(19);
  struct Case {
    int64_t rows, n, k;
  };
  // n > 128 spans weight blocks; rows > 256 spans token tasks; k > 128 spans column tasks.
  for (Case c : {Case{1, 7, 5}, Case{24, 300, 141}, Case{300, 133, 64}, Case{3, 1000, 33}}) {
    const std::vector<float> wf = randomVector(rng, size_t(c.n * c.k));
    Packed w = pack(quant::WeightFormat::Int8, wf, c.n, c.k);
    std::vector<float> deq(wf.size());
    for (int64_t r = 0; r < c.n; ++r)
      w.view.rowToF32(r, deq.data() + r * c.k);
    const std::vector<float> dy = randomVector(rng, size_t(c.rows * c.n));
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> dx(size_t(c.rows * c.k), 0.5f), acc = dx;
      detail::matmulDyW(pool, dy.data(), c.rows, w.view, dx.data(), false);
      detail::matmulDyW(pool, dy.data(), c.rows, w.view, acc.data(), true);
      if (first.empty()) {
        first = dx;
        for (int64_t t = 0; t < c.rows; ++t)
          for (int64_t j = 0; j < c.k; ++j) {
            double ref = 0, mag = 0;
            for (int64_t r = 0; r < c.n; ++r) {
              const double p = double(dy[size_t(t * c.n + r)]) * deq[size_t(r * c.k + j)];
              ref += p;
              mag += std::fabs(p);
            }
            const size_t i = size_t(t * c.k + j);
            ASSERT_NEAR(dx[i], ref, 1e-5 * mag + 1e-6) << c.rows << "x" << c.n << "x" << c.k;
            ASSERT_NEAR(acc[i], ref + 0.5, 1e-5 * mag + 1e-5) << "accumulate";
          }
      } else {
        EXPECT_EQ(dx, first) << threads << " threads, " << c.rows << "x" << c.n << "x" << c.k;
      }
    }
  }
}

TEST(DyWKernels, MatmulXWtOverUnpackedWeights) {
  // The forward product of unpacked (bf16/f32) weights takes the transposed-block GEMM from 16
  // tokens on, cpu::linear below: both against a double reference, with and without bias.
  std::mt19937 rng(23);
  struct Case {
    int64_t rows, n, k;
    DType dtype;
    bool bias;
  };
  for (Case c : {Case{16, 1, 3, DType::BF16, true}, Case{37, 65, 77, DType::BF16, false},
                 Case{20, 130, 33, DType::F32, true}, Case{5, 70, 19, DType::BF16, true}}) {
    const testing_util::PlainWeights pw(randomVector(rng, size_t(c.n * c.k)), c.dtype, c.n, c.k);
    const MatrixView& w = pw.view();
    const std::vector<float>& wf = pw.values(); // rounded to bf16 when the weights are
    const std::vector<float> bias = randomVector(rng, size_t(c.n));
    MatrixView bv;
    if (c.bias) {
      bv.data = reinterpret_cast<const uint8_t*>(bias.data());
      bv.rows = 1;
      bv.cols = c.n;
    }
    const std::vector<float> x = randomVector(rng, size_t(c.rows * c.k));
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> y(size_t(c.rows * c.n), 9.f);
      detail::matmulXWt(pool, x.data(), c.rows, w, bv, y.data());
      if (!first.empty()) {
        EXPECT_EQ(y, first) << threads << " threads";
        continue;
      }
      first = y;
      for (int64_t t = 0; t < c.rows; ++t)
        for (int64_t r = 0; r < c.n; ++r) {
          double ref = c.bias ? bias[size_t(r)] : 0.0, mag = std::fabs(ref);
          for (int64_t j = 0; j < c.k; ++j) {
            const double p = double(x[size_t(t * c.k + j)]) * wf[size_t(r * c.k + j)];
            ref += p;
            mag += std::fabs(p);
          }
          ASSERT_NEAR(y[size_t(t * c.n + r)], ref, 1e-5 * mag + 1e-6)
              << c.rows << "x" << c.n << "x" << c.k << " at " << t << "," << r;
        }
    }
  }
}

TEST(LossKernels, ExpShiftMatchesStdExp) {
  // The loss's softmax pass on both paths against std::exp in double, on odd lengths, with logits
  // spread over [-120, 40] so that some exp(l - max) fall below FLT_MIN (those give 0); each
  // value within 4e-7 relative (~3 ulp).
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> ud(-120.f, 40.f);
  for (int64_t n : {1, 7, 16, 31, 33, 100, 1000, 32001}) {
    std::vector<float> l(static_cast<size_t>(n));
    for (float& v : l)
      v = ud(rng);
    std::vector<float> want = l;
    const kernels::ExpSum ref = kernels::expShiftRef(want.data(), n);
    for (Path p : paths()) {
      std::vector<float> got = l;
      const kernels::ExpSum es = kernels::expShift(p, got.data(), n);
      EXPECT_EQ(es.max, ref.max) << name(p) << " n=" << n;
      // f32 sums (the generic path's one chain over 32001 terms drifts ~5e-6 from double).
      EXPECT_NEAR(es.sum, ref.sum, 2e-5 * ref.sum) << name(p) << " n=" << n;
      for (int64_t j = 0; j < n; ++j) {
        const float w = want[size_t(j)];
        if (w < 1.3e-38f) // below exp(-87.3) ~ FLT_MIN: 0 on the AVX-512 path
          ASSERT_LE(got[size_t(j)], 1.3e-38f) << name(p) << " j=" << j;
        else
          ASSERT_NEAR(got[size_t(j)], w, 4e-7f * w) << name(p) << " n=" << n << " j=" << j;
      }
    }
  }
}

} // namespace
} // namespace kt::cpu::grad
