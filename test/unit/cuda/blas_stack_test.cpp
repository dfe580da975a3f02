// Blas::linearStack (every item padded to the same rows: cublasGemmBatchedEx) and
// Blas::linearStackRagged (each item its own rows, packed: cublasGemmGroupedBatchedEx) against a
// scalar host reference: odd row counts (1, twice in a row so two items share a group; 17),
// slices of the stack taken out of order, bf16 and f32 stacks. The ragged bf16 products are
// rounded to bf16 once (cuBLAS's grouped GEMM writes bf16 only), so they get a bf16 tolerance.
// Without a GPU the tests skip.
#include "kernels/cuda/Blas.h"
#include "runtime/support/DType.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <numeric>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

// A stack of `slices` row-major [n, k] matrices, random; bf16 stacks hold the bf16 bits and `f32`
// their exact values.
struct Stack {
  std::vector<float> f32;
  std::vector<uint16_t> bits;
  Stack(std::mt19937& rng, int64_t slices, int64_t n, int64_t k, bool bf16) {
    f32 = randomVector(rng, static_cast<size_t>(slices * n * k), 0.1f);
    if (!bf16)
      return;
    bits.resize(f32.size());
    for (size_t i = 0; i < f32.size(); ++i) {
      bits[i] = f32ToBf16(f32[i]);
      f32[i] = bf16ToF32(bits[i]);
    }
  }
};

// y rows [row0, row0 + rows) = x' rows . W_slot^T, with x' = x rounded to bf16 for bf16 stacks;
// double sums.
void referenceItem(const std::vector<float>& x, const Stack& w, int64_t row0, int64_t rows,
                   int32_t slot, int64_t n, int64_t k, bool bf16, std::vector<float>* y) {
  for (int64_t r = row0; r < row0 + rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t c = 0; c < k; ++c) {
        const float xv = x[size_t(r * k + c)];
        sum += double(bf16 ? bf16ToF32(f32ToBf16(xv)) : xv) *
               double(w.f32[size_t((int64_t(slot) * n + j) * k + c)]);
      }
      (*y)[size_t(r * n + j)] = float(sum);
    }
}

struct Shape {
  int64_t n, k;
  bool bf16;
};
// bf16 shapes keep k and n multiples of 8 (cuBLAS's 16-byte alignment rule for bf16 pointers);
// f32 ones are odd.
const Shape kShapes[] = {{24, 40, true}, {48, 16, true}, {37, 29, false}, {1, 3, false}};

TEST(CudaBlasStack, RaggedItemsMatchTheHostReference) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(11);
  const std::vector<int32_t> rows = {5, 1, 1, 3, 17, 2, 6};
  const std::vector<int32_t> slots = {4, 0, 6, 2, 5, 1, 3}; // out of order
  const int64_t items = int64_t(rows.size()), slices = 7;
  std::vector<int32_t> rowStart(rows.size(), 0);
  std::partial_sum(rows.begin(), rows.end() - 1, rowStart.begin() + 1);
  const int64_t total = std::accumulate(rows.begin(), rows.end(), int64_t(0));
  for (const Shape& s : kShapes) {
    const Stack w(rng, slices, s.n, s.k, s.bf16);
    const std::vector<float> x = randomVector(rng, static_cast<size_t>(total * s.k));
    std::vector<float> want(static_cast<size_t>(total * s.n));
    for (int64_t i = 0; i < items; ++i)
      referenceItem(x, w, rowStart[size_t(i)], rows[size_t(i)], slots[size_t(i)], s.n, s.k, s.bf16,
                    &want);
    // Three rows past the end hold a sentinel that no product may overwrite.
    const int64_t extra = 3;
    Dev dx(x), dSlots(slots), dStart(rowStart),
        dy(std::vector<float>(static_cast<size_t>((total + extra) * s.n), 1e30f));
    Dev dw = s.bf16 ? Dev(w.bits) : Dev(w.f32);
    ASSERT_TRUE(blas->linearStackRagged(dx.as(), rows.data(), dStart.as<int32_t>(), items,
                                        dSlots.as<int32_t>(), dw.as<void>(), s.bf16, s.n, s.k,
                                        dy.as(), &err))
        << err;
    std::vector<float> got = dy.get(static_cast<size_t>((total + extra) * s.n));
    for (size_t i = size_t(total * s.n); i < got.size(); ++i)
      ASSERT_EQ(got[i], 1e30f) << "row " << i / size_t(s.n) << " past the items was written";
    got.resize(want.size());
    // bf16: f32 sums rounded once to bf16 (relative 2^-9); f32: exact sums in another order.
    EXPECT_LT(maxRelDiff(got, want), s.bf16 ? 4e-3 : 1e-5)
        << (s.bf16 ? "bf16" : "f32") << " n=" << s.n << " k=" << s.k;
  }
}

TEST(CudaBlasStack, PaddedItemsMatchTheHostReference) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(12);
  const std::vector<int32_t> slots = {3, 0, 2, 5};
  const int64_t items = int64_t(slots.size()), slices = 6;
  for (const int64_t perItem : {int64_t(1), int64_t(7)})
    for (const Shape& s : kShapes) {
      const Stack w(rng, slices, s.n, s.k, s.bf16);
      const int64_t total = items * perItem;
      const std::vector<float> x = randomVector(rng, static_cast<size_t>(total * s.k));
      std::vector<float> want(static_cast<size_t>(total * s.n));
      for (int64_t i = 0; i < items; ++i)
        referenceItem(x, w, i * perItem, perItem, slots[size_t(i)], s.n, s.k, s.bf16, &want);
      Dev dx(x), dSlots(slots), dy(static_cast<size_t>(total * s.n) * 4);
      Dev dw = s.bf16 ? Dev(w.bits) : Dev(w.f32);
      ASSERT_TRUE(blas->linearStack(dx.as(), perItem, items, dSlots.as<int32_t>(), dw.as<void>(),
                                    s.bf16, s.n, s.k, dy.as(), &err))
          << err;
      // Both keep f32 sums: only the order of the additions differs.
      EXPECT_LT(maxRelDiff(dy.get(want.size()), want), s.bf16 ? 1e-4 : 1e-5)
          << (s.bf16 ? "bf16" : "f32") << " rows=" << perItem << " n=" << s.n;
    }
}

// A negative count is refused with the item named, before anything is launched.
TEST(CudaBlasStack, RaggedRefusesANegativeCount) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  const std::vector<int32_t> rows = {2, -1};
  EXPECT_FALSE(blas->linearStackRagged(nullptr, rows.data(), nullptr, 2, nullptr, nullptr, true, 8,
                                       8, nullptr, &err));
  EXPECT_EQ(err, "linearStackRagged: item 1 has -1 rows");
}

} // namespace
