// PackedWiden.h (prefill offload's GPU-side widening of the CPU's packed experts), host side:
// packedWeight / widenPackedRows, the index math the widenPacked kernel runs per element, against
// quant::dequantizeRow (the CPU's definition of its packed formats), bit for bit, for every packed
// format, on randomized odd shapes (rows not a multiple of 16, K not a multiple of the group or
// of the format's K padding), with tiny rows (f16-subnormal int4 scales) and all-zero rows.
// Runs in every build (no CUDA needed); packed_widen_cuda_test compares the kernel with this.
#include "kernels/cpu/quant/QuantMatmul.h"
#include "kernels/cuda/PackedWiden.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

using namespace kt;
namespace q = kt::cpu::quant;

namespace {

// Weights ~N(0, 1) with row 1 all zero and row 2 scaled by 1e-6 (when present).
std::vector<float> randomWeights(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      float x = dist(rng);
      if (r == 1)
        x = 0;
      if (r == 2)
        x *= 1e-6f;
      w[size_t(r * k + c)] = x;
    }
  return w;
}

std::vector<uint8_t> pack(q::WeightFormat f, const std::vector<float>& w, int64_t n, int64_t k) {
  std::vector<uint8_t> blob(q::packedBytes(f, n, k));
  q::packWeights(f, w.data(), n, k, blob.data());
  return blob;
}

// GpuFormat.cpp's toBf16Bits, written out here so this test needs only the CPU libraries.
uint16_t bf16Rne(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

struct Shape {
  int64_t n, k;
};
constexpr Shape kShapes[] = {{1, 1},    {5, 7},    {16, 64}, {17, 33},
                             {33, 100}, {40, 129}, {3, 200}, {31, 257}};

} // namespace

TEST(PackedWiden, MatchesDequantizeRowEveryFormat) {
  uint32_t seed = 1;
  for (q::WeightFormat f : q::kAllWeightFormats)
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(q::formatName(f)) + " [" + std::to_string(s.n) + ", " +
                   std::to_string(s.k) + "]");
      const std::vector<float> w = randomWeights(s.n, s.k, seed++);
      const std::vector<uint8_t> blob = pack(f, w, s.n, s.k);
      const cuda::PackedGeom g = cuda::packedGeom(f, s.n, s.k);
      std::vector<float> f32(static_cast<size_t>(s.n * s.k));
      std::vector<uint16_t> bf16(static_cast<size_t>(s.n * s.k));
      cuda::widenPackedRows(g, blob.data(), false, f32.data(), 0, s.n);
      cuda::widenPackedRows(g, blob.data(), true, bf16.data(), 0, s.n);
      std::vector<float> ref(static_cast<size_t>(s.k));
      int64_t mismatches = 0, nonzero = 0;
      for (int64_t r = 0; r < s.n; ++r) {
        q::dequantizeRow(f, blob.data(), s.n, s.k, r, ref.data());
        for (int64_t c = 0; c < s.k; ++c) {
          const size_t i = size_t(r * s.k + c);
          uint32_t a, b;
          std::memcpy(&a, &f32[i], 4);
          std::memcpy(&b, &ref[size_t(c)], 4);
          nonzero += ref[size_t(c)] != 0;
          if (a != b || bf16[i] != bf16Rne(ref[size_t(c)])) {
            if (++mismatches <= 5)
              ADD_FAILURE() << "row " << r << " col " << c << ": widened " << f32[i]
                            << " (bf16 bits " << bf16[i] << "), dequantizeRow " << ref[size_t(c)];
          }
        }
      }
      EXPECT_EQ(mismatches, 0);
      // The comparison saw real weights, not a blob of zeros.
      if (s.n * s.k >= 16) {
        EXPECT_GT(nonzero, s.n * s.k / 4);
      }
    }
}

TEST(PackedWiden, RowRangesAndTinyScales) {
  // widenPackedRows over row ranges writes only those rows; an int4 row of 1e-6 weights has
  // f16-subnormal group scales and still widens exactly.
  const int64_t n = 37, k = 161;
  const std::vector<float> w = randomWeights(n, k, 99);
  for (q::WeightFormat f :
       {q::WeightFormat::Int8, q::WeightFormat::Int4G32Asym, q::WeightFormat::Int4G128Sym}) {
    SCOPED_TRACE(q::formatName(f));
    const std::vector<uint8_t> blob = pack(f, w, n, k);
    const cuda::PackedGeom g = cuda::packedGeom(f, n, k);
    std::vector<float> whole(static_cast<size_t>(n * k)), parts(whole.size(), -7.f);
    cuda::widenPackedRows(g, blob.data(), false, whole.data(), 0, n);
    cuda::widenPackedRows(g, blob.data(), false, parts.data(), 0, 16);
    cuda::widenPackedRows(g, blob.data(), false, parts.data(), 20, n);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const size_t i = size_t(r * k + c);
        if (r >= 16 && r < 20)
          ASSERT_EQ(parts[i], -7.f) << "row " << r << " was written";
        else
          ASSERT_EQ(std::memcmp(&parts[i], &whole[i], 4), 0) << "row " << r << " col " << c;
      }
    std::vector<float> ref(static_cast<size_t>(k));
    q::dequantizeRow(f, blob.data(), n, k, 2, ref.data());
    int64_t tinyNonzero = 0;
    for (int64_t c = 0; c < k; ++c) {
      EXPECT_EQ(std::memcmp(&whole[size_t(2 * k + c)], &ref[size_t(c)], 4), 0) << "col " << c;
      tinyNonzero += ref[size_t(c)] != 0;
    }
    EXPECT_GT(tinyNonzero, 0) << "the tiny row dequantized to zeros: not a subnormal-scale test";
  }
}
