// kernels/cpu/grad matmulDyW (dx = dy · W, the backward of every frozen projection and of lm_head,
// which this runtime's training time is dominated by): both of its parallel layouts (dx rows per
// task for many tokens, dx column strips for few), f32 weights read in place and bf16 weights
// converted, against a double-precision scalar reference on odd shapes; and bit-identical results
// for any number of threads.
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/common/PlainWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace kt::cpu::grad {
namespace {

struct Case {
  int64_t rows, n, k;
  DType dtype;
};

TEST(MatMulDyW, MatchesScalarReferenceOnOddShapes) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  ThreadPool pool(3);
  // rows < 4·threads takes the column-strip layout, rows >= it the row layout; n spans panels.
  for (Case c :
       {Case{1, 7, 5, DType::F32}, Case{5, 300, 67, DType::F32}, Case{13, 517, 131, DType::F32},
        Case{29, 263, 200, DType::BF16}, Case{3, 1000, 33, DType::BF16}}) {
    std::vector<float> wf(static_cast<size_t>(c.n * c.k)), dy(static_cast<size_t>(c.rows * c.n));
    for (float& v : wf)
      v = nd(rng);
    for (size_t i = 0; i < dy.size(); ++i)
      dy[i] = i % 7 == 3 ? 0.f : nd(rng); // zeros take the skip path
    // The reference uses the rounded weights.
    const testing_util::PlainWeights pw(std::move(wf), c.dtype, c.n, c.k);
    const MatrixView& w = pw.view();
    const std::vector<float>& wr = pw.values();
    std::vector<float> dx(static_cast<size_t>(c.rows * c.k), 1.f), acc = dx;
    detail::matmulDyW(pool, dy.data(), c.rows, w, dx.data(), false);
    detail::matmulDyW(pool, dy.data(), c.rows, w, acc.data(), true);
    for (int64_t t = 0; t < c.rows; ++t)
      for (int64_t j = 0; j < c.k; ++j) {
        double ref = 0, mag = 0;
        for (int64_t r = 0; r < c.n; ++r) {
          ref += double(dy[size_t(t * c.n + r)]) * wr[size_t(r * c.k + j)];
          mag += std::fabs(double(dy[size_t(t * c.n + r)]) * wr[size_t(r * c.k + j)]);
        }
        const size_t i = size_t(t * c.k + j);
        ASSERT_NEAR(dx[i], ref, 1e-5 * mag + 1e-6) << c.rows << "x" << c.n << "x" << c.k;
        ASSERT_NEAR(acc[i], ref + 1.0, 1e-5 * mag + 1e-5) << "accumulate";
      }
  }
}

TEST(MatMulDyW, SameBitsForAnyThreadCount) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const int64_t rows = 37, n = 700, k = 91;
  std::vector<float> wf(static_cast<size_t>(n * k)), dy(static_cast<size_t>(rows * n));
  for (float& v : wf)
    v = nd(rng);
  for (float& v : dy)
    v = nd(rng);
  MatrixView w;
  w.data = reinterpret_cast<const uint8_t*>(wf.data());
  w.rows = n;
  w.cols = k;
  std::vector<float> first;
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t r : {int64_t(3), rows}) { // both layouts
      std::vector<float> dx(static_cast<size_t>(r * k));
      detail::matmulDyW(pool, dy.data(), r, w, dx.data(), false);
      if (r == rows && first.empty()) {
        first = dx;
      } else if (r == rows) {
        EXPECT_EQ(dx, first) << threads << " threads";
      }
    }
  }
}

} // namespace
} // namespace kt::cpu::grad
