// packForGpu (runtime/exec/cuda/GpuFormat): the host conversion shared by the CUDA backend's
// upload and the prefill-offload expert streaming, against scalar references written here, on
// randomized odd shapes (columns not a multiple of 128 or of 2), from f32 and bf16 sources, with
// and without the thread pool. Host code only: runs without a GPU.
#include "kernels/cpu/quant/QuantMatmul.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/PackedWiden.h"
#include "runtime/exec/cuda/GpuFormat.h"
#include "runtime/support/ThreadPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

using namespace kt;
using namespace kt::cudaops;

namespace {

// bf16 by rounding the f32 bits to nearest even, written independently of GpuFormat.cpp: the
// bf16 neighbours below and above x, and the nearer one (the even one on a tie).
uint16_t refBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
  const uint32_t rest = u & 0xffffu;
  if (rest < 0x8000u)
    return uint16_t(lo >> 16);
  if (rest > 0x8000u)
    return uint16_t(hi >> 16);
  return uint16_t(((lo >> 16) & 1u) ? hi >> 16 : lo >> 16);
}

float bf16ToF32(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Source {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  int64_t rows, cols;
  cpu::MatrixView view(bool asBf16) const {
    cpu::MatrixView v;
    v.data = asBf16 ? reinterpret_cast<const uint8_t*>(bf16.data())
                    : reinterpret_cast<const uint8_t*>(f32.data());
    v.dtype = asBf16 ? DType::BF16 : DType::F32;
    v.rows = rows;
    v.cols = cols;
    return v;
  }
  // The values the source holds (bf16 sources: the rounded ones).
  float at(bool asBf16, int64_t r, int64_t c) const {
    const size_t i = size_t(r * cols + c);
    return asBf16 ? bf16ToF32(bf16[i]) : f32[i];
  }
};

Source randomSource(std::mt19937& rng, int64_t rows, int64_t cols) {
  Source s{{}, {}, rows, cols};
  std::normal_distribution<float> n(0.f, 0.05f);
  s.f32.resize(size_t(rows * cols));
  for (float& x : s.f32)
    x = n(rng);
  if (rows > 2) // an all-zero row (int8 scale 1, int4 scales 0) and one large outlier
    std::fill_n(s.f32.begin() + cols, cols, 0.f);
  s.f32[0] = 3.5f;
  for (float x : s.f32)
    s.bf16.push_back(refBf16(x));
  return s;
}

// The GPU's host int4 quantizer, out of line: inlined into the test body, GCC 12 cannot bound
// `cols` and warns (-Wstringop-overflow) about its memset.
[[gnu::noinline]] void refInt4Row(const float* w, int64_t cols, uint8_t* packed, uint16_t* scales) {
  cuda::quantizeInt4Row(w, cols, packed, scales);
}

struct Shape {
  int64_t rows, cols;
};

std::vector<Shape> shapes() {
  std::vector<Shape> v = {{1, 1}, {3, 7}, {5, 128}, {2, 129}, {7, 255}, {64, 130}, {65, 384}};
  std::mt19937 rng(7);
  for (int i = 0; i < 6; ++i)
    v.push_back({1 + int64_t(rng() % 97), 1 + int64_t(rng() % 300)});
  return v;
}

} // namespace

TEST(GpuFormat, SizesAndFormats) {
  EXPECT_EQ(gpuDataBytes(GpuFormat::F32, 3, 5), 60u);
  EXPECT_EQ(gpuDataBytes(GpuFormat::BF16, 3, 5), 30u);
  EXPECT_EQ(gpuDataBytes(GpuFormat::Int8, 3, 5), 15u);
  EXPECT_EQ(gpuScaleBytes(GpuFormat::Int8, 3, 5), 12u);
  EXPECT_EQ(gpuScaleBytes(GpuFormat::F32, 3, 5), 0u);
  EXPECT_EQ(gpuDataBytes(GpuFormat::Int4, 3, 129), size_t(3 * cuda::int4RowBytes(129)));
  EXPECT_EQ(gpuScaleBytes(GpuFormat::Int4, 3, 129), size_t(3 * cuda::int4Groups(129) * 2));
  using plan::DType;
  using plan::QuantScheme;
  EXPECT_EQ(gemmFormat(QuantScheme::None, DType::F32), GpuFormat::F32);
  EXPECT_EQ(gemmFormat(QuantScheme::None, DType::BF16), GpuFormat::BF16);
  EXPECT_EQ(gemmFormat(QuantScheme::Int8PerChannel, DType::BF16), GpuFormat::Int8);
  EXPECT_EQ(gemmFormat(QuantScheme::Int4Group, DType::F32), GpuFormat::Int4);
}

TEST(GpuFormat, MatchesScalarReferences) {
  std::mt19937 rng(2024);
  ThreadPool pool(3);
  for (const Shape& sh : shapes())
    for (bool fromBf16 : {false, true})
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        const Source src = randomSource(rng, sh.rows, sh.cols);
        const cpu::MatrixView v = src.view(fromBf16);
        const std::string what = std::to_string(sh.rows) + "x" + std::to_string(sh.cols) +
                                 (fromBf16 ? " from bf16" : " from f32") +
                                 (p ? ", pool" : ", one thread");
        const size_t n = size_t(sh.rows * sh.cols);
        // f32: the source's values exactly.
        std::vector<float> f(n);
        ASSERT_TRUE(packForGpu(v, GpuFormat::F32, f.data(), nullptr, p)) << what;
        for (int64_t r = 0; r < sh.rows; ++r)
          for (int64_t c = 0; c < sh.cols; ++c)
            ASSERT_EQ(f[size_t(r * sh.cols + c)], src.at(fromBf16, r, c)) << what;
        // bf16: round to nearest even (a bf16 source is copied bit for bit).
        std::vector<uint16_t> b(n);
        ASSERT_TRUE(packForGpu(v, GpuFormat::BF16, b.data(), nullptr, p)) << what;
        for (size_t i = 0; i < n; ++i)
          ASSERT_EQ(b[i], refBf16(src.at(fromBf16, int64_t(i) / sh.cols, int64_t(i) % sh.cols)))
              << what << " element " << i;
        // int8: scale = max|row| / 127 (1 for a zero row), q = round-half-even(w / scale).
        std::vector<int8_t> q(n);
        std::vector<float> scales(size_t(sh.rows));
        ASSERT_TRUE(packForGpu(v, GpuFormat::Int8, q.data(), scales.data(), p)) << what;
        for (int64_t r = 0; r < sh.rows; ++r) {
          double amax = 0;
          for (int64_t c = 0; c < sh.cols; ++c)
            amax = std::max(amax, std::fabs(double(src.at(fromBf16, r, c))));
          const float scale = amax > 0 ? float(amax) / 127.f : 1.f;
          ASSERT_EQ(scales[size_t(r)], scale) << what << " row " << r;
          for (int64_t c = 0; c < sh.cols; ++c) {
            const float w = src.at(fromBf16, r, c);
            const int8_t got = q[size_t(r * sh.cols + c)];
            EXPECT_LE(std::abs(got), 127);
            // Within half a step of w / scale (round-to-nearest), error of the f32 division aside.
            EXPECT_LE(std::fabs(double(got) - double(w) / double(scale)), 0.5 + 1e-4)
                << what << " (" << r << ", " << c << ")";
          }
        }
        // int4: row by row what the GPU's own host quantizer (Int4Format.h) writes.
        const int64_t rowBytes = cuda::int4RowBytes(sh.cols), groups = cuda::int4Groups(sh.cols);
        std::vector<uint8_t> packed(size_t(sh.rows * rowBytes)), want(packed.size());
        std::vector<uint16_t> gs(size_t(sh.rows * groups)), wantGs(gs.size());
        ASSERT_TRUE(packForGpu(v, GpuFormat::Int4, packed.data(), gs.data(), p)) << what;
        std::vector<float> row(static_cast<size_t>(sh.cols));
        for (int64_t r = 0; r < sh.rows; ++r) {
          for (int64_t c = 0; c < sh.cols; ++c)
            row[size_t(c)] = src.at(fromBf16, r, c);
          refInt4Row(row.data(), sh.cols, want.data() + r * rowBytes, wantGs.data() + r * groups);
        }
        EXPECT_EQ(packed, want) << what;
        EXPECT_EQ(gs, wantGs) << what;
      }
}

TEST(GpuFormat, Int4RefusesNonFiniteNamingTheRow) {
  Source src{{}, {}, 9, 140};
  src.f32.assign(size_t(9 * 140), 0.25f);
  src.f32[size_t(6 * 140 + 131)] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> packed(size_t(9 * cuda::int4RowBytes(140)));
  std::vector<uint16_t> gs(size_t(9 * cuda::int4Groups(140)));
  int64_t bad = -1;
  ThreadPool pool(2);
  EXPECT_FALSE(packForGpu(src.view(false), GpuFormat::Int4, packed.data(), gs.data(), &pool, &bad));
  EXPECT_EQ(bad, 6);
  // The other formats carry the value (the GPU computes what the checkpoint says).
  std::vector<float> f(src.f32.size());
  EXPECT_TRUE(packForGpu(src.view(false), GpuFormat::F32, f.data(), nullptr, nullptr));
  EXPECT_TRUE(std::isnan(f[size_t(6 * 140 + 131)]));
}

// Prefill offload widens CPU-packed experts on the GPU (kernels/cuda/PackedWiden.h) instead of
// converting them here; its host reference must give exactly what packForGpu made of the same
// packed view (rowToF32, then f32 or bf16), so streamed experts keep today's weights. The GPU
// kernel is compared with widenPackedRows in packed_widen_cuda_test (CudaPackedWiden).
TEST(GpuFormat, PackedViewWidensAsPackForGpuConverts) {
  namespace q = kt::cpu::quant;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 0.05f);
  ThreadPool pool(2);
  for (q::WeightFormat f : q::kAllWeightFormats)
    for (auto [n, k] : {std::pair<int64_t, int64_t>{17, 33}, {40, 129}, {3, 200}}) {
      SCOPED_TRACE(std::string(q::formatName(f)) + " [" + std::to_string(n) + ", " +
                   std::to_string(k) + "]");
      std::vector<float> w(static_cast<size_t>(n * k));
      for (float& x : w)
        x = nd(rng);
      std::vector<uint8_t> blob(q::packedBytes(f, n, k));
      q::packWeights(f, w.data(), n, k, blob.data());
      cpu::MatrixView v;
      v.data = blob.data();
      v.rows = n;
      v.cols = k;
      v.packed = int32_t(f);
      EXPECT_EQ(packedBlobBytes(v), blob.size());
      const cuda::PackedGeom g = cuda::packedGeom(f, n, k);
      for (GpuFormat planFormat : {GpuFormat::F32, GpuFormat::BF16, GpuFormat::Int8}) {
        const GpuFormat out = widenedFormat(planFormat);
        const size_t bytes = gpuDataBytes(out, n, k);
        std::vector<uint8_t> host(bytes), widened(bytes);
        ASSERT_TRUE(packForGpu(v, out, host.data(), nullptr, &pool));
        cuda::widenPackedRows(g, blob.data(), out == GpuFormat::BF16, widened.data(), 0, n);
        EXPECT_EQ(std::memcmp(host.data(), widened.data(), bytes), 0)
            << "plan format " << gpuFormatName(planFormat);
      }
    }
}
