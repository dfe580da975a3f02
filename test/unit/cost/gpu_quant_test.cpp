// kt-compile --gpu-quant int4 as the cost model sees it (compiler/cost/GpuInt8.h): the compute
// dtype's suffix, the bytes of an int4 GPU matrix (the CUDA backend's, kernels/cuda/Int4Format.h),
// the launches and widening traffic of its products, and what that buys: about twice the experts
// of an int8 plan in the same GPU budget, and a decode step priced from the smaller bytes.
#include "compiler/cost/CostModel.h"
#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/GpuInt8.h"
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/Partitioner.h"
#include "kernels/cuda/Int4Format.h"

#include <gtest/gtest.h>

#include <string>

using namespace kt::cost;

namespace {

TEST(GpuQuant, ComputeDtypeSuffixes) {
  GpuDtype d;
  GpuQuant q;
  ASSERT_TRUE(parseGpuComputeDtype("bf16+int4", &d, &q));
  EXPECT_EQ(d, GpuDtype::BF16Int8); // the GEMM-only rule of +int8
  EXPECT_EQ(q, GpuQuant::Int4);
  ASSERT_TRUE(parseGpuComputeDtype("f32+int4", &d, &q));
  EXPECT_EQ(d, GpuDtype::F32Int8);
  EXPECT_EQ(q, GpuQuant::Int4);
  ASSERT_TRUE(parseGpuComputeDtype("f32+int8", &d, &q));
  EXPECT_EQ(q, GpuQuant::Int8);
  ASSERT_TRUE(parseGpuComputeDtype("bf16", &d, &q));
  EXPECT_EQ(d, GpuDtype::BF16);
  EXPECT_EQ(q, GpuQuant::None);
  ASSERT_TRUE(parseGpuComputeDtype("", &d, &q));
  EXPECT_EQ(d, GpuDtype::AsStored);
  EXPECT_FALSE(parseGpuComputeDtype("int4", &d, &q));
  EXPECT_FALSE(parseGpuComputeDtype("+int4", &d, &q));
  EXPECT_FALSE(parseGpuComputeDtype("fp8+int4", &d, &q));
  EXPECT_FALSE(parseGpuComputeDtype("bf16+int3", &d, &q));
  // A +int4 matrix is sized as int4 at group 128, symmetric (f16 scales).
  const QuantSpec s = gpuQuantSpec(GpuQuant::Int4);
  EXPECT_EQ(s.format, WeightFormat::Int4);
  EXPECT_EQ(s.group, 128);
  EXPECT_TRUE(s.symmetric);
  EXPECT_EQ(gpuQuantSpec(GpuQuant::Int8).format, WeightFormat::Int8);
}

// What the partitioner charges for an int4 GPU matrix is what CudaBackend::uploadInt4 allocates
// (packed rows of int4RowBytes + f16 scales per row and group) for real shapes (cols % 128 == 0:
// DeepSeek-V2-Lite's experts, Qwen3's projections, an lm_head); a partial last group is padded by
// the backend (the 130-column fixture rows), which the cost model ignores like the CPU's padding.
TEST(GpuQuant, Int4BytesAreTheBackendsBytes) {
  struct Dims {
    int64_t rows, cols;
  };
  for (Dims s :
       {Dims{1408, 2048}, Dims{2048, 1408}, Dims{4096, 4096}, Dims{102400, 2048}, Dims{1, 128}}) {
    const double backend =
        double(s.rows) * double(kt::cuda::int4RowBytes(s.cols) + 2 * kt::cuda::int4Groups(s.cols));
    EXPECT_EQ(matrixBytes(s.rows, s.cols, gpuQuantSpec(GpuQuant::Int4)), backend)
        << s.rows << "x" << s.cols;
    // int8 (uploadInt8): 1 B per weight and an f32 scale per row.
    EXPECT_EQ(matrixBytes(s.rows, s.cols, gpuQuantSpec(GpuQuant::Int8)),
              double(s.rows) * double(s.cols + 4));
  }
  // 0.5 B + 2 B per 128 weights: 0.516 B per weight, 51.6% of int8's 1.001 at 4096 columns.
  const double w = 4096.0 * 4096.0;
  EXPECT_NEAR(matrixBytes(4096, 4096, gpuQuantSpec(GpuQuant::Int4)) / w, 0.515625, 1e-12);
  EXPECT_EQ(kt::cuda::int4RowBytes(130), 128); // two groups, the second padded
}

// Blas::linearInt4's launches and traffic: the GEMV as for int8 (1 launch per 8 rows), widening
// per row block (widen, activation rounding, GEMM) but no column scaling; the widening reads the
// int4 bytes and writes 2 B per weight.
TEST(GpuQuant, Int4WorkLaunchesAndTraffic) {
  GpuInt8Work w4, w8;
  w4.add(4096, 4096, /*countedLaunches=*/1, WeightFormat::Int4);
  w8.add(4096, 4096, 1);
  const double n = 4096.0 * 4096.0;
  EXPECT_EQ(w4.extraLaunches(1), 0);
  EXPECT_EQ(w4.extraLaunches(12), 1);      // two GEMV launches
  EXPECT_EQ(w4.extraLaunches(512), 3 - 1); // widen + round + GEMM, no scaleColumns
  EXPECT_EQ(w8.extraLaunches(512), 3 + 1 - 1);
  EXPECT_DOUBLE_EQ(w4.bytes, matrixBytes(4096, 4096, gpuQuantSpec(GpuQuant::Int4)));
  EXPECT_DOUBLE_EQ(w8.bytes, n + 4 * 4096);
  EXPECT_DOUBLE_EQ(w4.widenBytes(), w4.bytes + 2 * n);
  EXPECT_DOUBLE_EQ(w4.scaledOutputs(), 0);
  EXPECT_DOUBLE_EQ(w8.scaledOutputs(), 4096);
  // One unit with both kinds (never in one plan, but the sums must stay apart), split by minus().
  GpuInt8Work both = w8;
  both.add(1408, 2048, 1, WeightFormat::Int4);
  const GpuInt8Work d = both.minus(w8);
  EXPECT_EQ(d.matrices, 1);
  EXPECT_EQ(d.int4Matrices, 1);
  EXPECT_DOUBLE_EQ(d.int4Weights, 1408.0 * 2048);
  EXPECT_DOUBLE_EQ(d.bytes, matrixBytes(1408, 2048, gpuQuantSpec(GpuQuant::Int4)));
  EXPECT_EQ(both.extraLaunches(512), 3 + 3 + 1 - 2);
}

// One attention unit, one MoE layer of 64 DeepSeek-V2-Lite-sized experts (gate, up [1408, 2048],
// down [2048, 1408]) held as int8 or int4 on the GPU, an lm_head; sized as PartitionGraph sizes
// them (matrixBytes of gpuQuantSpec).
ModelGraph moeModel(GpuQuant q) {
  const QuantSpec s = gpuQuantSpec(q);
  ModelGraph g;
  g.name = "moe";
  g.numLayers = 1;
  Unit attn;
  attn.kind = UnitKind::Attention;
  attn.opKind = "attention";
  attn.layer = 0;
  attn.hidden = 2048;
  attn.weightBytes = attn.residentBytes = 4 * matrixBytes(2048, 2048, s);
  attn.flopsPerToken = 2 * 4 * 2048.0 * 2048;
  attn.kvBytesPerToken = 1000;
  attn.format = s.format;
  g.units.push_back(attn);
  Unit moe;
  moe.kind = UnitKind::Moe;
  moe.opKind = "shared_experts";
  moe.layer = 0;
  moe.hidden = 2048;
  moe.numExperts = 64;
  moe.topK = 6;
  moe.weightBytes = moe.residentBytes = 64 * 2048 * 4; // the router (f32)
  moe.flopsPerToken = 2 * 64 * 2048;
  moe.expertBytes = 2 * matrixBytes(1408, 2048, s) + matrixBytes(2048, 1408, s);
  moe.expertBytesInt4 = moe.expertBytes;
  moe.expertFlopsPerToken = 2 * 3 * 1408.0 * 2048;
  moe.expertFormat = moe.format = s.format;
  std::string why;
  EXPECT_TRUE(expertProbabilities(nullptr, 0, 64, 6, &moe.expertProb, &why)) << why;
  g.units.push_back(moe);
  Unit head;
  head.kind = UnitKind::LmHead;
  head.opKind = "lm_head";
  head.hidden = 2048;
  head.weightBytes = head.residentBytes = matrixBytes(32000, 2048, s);
  head.flopsPerToken = 2 * 32000.0 * 2048;
  head.format = s.format;
  g.units.push_back(head);
  return g;
}

int expertsOnGpu(const PartitionResult& r) {
  int n = 0;
  for (const auto& layer : r.assignment.expertDevice)
    for (const std::string& d : layer)
      n += d == "gpu:0";
  return n;
}

TEST(GpuQuant, Int4FitsAboutTwiceTheExpertsOfInt8) {
  HardwareProfile hw;
  std::string why;
  ASSERT_TRUE(
      loadHardwareProfile(std::string(KT_EXAMPLES_DIR) + "/hw/xeon-2s-rtx4090.json", &hw, &why))
      << why;
  CostModel m(hw);
  const ModelGraph g8 = moeModel(GpuQuant::Int8), g4 = moeModel(GpuQuant::Int4);
  const double expert8 = g8.units[1].expertBytes, expert4 = g4.units[1].expertBytes;
  EXPECT_NEAR(expert4 / expert8, 0.515, 0.001);
  PartitionOptions o;
  o.kvTokens = 1000;
  // Room for everything else (either format) and 20 int8 experts.
  o.gpuMemBytes = g8.units[0].weightBytes + g8.units[1].weightBytes + g8.units[2].weightBytes +
                  1000 * 1000 + 20 * expert8;
  PartitionResult r8, r4;
  ASSERT_TRUE(partition(g8, m, o, &r8, &why)) << why;
  ASSERT_TRUE(partition(g4, m, o, &r4, &why)) << why;
  const int n8 = expertsOnGpu(r8), n4 = expertsOnGpu(r4);
  std::printf("experts on the GPU in the same budget: int8 %d, int4 %d\n", n8, n4);
  EXPECT_GE(n8, 10);
  EXPECT_LE(n8, 20);
  EXPECT_GE(double(n4), 1.8 * double(n8));

  // Decode prices the GPU's bytes at its bandwidth (and the format's GEMV efficiency): the
  // attention unit's int4 step saves exactly the bytes it does not read (the overheads are the
  // same for both).
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  const Shape decode{1, 0, 1};
  const double t8 = m.unitTime(g8.units[0], gpu, decode), t4 = m.unitTime(g4.units[0], gpu, decode);
  const double bw = m.bandwidth(gpu);
  const double read8 = g8.units[0].weightBytes / (bw * m.gemvEfficiency(gpu, WeightFormat::Int8));
  const double read4 = g4.units[0].weightBytes / (bw * m.gemvEfficiency(gpu, WeightFormat::Int4));
  EXPECT_NEAR(t8 - t4, read8 - read4, 1e-9);
  EXPECT_LT(read4, 0.6 * read8);
  std::printf("decode of 4 [2048, 2048] matrices: int8 %.1f us, int4 %.1f us\n", t8 * 1e6,
              t4 * 1e6);
}

} // namespace
