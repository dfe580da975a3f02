// runtime/pack on its own: packMatrix against the kernels' f32 packer for every format and source
// dtype over random odd shapes, its errors, and the rule that cuts a weight's source segments into
// matrices (SourceSlices).
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/pack/PackMatrix.h"
#include "runtime/pack/SourceSlices.h"
#include "runtime/support/Error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

using namespace kt;
using namespace kt::pack;
namespace q = kt::cpu::quant;

uint16_t toBf16(float f) { // truncation is fine: the reference converts back from these bits
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);
}
float fromBf16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The same matrix as f32 and bf16 bytes; the f32 view holds exactly the bf16 values, so both
// sources must pack to identical bytes.
struct Matrix {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
};
Matrix randomMatrix(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> d(0.f, 0.5f);
  Matrix m;
  for (int64_t i = 0; i < n * k; ++i) {
    uint16_t h = toBf16(d(rng));
    m.bf16.push_back(h);
    m.f32.push_back(fromBf16(h));
  }
  return m;
}

TEST(PackMatrix, MatchesKernelPackerOnOddShapes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 97);
  for (q::WeightFormat f : q::kAllWeightFormats) {
    for (int trial = 0; trial < 6; ++trial) {
      const int64_t n = dim(rng), k = dim(rng) * (trial % 2 ? 3 : 1);
      SCOPED_TRACE(std::string(q::formatName(f)) + " [" + std::to_string(n) + ", " +
                   std::to_string(k) + "]");
      Matrix m = randomMatrix(n, k, rng);
      const size_t bytes = packedMatrixBytes(int(f), n, k);
      ASSERT_EQ(bytes, q::packedBytes(f, n, k));
      std::vector<uint8_t> want(bytes), fromF32(bytes), fromBf(bytes);
      q::packWeights(f, m.f32.data(), n, k, want.data());
      packMatrix(int(f), DType::F32, reinterpret_cast<const uint8_t*>(m.f32.data()), n, k,
                 fromF32.data());
      packMatrix(int(f), DType::BF16, reinterpret_cast<const uint8_t*>(m.bf16.data()), n, k,
                 fromBf.data());
      EXPECT_EQ(fromF32, want);
      EXPECT_EQ(fromBf, want);
      std::string err;
      EXPECT_TRUE(q::checkPacked(f, fromBf.data(), fromBf.size(), n, k, &err)) << err;
    }
  }
}

TEST(PackMatrix, AlignmentAndErrors) {
  EXPECT_EQ(packedAlign(), 64u);
  EXPECT_EQ(alignPacked(0), 0u);
  EXPECT_EQ(alignPacked(1), 64u);
  EXPECT_EQ(alignPacked(64), 64u);
  EXPECT_EQ(alignPacked(65), 128u);
  try {
    packedMatrixBytes(int(q::WeightFormat::Int8), 4, q::kInt8MaxK + 1);
    FAIL() << "int8 with k > kInt8MaxK must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot hold a [4, 65537] matrix"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(packedMatrixBytes(99, 4, 4), Error);
  std::vector<uint8_t> src(64), out(packedMatrixBytes(int(q::WeightFormat::F32), 4, 4));
  try {
    packMatrix(int(q::WeightFormat::F32), DType::I8, src.data(), 4, 4, out.data());
    FAIL() << "an i8 source must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dtype i8"), std::string::npos) << e.what();
  }
}

TEST(SourceSlices, ShapesOfPackedWeights) {
  MatrixStack m;
  ASSERT_TRUE(matrixStack({5, 7}, &m));
  EXPECT_EQ(m.slices, 1);
  EXPECT_EQ(m.n, 5);
  EXPECT_EQ(m.k, 7);
  ASSERT_TRUE(matrixStack({3, 5, 7}, &m));
  EXPECT_EQ(m.slices, 3);
  EXPECT_FALSE(matrixStack({7}, &m));
  EXPECT_FALSE(matrixStack({2, 3, 5, 7}, &m));
  EXPECT_FALSE(matrixStack({0, 7}, &m));
}

TEST(SourceSlices, PerMatrixAndFusedSources) {
  const MatrixStack m{3, 5, 7}; // 3 matrices of 5*7 bf16 = 70 bytes each
  std::vector<ByteRange> out;
  std::string why;
  // One segment per expert, anywhere in any file: kept as they are.
  std::vector<ByteRange> perExpert = {{0, 1000, 70}, {2, 8, 70}, {0, 10, 70}};
  ASSERT_TRUE(sourceSlices(m, 2, perExpert, &out, &why)) << why;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].file, 2u);
  EXPECT_EQ(out[1].offset, 8u);
  // One fused segment: cut into consecutive matrices.
  ASSERT_TRUE(sourceSlices(m, 2, {{1, 100, 210}}, &out, &why)) << why;
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[i].file, 1u);
    EXPECT_EQ(out[i].offset, 100 + 70 * i);
    EXPECT_EQ(out[i].size, 70u);
  }
  // Wrong sizes and counts are refused with the numbers.
  EXPECT_FALSE(sourceSlices(m, 2, {{1, 100, 208}}, &out, &why));
  EXPECT_NE(why.find("holds 208 bytes, 3 matrices need 210"), std::string::npos) << why;
  EXPECT_FALSE(sourceSlices(m, 2, {{0, 0, 70}, {0, 70, 70}}, &out, &why));
  EXPECT_NE(why.find("2 source segments for 3 matrices"), std::string::npos) << why;
  EXPECT_FALSE(sourceSlices(m, 2, {{0, 0, 70}, {0, 70, 69}, {0, 140, 70}}, &out, &why));
  EXPECT_NE(why.find("source segment 1 holds 69 bytes"), std::string::npos) << why;
  EXPECT_FALSE(sourceSlices(m, 2, {}, &out, &why));
}

} // namespace
