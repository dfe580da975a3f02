// Quantized matmul kernels: the quantizers against the original f32 weights, the reference against
// an f32/double product of the original weights, every SIMD kernel the CPU supports against the
// reference on the same packed data (same activation rounding), and ISA dispatch.
#include "kernels/cpu/quant/Kernels.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace kt::cpu::quant {
namespace detail {
void matmulAmxEmulated(const Job& j); // amx_emulated.cpp
} // namespace detail

// Readable test names in failure messages.
void PrintTo(Isa isa, std::ostream* os) {
  *os << isaName(isa);
}

namespace {

struct Shape {
  int64_t n, k, t;
};

// LLM-like data: Gaussian weights with rare large values; activations with a few outlier channels.
std::vector<float> randomWeights(std::mt19937& rng, int64_t n, int64_t k) {
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> w(size_t(n * k));
  for (float& v : w)
    v = nd(rng) * (u(rng) < 0.01f ? 8.f : 1.f);
  return w;
}

std::vector<float> randomActivations(std::mt19937& rng, int64_t t, int64_t k) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(t * k));
  for (int64_t c = 0; c < k; ++c) {
    const float gain = (c % 97 == 13) ? 25.f : 1.f; // outlier channels
    for (int64_t s = 0; s < t; ++s)
      x[s * k + c] = nd(rng) * gain;
  }
  return x;
}

std::vector<uint8_t> pack(WeightFormat f, const std::vector<float>& w, int64_t n, int64_t k) {
  std::vector<uint8_t> blob(packedBytes(f, n, k));
  packWeights(f, w.data(), n, k, blob.data());
  return blob;
}

std::vector<float> dequantAll(WeightFormat f, const std::vector<uint8_t>& blob, int64_t n,
                              int64_t k) {
  std::vector<float> w(size_t(n * k) + 1);
  for (int64_t r = 0; r < n; ++r)
    dequantizeRow(f, blob.data(), n, k, r, w.data() + r * k);
  return w;
}

// Largest error the quantizer may make on each weight of the original matrix w.
std::vector<double> weightErrorBound(WeightFormat f, const std::vector<float>& w, int64_t n,
                                     int64_t k) {
  std::vector<double> b(size_t(n * k), 0.0);
  const int64_t g = groupSize(f);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = w.data() + r * k;
    if (f == WeightFormat::F32)
      continue;
    if (f == WeightFormat::BF16) {
      for (int64_t c = 0; c < k; ++c)
        b[r * k + c] = std::fabs(row[c]) * std::ldexp(1.0, -8);
      continue;
    }
    if (f == WeightFormat::Int8) {
      double amax = 0;
      for (int64_t c = 0; c < k; ++c)
        amax = std::max(amax, double(std::fabs(row[c])));
      for (int64_t c = 0; c < k; ++c)
        b[r * k + c] = amax / 127 * 0.5 * (1 + 1e-5) + 1e-30;
      continue;
    }
    const bool asym = f == WeightFormat::Int4G32Asym || f == WeightFormat::Int4G128Asym;
    for (int64_t c0 = 0; c0 < k; c0 += g) {
      const int64_t c1 = std::min(k, c0 + g);
      double lo = row[c0], hi = row[c0], amax = 0;
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min(lo, double(row[c]));
        hi = std::max(hi, double(row[c]));
        amax = std::max(amax, double(std::fabs(row[c])));
      }
      // f16 scale/min rounding adds <= 2^-11 relative to each; +2^-24 absolute for subnormals.
      const double slack = std::ldexp(1.0, -24);
      double bound;
      if (asym) {
        const double d = (hi - lo) / 15;
        bound = 0.5 * d + std::ldexp(1.0, -10) * (std::fabs(lo) + 15 * d) + 2 * slack;
      } else {
        // Q4_0 style: the largest magnitude maps to -8 exactly; values of the other sign near it
        // clamp at +7, so the bound is one step (not half a step).
        bound = amax / 8 * (1 + std::ldexp(1.0, -9)) + 16 * slack;
      }
      for (int64_t c = c0; c < c1; ++c)
        b[r * k + c] = bound;
    }
  }
  return b;
}

// Double-precision product with explicit weights.
std::vector<double> product(const std::vector<float>& x, const std::vector<float>& w, int64_t n,
                            int64_t k, int64_t t) {
  std::vector<double> y(size_t(n * t));
  for (int64_t s = 0; s < t; ++s)
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c)
        acc += double(x[s * k + c]) * w[r * k + c];
      y[s * n + r] = acc;
    }
  return y;
}

// sum_k |x||w| per output: the scale of f32 rounding in a dot product.
std::vector<double> magnitude(const std::vector<float>& x, const std::vector<float>& w, int64_t n,
                              int64_t k, int64_t t) {
  std::vector<double> m(size_t(n * t));
  for (int64_t s = 0; s < t; ++s)
    for (int64_t r = 0; r < n; ++r) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c)
        acc += std::fabs(double(x[s * k + c]) * w[r * k + c]);
      m[s * n + r] = acc;
    }
  return m;
}

std::string describe(WeightFormat f, const Shape& s) {
  return std::string(formatName(f)) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
         " t=" + std::to_string(s.t);
}

// Odd shapes: k not a multiple of 32/128, n not a multiple of 16, t on both sides of the
// GEMV/GEMM threshold and of the 8/16-token tiles.
std::vector<Shape> testShapes(std::mt19937& rng, int count) {
  const int64_t ns[] = {1, 2, 3, 7, 16, 17, 33, 65, 129};
  const int64_t ks[] = {1, 3, 17, 32, 33, 65, 128, 129, 200, 257, 300};
  const int64_t ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 65};
  // ... plus wide rows so that the GEMM's L2-sized token super-blocks split t (f32: 16 tokens at
  // k = 4096).
  std::vector<Shape> out = {{1, 1, 1},  {17, 129, 1},  {33, 257, 4},   {129, 300, 33},
                            {16, 0, 3}, {64, 2048, 2}, {48, 1408, 20}, {33, 4096, 40}};
  std::uniform_int_distribution<int> pn(0, 8), pk(0, 10), pt(0, 10);
  for (int i = 0; i < count; ++i)
    out.push_back({ns[pn(rng)], ks[pk(rng)], ts[pt(rng)]});
  return out;
}

// ---- formats and quantizers ----

TEST(QuantFormats, NamesRoundTrip) {
  for (WeightFormat f : kAllWeightFormats) {
    WeightFormat g;
    ASSERT_TRUE(parseFormat(formatName(f), &g)) << formatName(f);
    EXPECT_EQ(f, g);
  }
  WeightFormat g;
  EXPECT_FALSE(parseFormat("int3", &g));
  EXPECT_FALSE(parseFormat("", &g));
  EXPECT_EQ(groupSize(WeightFormat::Int4G128Asym), 128);
  EXPECT_EQ(groupSize(WeightFormat::Int8), 0);
}

TEST(QuantFormats, PackedSizesAreAligned) {
  for (WeightFormat f : kAllWeightFormats)
    for (int64_t n : {1, 15, 16, 17, 1408})
      for (int64_t k : {1, 31, 33, 127, 129, 2048}) {
        const size_t bytes = packedBytes(f, n, k);
        EXPECT_EQ(bytes % kPackedAlign, 0u) << formatName(f);
        EXPECT_GE(bytes, size_t(n * k) / 2) << formatName(f);
      }
  EXPECT_EQ(packedBytes(WeightFormat::Int8, 4, kInt8MaxK + 1), 0u);
  EXPECT_EQ(packedBytes(WeightFormat::F32, -1, 4), 0u);
}

TEST(QuantFormats, QuantizerErrorWithinBound) {
  std::mt19937 rng(1);
  for (WeightFormat f : kAllWeightFormats)
    for (Shape s : {Shape{1, 1, 1}, Shape{17, 33, 1}, Shape{33, 129, 1}, Shape{5, 300, 1},
                    Shape{16, 256, 1}}) {
      auto w = randomWeights(rng, s.n, s.k);
      auto blob = pack(f, w, s.n, s.k);
      auto dq = dequantAll(f, blob, s.n, s.k);
      auto bound = weightErrorBound(f, w, s.n, s.k);
      for (int64_t i = 0; i < s.n * s.k; ++i)
        ASSERT_LE(std::fabs(double(dq[i]) - w[i]), bound[i])
            << describe(f, s) << " element " << i << " w=" << w[i] << " dq=" << dq[i];
    }
}

TEST(QuantFormats, Bf16SourceIsExactAndF16SourceConverts) {
  const int64_t n = 5, k = 37;
  std::vector<uint16_t> src(n * k);
  std::mt19937 rng(2);
  for (auto& v : src)
    v = uint16_t(rng() & 0x7f7f) | 0x3c00; // finite, varied
  std::vector<uint8_t> blob(packedBytes(WeightFormat::BF16, n, k));
  packWeights(WeightFormat::BF16, SourceType::BF16, src.data(), n, k, blob.data());
  std::vector<float> row(k);
  for (int64_t r = 0; r < n; ++r) {
    dequantizeRow(WeightFormat::BF16, blob.data(), n, k, r, row.data());
    for (int64_t c = 0; c < k; ++c) {
      uint32_t bits;
      std::memcpy(&bits, &row[c], 4);
      ASSERT_EQ(bits >> 16, src[r * k + c]);
      ASSERT_EQ(bits & 0xffff, 0u);
    }
  }
  // f16 1.0 (0x3c00), -2.0 (0xc000), 0.5 (0x3800) through the f32 packer.
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x3800};
  std::vector<uint8_t> blob2(packedBytes(WeightFormat::F32, 1, 3));
  packWeights(WeightFormat::F32, SourceType::F16, h.data(), 1, 3, blob2.data());
  std::vector<float> r2(3);
  dequantizeRow(WeightFormat::F32, blob2.data(), 1, 3, 0, r2.data());
  EXPECT_EQ(r2, (std::vector<float>{1.f, -2.f, 0.5f}));
}

TEST(QuantFormats, CheckPackedRejectsBadBlobs) {
  const int64_t n = 20, k = 70;
  std::vector<float> w(n * k, 0.25f);
  auto blob = pack(WeightFormat::Int4G32Sym, w, n, k);
  std::string err;
  EXPECT_TRUE(checkPacked(WeightFormat::Int4G32Sym, blob.data(), blob.size(), n, k, &err)) << err;
  EXPECT_FALSE(checkPacked(WeightFormat::Int4G32Asym, blob.data(), blob.size(), n, k, &err));
  EXPECT_NE(err.find("format"), std::string::npos) << err;
  EXPECT_FALSE(checkPacked(WeightFormat::Int4G32Sym, blob.data(), blob.size(), n, k + 1, &err));
  EXPECT_NE(err.find("shape"), std::string::npos) << err;
  EXPECT_FALSE(checkPacked(WeightFormat::Int4G32Sym, blob.data(), blob.size() - 1, n, k, &err));
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;
  auto bad = blob;
  bad[0] = 'X';
  EXPECT_FALSE(checkPacked(WeightFormat::Int4G32Sym, bad.data(), bad.size(), n, k, &err));
  EXPECT_NE(err.find("magic"), std::string::npos) << err;
}

// ---- the reference ----

// matmulRef on packed data vs the exact product of the ORIGINAL weights: the difference must be
// explained by the quantizer's per-weight bound (so a wrong quantizer fails here).
TEST(QuantReference, MatchesOriginalWeightsWithinQuantizationError) {
  std::mt19937 rng(3);
  for (WeightFormat f : kAllWeightFormats)
    for (Shape s : {Shape{17, 129, 3}, Shape{33, 300, 2}, Shape{7, 33, 5}, Shape{64, 1408, 1}}) {
      auto w = randomWeights(rng, s.n, s.k);
      auto x = randomActivations(rng, s.t, s.k);
      auto blob = pack(f, w, s.n, s.k);
      std::vector<float> y(size_t(s.n * s.t));
      matmulRef(f, blob.data(), s.n, s.k, x.data(), s.t, y.data());
      auto exact = product(x, w, s.n, s.k, s.t);
      auto mag = magnitude(x, w, s.n, s.k, s.t);
      auto bound = weightErrorBound(f, w, s.n, s.k);
      for (int64_t i = 0; i < s.t; ++i)
        for (int64_t r = 0; r < s.n; ++r) {
          double tol = 1e-6 * mag[i * s.n + r] + 1e-30;
          for (int64_t c = 0; c < s.k; ++c)
            tol += std::fabs(x[i * s.k + c]) * bound[r * s.k + c];
          ASSERT_NEAR(y[i * s.n + r], exact[i * s.n + r], tol) << describe(f, s);
        }
    }
}

// The activation rounding of each mode stays within its documented per-element bound.
TEST(QuantReference, ActivationRoundingWithinBound) {
  std::mt19937 rng(4);
  for (WeightFormat f : kAllWeightFormats)
    for (ActMode mode : {ActMode::Bf16, ActMode::Int8PerToken, ActMode::Int8PerGroup}) {
      if (mode == ActMode::Int8PerGroup && !isInt4(f))
        continue;
      const Shape s{19, 300, 3};
      auto w = randomWeights(rng, s.n, s.k);
      auto x = randomActivations(rng, s.t, s.k);
      auto blob = pack(f, w, s.n, s.k);
      auto dq = dequantAll(f, blob, s.n, s.k);
      std::vector<float> y0(s.n * s.t), y1(s.n * s.t);
      matmulRef(f, blob.data(), s.n, s.k, x.data(), s.t, y0.data());
      matmulRefAct(mode, f, blob.data(), s.n, s.k, x.data(), s.t, y1.data());
      const int64_t block = mode == ActMode::Int8PerGroup ? groupSize(f) : s.k;
      for (int64_t i = 0; i < s.t; ++i)
        for (int64_t r = 0; r < s.n; ++r) {
          double tol = 1e-6;
          for (int64_t c = 0; c < s.k; ++c) {
            double xb;
            if (mode == ActMode::Bf16) {
              xb = std::fabs(x[i * s.k + c]) * std::ldexp(1.0, -8);
            } else {
              const int64_t c0 = c / block * block, c1 = std::min(s.k, c0 + block);
              double amax = 0;
              for (int64_t cc = c0; cc < c1; ++cc)
                amax = std::max(amax, double(std::fabs(x[i * s.k + cc])));
              xb = amax / 127 * 0.5 * (1 + 1e-5);
            }
            tol += xb * std::fabs(dq[r * s.k + c]);
          }
          ASSERT_NEAR(y1[i * s.n + r], y0[i * s.n + r], tol)
              << formatName(f) << " mode " << int(mode);
        }
    }
}

// ---- kernels vs reference, per ISA ----

class QuantKernel : public ::testing::TestWithParam<Isa> {};

TEST_P(QuantKernel, MatchesReferenceOnOddShapes) {
  const Isa isa = GetParam();
  if (!isaSupported(isa))
    GTEST_SKIP() << "this CPU lacks " << isaName(isa) << " (best: " << isaName(bestSupportedIsa())
                 << ")";
  std::mt19937 rng(100 + int(isa));
  for (WeightFormat f : kAllWeightFormats) {
    const ActMode mode = activationMode(isa, f);
    for (const Shape& s : testShapes(rng, 30)) {
      auto w = randomWeights(rng, s.n, s.k);
      auto x = randomActivations(rng, s.t, s.k);
      auto blob = pack(f, w, s.n, s.k);
      auto dq = dequantAll(f, blob, s.n, s.k);
      std::vector<float> ref(s.n * s.t);
      matmulRefAct(mode, f, blob.data(), s.n, s.k, x.data(), s.t, ref.data());
      auto mag = magnitude(x, dq, s.n, s.k, s.t);

      // Whole range, then the rows split at random (not 16-aligned) points, as a thread pool would.
      std::vector<float> y(s.n * s.t, 12345.f);
      matmul(isa, f, blob.data(), s.n, s.k, x.data(), s.t, y.data(), 0, s.n);
      std::vector<float> ys(s.n * s.t, 12345.f);
      std::uniform_int_distribution<int64_t> cut(0, s.n);
      int64_t a = cut(rng), b = cut(rng);
      if (a > b)
        std::swap(a, b);
      matmul(isa, f, blob.data(), s.n, s.k, x.data(), s.t, ys.data(), 0, a);
      matmul(isa, f, blob.data(), s.n, s.k, x.data(), s.t, ys.data(), a, b);
      matmul(isa, f, blob.data(), s.n, s.k, x.data(), s.t, ys.data(), b, s.n);
      for (int64_t i = 0; i < s.n * s.t; ++i) {
        const double tol = 1e-4 * mag[i] + 1e-6;
        ASSERT_NEAR(y[i], ref[i], tol) << isaName(isa) << " " << describe(f, s) << " at " << i;
        ASSERT_EQ(y[i], ys[i]) << isaName(isa) << " split [" << a << "," << b << ") "
                               << describe(f, s) << " at " << i;
      }
    }
  }
}

TEST_P(QuantKernel, WritesOnlyItsRows) {
  const Isa isa = GetParam();
  if (!isaSupported(isa))
    GTEST_SKIP() << "this CPU lacks " << isaName(isa);
  std::mt19937 rng(7);
  for (WeightFormat f : kAllWeightFormats)
    for (int64_t t : {1, 3, 9, 40}) {
      const int64_t n = 45, k = 70;
      auto w = randomWeights(rng, n, k);
      auto x = randomActivations(rng, t, k);
      auto blob = pack(f, w, n, k);
      std::vector<float> y(n * t, -7.f);
      matmul(isa, f, blob.data(), n, k, x.data(), t, y.data(), 5, 37);
      for (int64_t s = 0; s < t; ++s)
        for (int64_t r = 0; r < n; ++r)
          if (r < 5 || r >= 37)
            ASSERT_EQ(y[s * n + r], -7.f) << formatName(f) << " row " << r;
          else
            ASSERT_NE(y[s * n + r], -7.f) << formatName(f) << " row " << r;
    }
}

// SIMD activation preparation must produce the reference bytes exactly (including NaN/inf,
// denormals, signed zeros and values on rounding ties).
TEST_P(QuantKernel, PreparedActivationsMatchReferenceBytes) {
  const Isa isa = GetParam();
  if (!isaSupported(isa))
    GTEST_SKIP() << "this CPU lacks " << isaName(isa);
  std::mt19937 rng(8);
  for (WeightFormat f : kAllWeightFormats)
    for (int64_t t : {1, 2, 5, 17})
      for (int64_t k : {1, 31, 129, 300}) {
        auto x = randomActivations(rng, t, k);
        const float specials[] = {0.f,  -0.f,  1e-40f, -1e-41f,    3.0e38f,
                                  0.5f, -1.5f, 2.5f,   1.00390625f};
        for (size_t i = 0; i < x.size(); i += 7)
          x[i] = specials[i % 9];
        if (t > 1)
          x[size_t(k)] = NAN; // a bad token: its blocks get NaN scales
        if (t > 2)
          x[size_t(2 * k)] = INFINITY;
        const ActMode mode = activationMode(isa, f);
        const int64_t rows = activationRows(isa, f, t);
        ASSERT_EQ(activationBytes(isa, f, k, t), activationBytesFor(mode, f, k, rows));
        std::vector<uint8_t> a(activationBytes(isa, f, k, t), 0xcd), b(a.size(), 0xab);
        prepareActivations(isa, f, x.data(), k, t, a.data());
        prepareActivationsRef(mode, f, x.data(), k, t, rows, b.data());
        for (size_t i = 0; i < a.size(); ++i)
          ASSERT_EQ(int(a[i]), int(b[i]))
              << isaName(isa) << " " << formatName(f) << " t=" << t << " k=" << k << " byte " << i;
      }
}

// The preparation in row parts (threads of a prefill: prepareActivationRows over a zeroed buffer)
// gives prepareActivations' bytes for any partition of the token rows.
TEST_P(QuantKernel, PreparedActivationRowsInAnyPartsGiveTheSameBytes) {
  const Isa isa = GetParam();
  if (!isaSupported(isa))
    GTEST_SKIP() << "this CPU lacks " << isaName(isa);
  std::mt19937 rng(18);
  for (WeightFormat f : kAllWeightFormats)
    for (int64_t t : {1, 17, 70})
      for (int64_t k : {31, 300}) {
        auto x = randomActivations(rng, t, k);
        if (t > 3)
          x[size_t(3 * k + 1)] = NAN;
        std::vector<uint8_t> whole(activationBytes(isa, f, k, t), 0xcd), parts(whole.size(), 0);
        prepareActivations(isa, f, x.data(), k, t, whole.data());
        // Parts of 1, 2, 3, ... rows, the last one what is left (prepared in reverse order).
        std::vector<std::pair<int64_t, int64_t>> ranges;
        for (int64_t r = 0, n = 1; r < t; r += n, ++n)
          ranges.push_back({r, std::min(t, r + n)});
        for (auto it = ranges.rbegin(); it != ranges.rend(); ++it)
          prepareActivationRows(isa, f, x.data(), k, t, it->first, it->second, parts.data());
        for (size_t i = 0; i < whole.size(); ++i)
          ASSERT_EQ(int(whole[i]), int(parts[i]))
              << isaName(isa) << " " << formatName(f) << " t=" << t << " k=" << k << " byte " << i;
      }
}

// Non-finite weights or activations produce NaN outputs, never silent garbage.
TEST_P(QuantKernel, NonFiniteInputsGiveNaN) {
  const Isa isa = GetParam();
  if (!isaSupported(isa))
    GTEST_SKIP() << "this CPU lacks " << isaName(isa);
  std::mt19937 rng(9);
  const int64_t n = 20, k = 64, t = 2;
  for (WeightFormat f : kAllWeightFormats) {
    auto w = randomWeights(rng, n, k);
    w[3 * k + 5] = NAN; // row 3
    auto x = randomActivations(rng, t, k);
    auto blob = pack(f, w, n, k);
    std::vector<float> y(n * t);
    matmul(isa, f, blob.data(), n, k, x.data(), t, y.data(), 0, n);
    EXPECT_TRUE(std::isnan(y[3])) << formatName(f);
    EXPECT_TRUE(std::isfinite(y[4])) << formatName(f);
    x[k + 1] = INFINITY; // token 1
    matmul(isa, f, blob.data(), n, k, x.data(), t, y.data(), 0, n);
    EXPECT_FALSE(std::isfinite(y[n + 4])) << formatName(f);
    EXPECT_TRUE(std::isfinite(y[4])) << formatName(f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantKernel, ::testing::ValuesIn(kAllIsas),
                         [](const ::testing::TestParamInfo<Isa>& i) {
                           return std::string(isaName(i.param));
                         });

// The AMX kernel's tiling (16-token x 16-row tiles, 2x2 register blocks, K steps of 32 bf16 / 64
// int8, token and row tails, row ranges) against the reference, on a scalar model of the tile
// instructions — so it is checked on CPUs without AMX too. (On AMX CPUs QuantKernel/amx runs the
// real instructions.)
TEST(QuantAmxModel, TiledKernelMatchesReference) {
  if (!isaSupported(Isa::Avx512))
    GTEST_SKIP() << "the AMX kernel's epilogue needs AVX-512";
  std::mt19937 rng(11);
  for (WeightFormat f : {WeightFormat::BF16, WeightFormat::Int8})
    for (Shape s :
         {Shape{1, 1, 5}, Shape{17, 33, 16}, Shape{33, 65, 17}, Shape{45, 129, 33},
          Shape{64, 200, 40}, Shape{20, 300, 64}, Shape{7, 64, 100}, Shape{20, 4096, 70}}) {
      const ActMode mode = f == WeightFormat::BF16 ? ActMode::Bf16 : ActMode::Int8PerToken;
      auto w = randomWeights(rng, s.n, s.k);
      auto x = randomActivations(rng, s.t, s.k);
      auto blob = pack(f, w, s.n, s.k);
      auto dq = dequantAll(f, blob, s.n, s.k);
      const int64_t rows = (s.t + 15) / 16 * 16;
      std::vector<uint8_t> act(activationBytesFor(mode, f, s.k, rows) + 64);
      uint8_t* a = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
      prepareActivationsRef(mode, f, x.data(), s.k, s.t, rows, a);
      std::vector<float> ref(s.n * s.t), y(s.n * s.t, 12345.f);
      matmulRefAct(mode, f, blob.data(), s.n, s.k, x.data(), s.t, ref.data());
      detail::Job j;
      j.w = detail::makeLayout(f, s.n, s.k);
      j.packed = blob.data();
      j.a = detail::makeActLayout(mode, f, s.k, s.t, rows);
      j.act = a;
      j.y = y.data();
      const int64_t cut = s.n / 3; // two calls with a row split that is not 16-aligned
      j.n0 = 0;
      j.n1 = cut;
      if (cut > 0)
        detail::matmulAmxEmulated(j);
      j.n0 = cut;
      j.n1 = s.n;
      detail::matmulAmxEmulated(j);
      auto mag = magnitude(x, dq, s.n, s.k, s.t);
      for (int64_t i = 0; i < s.n * s.t; ++i)
        ASSERT_NEAR(y[i], ref[i], 1e-4 * mag[i] + 1e-6) << describe(f, s) << " at " << i;
    }
}

// ---- dispatch ----

// dequantizeRows (the AVX-512 panel transpose training reads weight blocks with) gives exactly
// dequantizeRow's values for f32 / bf16 / int8, over odd shapes and row ranges that end inside a
// panel; it refuses what it has no fast path for, writing nothing.
TEST(QuantDequantizeRows, MatchesDequantizeRowExactly) {
  std::mt19937 rng(21);
  const float kUntouched = -12345.f;
  for (WeightFormat f : {WeightFormat::F32, WeightFormat::BF16, WeightFormat::Int8})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {17, 33}, {45, 70}, {64, 257}}) {
      auto w = randomWeights(rng, n, k);
      auto blob = pack(f, w, n, k);
      const int64_t ld = k + 3;
      for (int64_t r0 = 0; r0 < n; r0 += 16)
        for (int64_t nr : {int64_t(1), int64_t(16), n - r0 + 5}) {
          std::vector<float> out(static_cast<size_t>(std::max<int64_t>(nr, 1) * ld), kUntouched);
          if (!dequantizeRows(Isa::Avx512, f, blob.data(), n, k, r0, nr, out.data(), ld)) {
            ASSERT_FALSE(isaSupported(Isa::Avx512)) << formatName(f) << " " << n << "x" << k;
            continue;
          }
          std::vector<float> row(static_cast<size_t>(k));
          for (int64_t i = 0; i < nr && r0 + i < n; ++i) {
            dequantizeRow(f, blob.data(), n, k, r0 + i, row.data());
            for (int64_t c = 0; c < k; ++c)
              ASSERT_EQ(out[size_t(i * ld + c)], row[size_t(c)])
                  << formatName(f) << " " << n << "x" << k << " row " << r0 + i << " col " << c;
            for (int64_t c = k; c < ld; ++c) // the padding of each output row stays untouched
              ASSERT_EQ(out[size_t(i * ld + c)], kUntouched);
          }
        }
    }
  std::vector<float> out(64, kUntouched);
  auto w = randomWeights(rng, 20, 40);
  auto blob4 = pack(WeightFormat::Int4G32Sym, w, 20, 40);
  EXPECT_FALSE(dequantizeRows(Isa::Avx512, WeightFormat::Int4G32Sym, blob4.data(), 20, 40, 0, 1,
                              out.data(), 40));
  auto blob8 = pack(WeightFormat::Int8, w, 20, 40);
  EXPECT_FALSE(dequantizeRows(Isa::Avx512, WeightFormat::Int8, blob8.data(), 20, 40, 3, 1,
                              out.data(), 40)); // not a panel start
  EXPECT_FALSE(
      dequantizeRows(Isa::Avx2, WeightFormat::Int8, blob8.data(), 20, 40, 0, 1, out.data(), 40));
  for (float v : out)
    EXPECT_EQ(v, kUntouched);
}

TEST(QuantDispatch, HonoursRequestAndNeverExceedsCpu) {
  const Isa best = bestSupportedIsa();
  EXPECT_TRUE(isaSupported(Isa::Scalar));
  EXPECT_LE(int(detectIsa()), int(best));
  EXPECT_EQ(isaForRequest(nullptr, true), best);
  EXPECT_EQ(isaForRequest("", true), best);
  EXPECT_EQ(isaForRequest("bogus", true), best);
  for (Isa want : kAllIsas) {
    const Isa got = isaForRequest(isaName(want), true);
    EXPECT_LE(int(got), int(best));
    EXPECT_EQ(got, isaSupported(want) ? want : best) << isaName(want);
  }
  // detectIsa() reads KT_ISA once; a fresh request through the environment behaves the same.
  ASSERT_EQ(setenv("KT_ISA", "scalar", 1), 0);
  EXPECT_EQ(isaForRequest(std::getenv("KT_ISA"), true), Isa::Scalar);
  unsetenv("KT_ISA");
}

// Asking for an ISA the CPU lacks runs the best supported one instead (no SIGILL).
TEST(QuantDispatch, UnsupportedIsaIsClamped) {
  const int64_t n = 33, k = 96, t = 6;
  std::mt19937 rng(10);
  auto w = randomWeights(rng, n, k);
  auto x = randomActivations(rng, t, k);
  for (WeightFormat f : kAllWeightFormats) {
    auto blob = pack(f, w, n, k);
    std::vector<float> a(n * t), b(n * t);
    matmul(Isa::Amx, f, blob.data(), n, k, x.data(), t, a.data(), 0, n);
    matmul(bestSupportedIsa(), f, blob.data(), n, k, x.data(), t, b.data(), 0, n);
    EXPECT_EQ(a, b) << formatName(f);
  }
}

} // namespace
} // namespace kt::cpu::quant
