// compiler/cost with the probe's runtime-shaped fields (issue #6): the decode chain of the
// runtime's own kernels (decode_kernel_us, decode_gemv_gbs, decode_moe_gbs) for decode-sized GPU
// steps in graph and eager mode, the GPU prefill attention rate by prompt length
// (prefill_attention_gflops), the CPU's whole routed-expert path by rows per expert
// (expert_rows_gflops), and the parser's errors for each.
#include "compiler/cost/CostModel.h"
#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/GpuLaunches.h"
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/Predict.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>

namespace kt::cost {
namespace {

constexpr double kMiB = 1 << 20, kUs = 1e-6;

// One NUMA node of 100 GB/s; one GPU of 1000 GB/s at 100 TFLOP/s, 5 us link latency, eager
// launches at 6 us; `gpuExtra` and `cpuExtra` are spliced into the GPU's and the CPU's fields.
std::string profileText(const std::string& gpuExtra, const std::string& cpuExtra = "") {
  return R"({"name": "unit", "source": "placeholder",
  "cpu": {"isa": ["avx512", "amx"],
          "numa_nodes": [{"cores": 8, "memory_bytes": "64GiB", "bandwidth_gbs": 100}],
          "gemv_efficiency": {"f32": 1.0}, )" +
         cpuExtra + R"(
          "gemm_gflops": {"avx512": {"f32": 1000}, "amx": {"bf16": 20000, "int8": 40000}}},
  "gpus": [{"memory_bytes": "80GiB", "bandwidth_gbs": 1000, "gemv_efficiency": {"f32": 1.0},
            "gemm_tflops": {"f32": 100}, "launch_overhead_us": 6, )" +
         gpuExtra + R"(
            "link": {"h2d_gbs": 10, "d2h_gbs": 20, "latency_us": 5}}]})";
}

HardwareProfile parsed(const std::string& text) {
  HardwareProfile p;
  std::string error;
  EXPECT_TRUE(parseHardwareProfile(text, "unit.json", &p, &error)) << error;
  return p;
}

std::string errorOf(const std::string& text) {
  HardwareProfile p;
  std::string error;
  EXPECT_FALSE(parseHardwareProfile(text, "hw.json", &p, &error));
  return error;
}

// The decode chain: 3 us per kernel replayed, 10 us eager; 1-token bf16 products at 500 GB/s for
// 1 MiB matrices and 900 GB/s for 16 MiB; the fused MoE kernels at 1500 GB/s for experts of
// 9 MiB, 1800 for 18 MiB (decode_kernel_us first: the rates are net of it).
const char* kChain = R"("decode_kernel_us": {"graph": 3, "eager": 10},
            "decode_gemv_gbs": {"bf16": {"1048576": 500, "16777216": 900}},
            "decode_moe_gbs": {"bf16": {"9437184": 1500, "18874368": 1800}},)";

Unit bf16Linear(double bytes, double matrices, double launches) {
  Unit u;
  u.kind = UnitKind::Linear;
  u.opKind = "linear";
  u.weightBytes = bytes;
  u.flopsPerToken = bytes; // 2 flops per 2-byte weight: negligible at 1 token on this GPU
  u.format = WeightFormat::BF16;
  u.matrices = matrices;
  u.gpu.perStep = launches;
  u.hidden = 2048;
  return u;
}

// An attention unit of `kind` with `heads` query heads and `flopsPerPair` FLOPs per (token,
// position) pair, no weights: what the attention-rate tests price.
Unit attentionUnit(UnitKind kind, double flopsPerPair, int heads) {
  Unit u;
  u.kind = kind;
  u.attnFlopsPerPair = flopsPerPair;
  u.attnHeads = heads;
  u.hidden = 2048;
  return u;
}

TEST(ProbeFields, ParseIntoTheProfile) {
  HardwareProfile p = parsed(profileText(
      std::string(kChain) + R"("prefill_attention_gflops": {"mla": {"512": 800, "2048": 400}},)",
      R"("expert_rows_gflops": {"int8": {"8": 1000, "32": 4000}},)"));
  const AcceleratorProfile& g = p.gpus[0];
  EXPECT_EQ(g.decodeGraphKernelUs, 3);
  EXPECT_EQ(g.decodeEagerKernelUs, 10);
  EXPECT_EQ(g.decodeGemvGBs.at(WeightFormat::BF16, kMiB), 500);
  EXPECT_EQ(g.decodeGemvGBs.at(WeightFormat::BF16, 4 * kMiB), 700);  // halfway in log2
  EXPECT_EQ(g.decodeGemvGBs.at(WeightFormat::Int8, 64 * kMiB), 900); // int8 -> bf16, held flat
  EXPECT_EQ(g.decodeMoeGBs.at(WeightFormat::BF16, 9437184), 1500);
  EXPECT_EQ(g.prefillAttentionGflops.atKey("mla", 1024), 600);
  EXPECT_EQ(p.cpu.expertRowsGflops.at(WeightFormat::Int8, 16), 2500);
  // A profile without them (every profile before the probe learnt them) has none.
  HardwareProfile old = parsed(profileText(""));
  EXPECT_EQ(old.gpus[0].decodeGraphKernelUs, 0);
  EXPECT_TRUE(old.gpus[0].decodeGemvGBs.empty());
  EXPECT_TRUE(old.gpus[0].prefillAttentionGflops.empty());
  EXPECT_TRUE(old.cpu.expertRowsGflops.empty());
  HardwareProfile device;
  std::string error;
  EXPECT_TRUE(loadHardwareProfile(
      std::string(KT_EXAMPLES_DIR) + "/hw/device-h100-xeon-measured.json", &device, &error))
      << error;
}

TEST(ProbeFields, ErrorsNameTheField) {
  EXPECT_EQ(errorOf(profileText(R"("decode_kernel_us": {"eager": 10},)")),
            "hw.json: gpus[0].decode_kernel_us.graph: missing (required)");
  EXPECT_EQ(errorOf(profileText(R"("decode_kernel_us": {"graph": 0},)")),
            "hw.json: gpus[0].decode_kernel_us.graph: expected a positive number, got 0");
  EXPECT_EQ(errorOf(profileText(R"("decode_kernel_us": {"graph": 3, "replay": 1},)")),
            "hw.json: gpus[0].decode_kernel_us.replay: unknown field (expected one of: graph, "
            "eager)");
  EXPECT_EQ(errorOf(profileText(R"("decode_kernel_us": 3,)")),
            "hw.json: gpus[0].decode_kernel_us: expected an object, got 3");
  EXPECT_EQ(
      errorOf(profileText(R"("decode_kernel_us": {"graph": 3},
            "decode_gemv_gbs": {"bf16": {"1MiB": 500}},)")),
      "hw.json: gpus[0].decode_gemv_gbs.bf16.1MiB: expected a matrix size in bytes (a positive "
      "integer) as the key");
  EXPECT_EQ(errorOf(profileText(R"("decode_kernel_us": {"graph": 3},
            "decode_moe_gbs": {"fp8": {"1048576": 500}},)")),
            "hw.json: gpus[0].decode_moe_gbs.fp8: unknown weight format (expected f32, bf16, f16, "
            "int8 or int4)");
  // The rates are net of the chain's per-kernel cost: without it they mean nothing.
  EXPECT_EQ(errorOf(profileText(R"("decode_gemv_gbs": {"bf16": {"1048576": 500}},)")),
            "hw.json: gpus[0].decode_kernel_us: missing: decode_gemv_gbs and decode_moe_gbs are "
            "rates beyond its per-kernel cost, so they need decode_kernel_us.graph");
  EXPECT_EQ(errorOf(profileText(R"("prefill_attention_gflops": {"mha": {"512": 1}},)")),
            "hw.json: gpus[0].prefill_attention_gflops.mha: unknown name (expected gqa or mla)");
  EXPECT_EQ(errorOf(profileText(R"("prefill_attention_gflops": {"mla": {"512": -1}},)")),
            "hw.json: gpus[0].prefill_attention_gflops.mla.512: expected a positive number, got "
            "-1");
  EXPECT_EQ(errorOf(profileText("", R"("expert_rows_gflops": {"int8": {"0": 5}},)")),
            "hw.json: cpu.expert_rows_gflops.int8.0: expected a row count (a positive integer) as "
            "the key");
  EXPECT_EQ(errorOf(profileText("", R"("expert_rows_gflops": {"int8": {}},)")),
            "hw.json: cpu.expert_rows_gflops.int8: needs at least one point (\"ROWS\": GFLOP/s)");
}

// Decode-sized steps: each 1-token product streams its matrix at the measured rate for its size,
// and each kernel costs the chain's per-kernel time — replayed (graph) or issued eagerly, where
// every launch waits its issue on the host and the products' work runs beyond it.
TEST(ProbeFields, DecodeChainPricesKernelsAsMeasured) {
  CostModel m(parsed(profileText(kChain))), old(parsed(profileText("")));
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Shape graph{1, 0, 1}, eager{1, 0, 1};
  graph.graphs = true;
  // One 4 MiB matrix, 2 launches (bf16: rounding + GEMV): 700 GB/s.
  Unit small = bf16Linear(4 * kMiB, 1, 2);
  const double smallWork = 4 * kMiB / 700e9;
  EXPECT_NEAR(m.unitTime(small, gpu, graph), smallWork + 2 * 3 * kUs, 1e-12);
  EXPECT_NEAR(m.unitTime(small, gpu, eager), smallWork + 2 * 10 * kUs, 1e-12);
  // Two 16 MiB matrices, 4 launches: 900 GB/s; eagerly still the issue plus the work, though the
  // GPU's work alone (with the per-kernel time) is longer than the issue alone.
  Unit large = bf16Linear(32 * kMiB, 2, 4);
  const double largeWork = 32 * kMiB / 900e9;
  ASSERT_GT(largeWork + 4 * 3 * kUs, 4 * 10 * kUs);
  EXPECT_NEAR(m.unitTime(large, gpu, graph), largeWork + 4 * 3 * kUs, 1e-12);
  EXPECT_NEAR(m.unitTime(large, gpu, eager), largeWork + 4 * 10 * kUs, 1e-12);
  // The same bytes as one matrix (a hand-built unit: matrices 0) stream at the 32 MiB rate.
  Unit whole = bf16Linear(32 * kMiB, 0, 4);
  EXPECT_NEAR(m.unitTime(whole, gpu, graph), largeWork + 4 * 3 * kUs, 1e-12);
  // Prefill is not a decode-sized step: unchanged by the chain's numbers.
  EXPECT_DOUBLE_EQ(m.unitTime(large, gpu, {512, 0, 1}), old.unitTime(large, gpu, {512, 0, 1}));
  // Old profiles keep their decode prices: bytes at HBM speed, eager launches at 6 us.
  EXPECT_NEAR(old.unitTime(small, gpu, eager), 2 * 6 * kUs, 1e-12);
  // Without decode_gemv_gbs the chain's kernel costs apply and the bytes stream at HBM speed.
  CostModel kernelsOnly(parsed(profileText(R"("decode_kernel_us": {"graph": 3},)")));
  EXPECT_NEAR(kernelsOnly.unitTime(large, gpu, graph), 32 * kMiB / 1000e9 + 4 * 3 * kUs, 1e-12);
  EXPECT_NEAR(kernelsOnly.unitTime(small, gpu, eager), 4 * kMiB / 1000e9 + 2 * 6 * kUs,
              1e-12); // eager: 6 us
}

// A MoE layer decoded on the GPU as a replayed graph: the router's product at its size, the
// shared experts' and the routed experts' fused decode kernels at their expert sizes, plus every
// launch at the chain's 3 us.
TEST(ProbeFields, DecodeChainPricesTheFusedMoeKernels) {
  CostModel m(parsed(profileText(kChain)));
  Device gpu, cpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  const double expert = 9437184, shared = 2 * expert, router = kMiB;
  Unit u;
  u.kind = UnitKind::Moe;
  u.opKind = "shared_experts";
  u.layer = 1;
  u.numExperts = 64;
  u.topK = 6;
  u.expertBytes = expert;
  u.expertFlopsPerToken = expert;
  u.expertFormat = u.format = WeightFormat::BF16;
  u.weightBytes = router + shared;
  u.sharedBytes = shared;
  u.flopsPerToken = router + shared;
  u.sharedFlopsPerToken = shared;
  u.hidden = 2048;
  u.gpu = moeLaunches(/*bf16=*/true, /*sharedExperts=*/true, /*sharedExpertGate=*/false);
  std::string why;
  ASSERT_TRUE(expertProbabilities(nullptr, 1, 64, 6, &u.expertProb, &why)) << why;
  ModelGraph g;
  g.numLayers = 1;
  g.units = {u};
  Assignment a;
  a.unitDevice = {"gpu:0"};
  a.expertDevice = {std::vector<std::string>(64, "gpu:0")};
  a.prefillOffloadMinTokens = {0};
  a.kvBytes = {0};
  const GpuLaunches d = u.gpu.at(1);
  ASSERT_EQ(d.perStep, 6);            // router (2), top-k, combine, shared experts (2)
  ASSERT_EQ(d.gpuExpertsLaunches, 2); // gate/up and down for all pairs
  const double touched = 6;           // 1 token: its top-6
  const double expected = (router / 500e9 + 4 * 3 * kUs) +            // router, top-k, combine
                          (shared / 1800e9 + 2 * 3 * kUs) +           // shared experts
                          (touched * expert / 1500e9 + 2 * 3 * kUs) + // routed experts
                          m.transferTime(gpu, cpu, 2048 * 4.0);       // the logits' row
  EXPECT_NEAR(predictStepSeconds(g, m, a, {1, 0, 1}, false), expected, 1e-9);
  // Eagerly (the same layer with its experts computed by expertsTime on their own): the fused
  // kernels' 2 launches wait 10 us each on the host, and the experts' 57 MB take 38 us on the
  // GPU after that.
  Shape eager{1, 0, 1};
  std::vector<int> all(64);
  for (int e = 0; e < 64; ++e)
    all[size_t(e)] = e;
  EXPECT_NEAR(m.expertsTime(u, all, gpu, eager), touched * expert / 1500e9 + 2 * 10 * kUs, 1e-9);
}

// GPU prefill attention runs at the probe's rate for the prompt's length (a causal prefill of L
// tokens gives each block L/2 keys on average), interpolated in log2 and held flat outside.
TEST(ProbeFields, GpuPrefillAttentionRateByPromptLength) {
  const std::string rates = R"("attention_gflops": {"mla": 800},
            "attention_block_gflops": {"mla": 4}, "sm_count": 132,)";
  CostModel m(parsed(
      profileText(rates + R"("prefill_attention_gflops": {"mla": {"512": 800, "2048": 400}},)"))),
      old(parsed(profileText(rates)));
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = attentionUnit(UnitKind::MlaAttention, 1000, 16);
  // (A hand-built unit without launch counts pays one launch overhead, 6 us, per kt op.)
  auto pairs = [](double n) { return n * (n + 1) / 2 * 1000; };
  const double op = 6 * kUs;
  EXPECT_NEAR(m.unitTime(u, gpu, {512, 0, 1}), pairs(512) / 800e9 + op, 1e-12);
  EXPECT_NEAR(m.unitTime(u, gpu, {1024, 0, 1}), pairs(1024) / 600e9 + op, 1e-12);
  EXPECT_NEAR(m.unitTime(u, gpu, {4096, 0, 1}), pairs(4096) / 400e9 + op, 1e-12);
  EXPECT_NEAR(old.unitTime(u, gpu, {2048, 0, 1}), pairs(2048) / 800e9 + op, 1e-12); // 512's rate
  // Two sequences of 1024 tokens: the rate of 1024 tokens per sequence.
  EXPECT_NEAR(m.unitTime(u, gpu, {2048, 0, 2}), 2 * pairs(1024) / 600e9 + op, 1e-12);
  // Decode is not a prefill: the one-block rules as before (16 x 16 splits x 4 GFLOP/s).
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, {1, 511, 1}), old.unitTime(u, gpu, {1, 511, 1}));
  // GQA has no curve here: attention_gflops' fallback (the f32 GEMM rate).
  u.kind = UnitKind::Attention;
  EXPECT_NEAR(m.unitTime(u, gpu, {1024, 0, 1}), pairs(1024) / 100e12 + op, 1e-12);
}

// A bf16 unit whose GPU keeps one matrix f32 (MLA's kv_b_proj, multiplied by the absorbed
// attention's batched f32 GEMMs): a prefill prices those FLOPs at the f32 GEMM rate and the rest
// at bf16's; on a CPU the split does not apply (the CPU's forms have their own rates).
TEST(ProbeFields, GpuF32MatricesOfABf16UnitRunAtTheF32Rate) {
  CostModel m(parsed(profileText(R"("gemm_tflops": {"f32": 50, "bf16": 800},)")));
  Device gpu, cpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  Unit u = bf16Linear(/*bytes=*/1 * kMiB, /*matrices=*/2, /*launches=*/0);
  u.flopsPerToken = 30e6;
  const double tokens = 4096, launch = 6 * kUs; // one kt op's launch overhead
  const double allBf16 = m.unitTime(u, gpu, {tokens, 0, 1});
  EXPECT_NEAR(allBf16, tokens * 30e6 / 800e12 + launch, 1e-12);
  u.gpuF32FlopsPerToken = 4e6;
  EXPECT_NEAR(m.unitTime(u, gpu, {tokens, 0, 1}),
              tokens * 26e6 / 800e12 + tokens * 4e6 / 50e12 + launch, 1e-12);
  Unit onCpu = u;
  onCpu.gpuF32FlopsPerToken = 0;
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {tokens, 0, 1}), m.unitTime(onCpu, cpu, {tokens, 0, 1}));
}

// The CPU's attention kernels by prompt length (cpu.prefill_attention_gflops), as the GPU's: a
// prefill reads the curve at its tokens per sequence; decode keeps attention_gflops.
TEST(ProbeFields, CpuPrefillAttentionRateByPromptLength) {
  const std::string rates = R"("attention_gflops": {"gqa": 300},)";
  CostModel m(parsed(profileText(
      "", rates + R"("prefill_attention_gflops": {"gqa": {"128": 100, "512": 400}},)"))),
      old(parsed(profileText("", rates)));
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  const Unit u = attentionUnit(UnitKind::Attention, 1000, 32);
  auto pairs = [](double n) { return n * (n + 1) / 2 * 1000; };
  const double base = old.unitTime(u, cpu, {512, 0, 1}) - pairs(512) / 300e9; // the op overhead
  EXPECT_NEAR(m.unitTime(u, cpu, {512, 0, 1}), pairs(512) / 400e9 + base, 1e-12);
  EXPECT_NEAR(m.unitTime(u, cpu, {256, 0, 1}), pairs(256) / 250e9 + base, 1e-12);   // log2 midway
  EXPECT_NEAR(m.unitTime(u, cpu, {2048, 0, 1}), pairs(2048) / 400e9 + base, 1e-12); // held flat
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {1, 511, 1}), old.unitTime(u, cpu, {1, 511, 1}));
  EXPECT_EQ(errorOf(profileText("", R"("prefill_attention_gflops": {"mha": {"512": 1}},)")),
            "hw.json: cpu.prefill_attention_gflops.mha: unknown name (expected gqa or mla)");
}

// A CPU decode's attention with the runtime's decode step timed by context
// (cpu.decode_attention_gflops): at that rate, after the projections' weight streaming (not
// hidden under it), its cache read in the rate; without the curve, inside the roofline as before.
TEST(ProbeFields, CpuDecodeAttentionRunsAfterTheProjections) {
  const std::string rates = R"("attention_gflops": {"mla": 3000},)";
  CostModel m(parsed(profileText(
      "", rates + R"("decode_attention_gflops": {"mla": {"512": 100, "2048": 400}},)"))),
      old(parsed(profileText("", rates)));
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  Unit u = attentionUnit(UnitKind::MlaAttention, 34816, 16); // DeepSeek-V2-Lite's absorbed MLA
  u.kvBytesPerToken = 576 * 4;
  u.weightBytes = 10e6; // 10 MB of projections at 100 GB/s: 100 us
  u.readsWholeWeights = true;
  const double weights = 10e6 / 100e9, overhead = old.unitTime(Unit{}, cpu, {1, 0, 1});
  // 511 cached + 1 new = 512 positions at 100 GFLOP/s, after the 100 us of weights.
  EXPECT_NEAR(m.unitTime(u, cpu, {1, 511, 1}), weights + 512 * 34816 / 100e9 + overhead, 1e-9);
  // 1024 positions: halfway in log2 (250 GFLOP/s); a batch of 2 sequences reads twice.
  EXPECT_NEAR(m.unitTime(u, cpu, {2, 1023, 2}), weights + 2 * 1024 * 34816 / 250e9 + overhead,
              1e-9);
  // Without the curve: the pairs at attention_gflops inside max(compute, memory), the cache's
  // bytes in the memory term.
  EXPECT_NEAR(old.unitTime(u, cpu, {1, 511, 1}),
              std::max(512 * 34816 / 3000e9, (10e6 + 512 * 576 * 4) / 100e9) + overhead, 1e-9);
  // Prefill keeps its own rates.
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {512, 0, 1}), old.unitTime(u, cpu, {512, 0, 1}));
  EXPECT_EQ(errorOf(profileText("", R"("decode_attention_gflops": {"mla": {"0": 1}},)")),
            "hw.json: cpu.decode_attention_gflops.mla.0: expected a number of cached positions (a "
            "positive integer) as the key");
}

// CPU expert prefill runs at the rate of the runtime's whole fused expert path for its rows per
// expert (expert_rows_gflops), not at one matrix's rows rate (gemm_rows_gflops).
TEST(ProbeFields, CpuExpertPrefillRunsAtTheExpertPathRate) {
  const std::string rows = R"("gemm_rows_gflops": {"int8": {"8": 4000, "32": 16000, "512": 40000}},
          "plain_rows_gflops": {"bf16": {"8": 2, "512": 20}},)";
  CostModel m(parsed(profileText(
      "", rows + R"("expert_rows_gflops": {"int8": {"8": 1000, "32": 4000, "128": 8000}},)"))),
      rowsOnly(parsed(profileText("", rows)));
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u;
  u.kind = UnitKind::Moe;
  u.numExperts = 64;
  u.topK = 4;
  u.expertBytes = 1e6;
  u.expertFlopsPerToken = 1e8; // compute-bound at these rows
  u.expertFormat = WeightFormat::BF16;
  u.hasCpuStorage = true;
  u.cpuStorage.expertBytes = 0.5e6;
  u.cpuStorage.expertFormat = WeightFormat::Int8;
  std::string why;
  ASSERT_TRUE(expertProbabilities(nullptr, 1, 64, 4, &u.expertProb, &why)) << why;
  std::vector<int> all(64);
  for (int e = 0; e < 64; ++e)
    all[size_t(e)] = e;
  // 512 tokens x 4 / 64 = 32 rows per expert: 4000 GFLOP/s (the rows curve said 16000).
  const double flops = 512 * 4 * 1e8;
  EXPECT_NEAR(m.expertsTime(u, all, cpu, {512, 0, 1}), flops / 4000e9, 1e-12);
  EXPECT_NEAR(rowsOnly.expertsTime(u, all, cpu, {512, 0, 1}), flops / 16000e9, 1e-12);
  // 1024 tokens: 64 rows, halfway in log2 between 32 and 128.
  EXPECT_NEAR(m.expertsTime(u, all, cpu, {1024, 0, 1}), 2 * flops / 6000e9, 1e-12);
  // int4 experts fall back to the int8 curve (int4 -> int8 -> bf16 -> f32).
  u.cpuStorage.expertFormat = WeightFormat::Int4;
  EXPECT_NEAR(m.expertsTime(u, all, cpu, {512, 0, 1}), flops / 4000e9, 1e-12);
  // Decode (1 token) of a real expert's ratio (2 FLOPs per int8 byte, well under the curve's
  // first point): bound by streaming the 4 touched experts, as before.
  u.expertFlopsPerToken = 1e6;
  const double touched = CostModel::expectedTouched(u, all, 1);
  EXPECT_NEAR(m.expertsTime(u, all, cpu, {1, 0, 1}), touched * 0.5e6 / 100e9, 1e-15);
  // With the probe's decode point (rows "1": one token through its top-k experts, the path's
  // overheads in its rate) decode takes the measured path's time when that is slower than the
  // bandwidth bound, and 2-row steps lie between the decode point and the 8-row one.
  CostModel withDecode(parsed(profileText(
      "", rows + R"("expert_rows_gflops": {"int8": {"1": 40, "8": 1000, "32": 4000}},)")));
  EXPECT_NEAR(touched, 4.0, 1e-12);
  EXPECT_NEAR(withDecode.expertsTime(u, all, cpu, {1, 0, 1}), 4 * 1e6 / 40e9, 1e-15);
  const double rows2 = CostModel::expectedTokens(u, all, 2) / CostModel::expectedTouched(u, all, 2);
  const double rate2 = 40 + (1000 - 40) * std::log2(rows2) / 3;
  EXPECT_NEAR(withDecode.expertsTime(u, all, cpu, {2, 0, 1}),
              CostModel::expectedTokens(u, all, 2) * 1e6 / (rate2 * 1e9), 1e-15);
  u.expertFlopsPerToken = 1e8;
  // Unpacked experts take the plain loops' curve; the GPU ignores the CPU's curves.
  u.cpuStorage.expertsUnpacked = true;
  EXPECT_DOUBLE_EQ(m.expertsTime(u, all, cpu, {512, 0, 1}),
                   rowsOnly.expertsTime(u, all, cpu, {512, 0, 1}));
  EXPECT_DOUBLE_EQ(m.expertsTime(u, all, gpu, {512, 0, 1}),
                   rowsOnly.expertsTime(u, all, gpu, {512, 0, 1}));
}

// Packed shared experts on the CPU run inside the moe op's fused expert region, in token chunks
// of at most max(128, 2T / cores) (8 cores here): a prefill prices them at the expert path's rate
// for that many rows, not at one 512-row GEMM's.
TEST(ProbeFields, CpuSharedExpertsRunAtTheExpertPathRateByChunk) {
  CostModel m(parsed(profileText("", R"("gemm_rows_gflops": {"int8": {"8": 4000, "512": 40000}},
             "expert_rows_gflops": {"int8": {"8": 1000, "32": 4000, "128": 8000}},)")));
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u;
  u.kind = UnitKind::Moe;
  u.format = WeightFormat::BF16;
  u.hasCpuStorage = true;
  u.cpuStorage.format = WeightFormat::Int8;
  u.sharedFlopsPerToken = 2e8;
  EXPECT_NEAR(m.cpuSharedExpertsSeconds(u, cpu, 512), 512 * 2e8 / 8000e9, 1e-12);   // 128 rows
  EXPECT_NEAR(m.cpuSharedExpertsSeconds(u, cpu, 64), 64 * 2e8 / 6000e9, 1e-12);     // 64 rows
  EXPECT_NEAR(m.cpuSharedExpertsSeconds(u, cpu, 4096), 4096 * 2e8 / 8000e9, 1e-12); // flat
  EXPECT_EQ(m.cpuSharedExpertsSeconds(u, gpu, 512), 0);
  u.sharedFlopsPerToken = 0;
  EXPECT_EQ(m.cpuSharedExpertsSeconds(u, cpu, 512), 0);
}

// A GPU prefill whose routed experts are all on the GPU in bf16 runs them as batched GEMMs over
// the experts (MoeGrouped): the probe's grouped rate at the rows per expert, launches per
// 512-token chunk instead of per expert. A layer split with the CPU, or int8 experts, keeps the
// per-expert path.
TEST(ProbeFields, GpuPrefillOfAllGpuExpertsRunsGrouped) {
  CostModel grouped(
      parsed(profileText(R"("grouped_gemm_gflops": {"bf16": {"8": 10000, "32": 40000}},)"))),
      plain(parsed(profileText("")));
  Device gpu;
  ASSERT_TRUE(grouped.find("gpu:0", &gpu));
  Unit u;
  u.kind = UnitKind::Moe;
  u.numExperts = 64;
  u.topK = 4;
  u.expertBytes = 1e6;
  u.expertFlopsPerToken = 1e6;
  u.expertFormat = WeightFormat::BF16;
  u.gpu = moeLaunches(/*bf16=*/true, false, false);
  std::string why;
  ASSERT_TRUE(expertProbabilities(nullptr, 1, 64, 4, &u.expertProb, &why)) << why;
  std::vector<int> all(64), half(32);
  for (int e = 0; e < 64; ++e)
    all[size_t(e)] = e;
  for (int e = 0; e < 32; ++e)
    half[size_t(e)] = e;
  // 512 tokens x 4 / 64: 32 rows per expert on average, each padded to the expected busiest
  // expert's 32 + sqrt(2 * 32 * ln 64) = 48.3 rows: 48.3 / 32 of the FLOPs at the curve's rate
  // for 48.3 rows (held at 40 TFLOP/s past its last point); one chunk of 14 launches at 6 us.
  const double flops = 512 * 4 * 1e6, launches = 14;
  EXPECT_EQ(u.gpu.groupedChunkLaunches, launches);
  auto padded = [](double mu) { return (mu + std::sqrt(2 * mu * std::log(64.0))) / mu; };
  const double t = grouped.expertsTime(u, all, gpu, {512, 0, 1});
  EXPECT_NEAR(t, std::max(flops * padded(32) / 40000e9, launches * 6e-6), 1e-6);
  // 4096 tokens: four chunks of 1024 (64 rows per expert and chunk).
  EXPECT_NEAR(grouped.expertsTime(u, all, gpu, {4096, 0, 1}),
              std::max(8 * flops * padded(64) / 40000e9, 4 * launches * 6e-6), 1e-6);
  // 64 tokens: 4 rows per expert, padded to 4 + 5.8 = 9.8 rows, on the curve between 8 and 32.
  const double rate = 10000 + 30000 * std::log2(padded(4) * 4 / 8) / 2;
  EXPECT_NEAR(grouped.expertsTime(u, all, gpu, {64, 0, 1}),
              std::max(flops / 8 * padded(4) / (rate * 1e9), launches * 6e-6), 1e-6);
  // Without the curve, or half the experts on the GPU: per touched expert.
  const double perExpert = plain.expertsTime(u, all, gpu, {512, 0, 1});
  EXPECT_GT(perExpert, t * 2);
  EXPECT_NEAR(grouped.expertsTime(u, half, gpu, {512, 0, 1}),
              plain.expertsTime(u, half, gpu, {512, 0, 1}), 1e-12);
  // int8 experts (MoeGroupedQuant): the same bf16 GEMMs over the active experts widened first
  // (q read, 2 B a weight written: 64 experts x 3 matrices of 1e6 weights at 1000 GB/s) and the
  // outputs rescaled (8 B per pair and output column); two more launches per product.
  u.gpuInt8Expert.matrices = 3;
  u.gpuInt8Expert.weights = 3e6;
  u.gpuInt8Expert.bytes = 3e6;
  u.gpuInt8Expert.outputs = 3e3;
  const double touched = 64 * (1 - std::pow(1 - 4.0 / 64, 512));
  const double quantExtra = (touched * 9e6 + 8.0 * 512 * 4 * 3e3) / 1000e9;
  EXPECT_NEAR(grouped.expertsTime(u, all, gpu, {512, 0, 1}),
              std::max(flops * padded(32) / 40000e9 + quantExtra, (launches + 6) * 6e-6), 1e-6);
  EXPECT_LT(grouped.expertsTime(u, all, gpu, {512, 0, 1}), perExpert);
  // A split layer keeps the per-expert int8 path.
  EXPECT_NEAR(grouped.expertsTime(u, half, gpu, {512, 0, 1}),
              plain.expertsTime(u, half, gpu, {512, 0, 1}), 1e-12);
}

// The probe's whole-chunk curves (grouped_moe_gflops, issue #6: random routing, padding and the
// chunk's small kernels in the rate, keyed by the mean rows per expert of a chunk) replace the
// uniform curve x estimated padding: each chunk (1024 tokens, then the rest) at the rate of its
// own size, interpolated by expert size between the DeepSeek-shaped and Qwen3-shaped curves.
// DeepSeek-V2-Lite's MoE layer as a grouped GPU unit: 64 experts of 1408 x 2048, top-6, bf16,
// routed uniformly (small bytes: the weights' streaming stays far below the compute).
Unit dsv2GroupedMoe() {
  Unit u;
  u.kind = UnitKind::Moe;
  u.numExperts = 64;
  u.topK = 6;
  u.expertBytes = 1e6;
  u.expertFlopsPerToken = 2 * 3.0 * 2048 * 1408;
  u.expertFormat = WeightFormat::BF16;
  u.gpu = moeLaunches(/*bf16=*/true, false, false);
  std::string why;
  EXPECT_TRUE(expertProbabilities(nullptr, 1, 64, 6, &u.expertProb, &why)) << why;
  return u;
}

std::vector<int> everyExpert(int n) {
  std::vector<int> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

TEST(ProbeFields, GpuPrefillOfAllGpuExpertsUsesTheWholeChunkCurve) {
  const std::string curves = R"("launch_issue_us": 2, "kernel_floor_us": 1.5,
            "grouped_gemm_gflops": {"bf16": {"8": 10000, "32": 40000}},
            "grouped_moe_gflops": {"bf16": {"12": 50000, "96": 200000}},
            "grouped_moe_gflops_i768": {"bf16": {"8": 25000, "64": 100000}},)";
  const HardwareProfile p = parsed(profileText(curves));
  const AcceleratorProfile& a = p.gpus[0];
  const double large = 3.0 * 2048 * 1408, small = 3.0 * 2048 * 768;
  // 48 rows: two thirds of the way from 12 to 96 in log2.
  EXPECT_DOUBLE_EQ(a.groupedMoeGflopsAt(WeightFormat::BF16, large, 48), 150000);
  EXPECT_DOUBLE_EQ(a.groupedMoeGflopsAt(WeightFormat::BF16, small, 32), 75000);
  // Between the shapes by log(weights); past a curve's points it is held flat (small: 100000).
  EXPECT_DOUBLE_EQ(a.groupedMoeGflopsAt(WeightFormat::BF16, std::sqrt(large * small), 96), 150000);
  EXPECT_DOUBLE_EQ(a.groupedMoeGflopsAt(WeightFormat::F32, large, 48), 0) << "no f32 curve";

  CostModel m(p), uniform(parsed(profileText(R"("launch_issue_us": 2, "kernel_floor_us": 1.5,
            "grouped_gemm_gflops": {"bf16": {"8": 10000, "32": 40000}},)"))),
      plain(parsed(profileText(R"("launch_issue_us": 2, "kernel_floor_us": 1.5,)")));
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = dsv2GroupedMoe();
  const std::vector<int> all = everyExpert(64);
  const double launches = u.gpu.groupedChunkLaunches, pairFlops = 2 * large;
  // 512 tokens: one chunk, 48 rows per expert on average, useful FLOPs at 150 TFLOP/s. The
  // curve's time already holds the chunk's kernels, so the prefill is max(issue, that time).
  const double t512 = 512 * 6 * pairFlops / 150000e9;
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {512, 0, 1}), std::max(t512, launches * 2e-6), 1e-9);
  // 2500 tokens: two chunks of 1024 (96 rows: 200 TFLOP/s) and one of 452 (42.4 rows).
  const double rest = 50000 + 150000 * std::log2(452.0 * 6 / 64 / 12) / 3;
  const double t2500 = 2 * 1024 * 6 * pairFlops / 200000e9 + 452 * 6 * pairFlops / (rest * 1e9);
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {2500, 0, 1}), std::max(t2500, 3 * launches * 2e-6), 1e-9);
  // The uniform curve's price differs (padding estimated, 40 TFLOP/s held): the new curve wins.
  EXPECT_GT(std::fabs(uniform.expertsTime(u, all, gpu, {512, 0, 1}) - t512), 1e-5);
  // Qwen3-30B-A3B's layer: 128 experts of 768 x 2048, top-8 -> the i768 curve at 32 rows.
  Unit q = u;
  q.numExperts = 128;
  q.topK = 8;
  q.expertFlopsPerToken = 2 * small;
  std::string why;
  ASSERT_TRUE(expertProbabilities(nullptr, 1, 128, 8, &q.expertProb, &why)) << why;
  EXPECT_NEAR(m.expertsTime(q, everyExpert(128), gpu, {512, 0, 1}),
              std::max(512 * 8 * 2 * small / 75000e9, launches * 2e-6), 1e-9);
  // f32 experts: neither grouped curve has f32 -> per touched expert, as without any curve.
  u.expertFormat = WeightFormat::F32;
  u.gpu = moeLaunches(/*bf16=*/false, false, false);
  EXPECT_DOUBLE_EQ(m.expertsTime(u, all, gpu, {512, 0, 1}),
                   plain.expertsTime(u, all, gpu, {512, 0, 1}));
}

// The host's grouping of a grouped layer's routing (grouped_moe_host_us), during which the GPU
// waits: added once per chunk at the chunk's mean rows per expert, between the two shapes by
// expert size as the GFLOP/s curves.
TEST(ProbeFields, GroupedMoeHostGroupingIsAddedPerChunk) {
  const std::string curves = R"("launch_issue_us": 2, "kernel_floor_us": 1.5,
            "grouped_moe_gflops": {"bf16": {"12": 50000, "96": 200000}},)";
  const HardwareProfile p = parsed(
      profileText(curves + R"("grouped_moe_host_us": {"grouped_moe_gflops": {"12": 10, "96": 40},
                                          "grouped_moe_gflops_i768": {"12": 20}},)"));
  const AcceleratorProfile& a = p.gpus[0];
  const double large = 3.0 * 2048 * 1408, small = 3.0 * 2048 * 768;
  EXPECT_DOUBLE_EQ(a.groupedMoeHostSecondsAt(large, 48), 30e-6); // 2/3 of 12 -> 96 in log2
  EXPECT_DOUBLE_EQ(a.groupedMoeHostSecondsAt(small, 48), 20e-6); // held flat past its point
  CostModel with(p), without(parsed(profileText(curves)));
  Device gpu;
  ASSERT_TRUE(with.find("gpu:0", &gpu));
  const Unit u = dsv2GroupedMoe();
  const std::vector<int> all = everyExpert(64);
  // 512 tokens: one chunk of 48 rows per expert; 2500: two chunks of 96 and one of 42.4.
  EXPECT_NEAR(with.expertsTime(u, all, gpu, {512, 0, 1}) -
                  without.expertsTime(u, all, gpu, {512, 0, 1}),
              30e-6, 1e-12);
  const double rest = 10 + 30 * std::log2(452.0 * 6 / 64 / 12) / 3;
  EXPECT_NEAR(with.expertsTime(u, all, gpu, {2500, 0, 1}) -
                  without.expertsTime(u, all, gpu, {2500, 0, 1}),
              (2 * 40 + rest) * 1e-6, 1e-12);
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_host_us": {"bf16": {"12": 1}},)")),
            "hw.json: gpus[0].grouped_moe_host_us.bf16: unknown curve (expected "
            "grouped_moe_gflops or grouped_moe_gflops_i768)");
}

// The probe's chunks under a skewed routing (grouped_moe_skewed_gflops) and the two routings'
// busiest-quarter shares (grouped_moe_skew): a layer whose expert stats give its busiest quarter of
// experts a share between them is priced between the curves (linearly in the share), held at the
// skewed curve past its share; a uniform layer (share 1/4, under the probe's uniform routing's)
// keeps the uniform curve.
TEST(ProbeFields, SkewedLayersArePricedTowardTheSkewedChunkCurve) {
  const std::string uniformCurve = R"("launch_issue_us": 2, "kernel_floor_us": 1.5,
            "grouped_moe_gflops": {"bf16": {"12": 50000, "96": 200000}},)";
  const std::string skewedCurve =
      R"("grouped_moe_skewed_gflops": {"bf16": {"12": 25000, "96": 100000}},
            "grouped_moe_skew": {"grouped_moe_gflops": {"uniform": 0.3, "skewed": 0.6}},)";
  const HardwareProfile p = parsed(profileText(uniformCurve + skewedCurve));
  const double large = 3.0 * 2048 * 1408;
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeSkewedGflopsAt(WeightFormat::BF16, large, 48), 75000);
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeSharesAt(large).skewed, 0.6);
  CostModel m(p), uniformOnly(parsed(profileText(uniformCurve)));
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = dsv2GroupedMoe();
  const std::vector<int> all = everyExpert(64);
  EXPECT_DOUBLE_EQ(CostModel::busiestQuarterShare(u, all), 0.25);
  // Uniform: 512 tokens, 48 rows per expert, at the uniform curve's 150 TFLOP/s.
  const double t512 = 512 * 6 * 2 * large / 150000e9;
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {512, 0, 1}), t512, 1e-9);
  EXPECT_DOUBLE_EQ(m.expertsTime(u, all, gpu, {512, 0, 1}),
                   uniformOnly.expertsTime(u, all, gpu, {512, 0, 1}));
  // Stats giving the busiest 16 experts 45% of the pairs: half way to the skewed curve (whose
  // 75 TFLOP/s take twice the time) -> 1.5x.
  auto skewTo = [&](double share) {
    for (int e = 0; e < 64; ++e)
      u.expertProb[size_t(e)] = e < 16 ? 6 * share / 16 : 6 * (1 - share) / 48;
  };
  skewTo(0.45);
  EXPECT_NEAR(CostModel::busiestQuarterShare(u, all), 0.45, 1e-12);
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {512, 0, 1}), 1.5 * t512, 1e-9);
  // Past the probe's skewed share: held at the skewed curve; without that curve: the uniform one.
  skewTo(0.9);
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {512, 0, 1}), 2 * t512, 1e-9);
  EXPECT_NEAR(uniformOnly.expertsTime(u, all, gpu, {512, 0, 1}), t512, 1e-9);
  // A calibration window's share (kt-tune's window_busiest_quarter) prices the chunk, not the
  // whole set's probabilities: uniform probabilities, windows at 45% -> half way.
  skewTo(0.25);
  u.windowBusiestQuarter = 0.45;
  EXPECT_NEAR(m.expertsTime(u, all, gpu, {512, 0, 1}), 1.5 * t512, 1e-9);
  // Errors name the field.
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_skewed_gflops": {"bf16": {"12": 1}},)")),
            "hw.json: gpus[0].grouped_moe_skew: missing: the skewed curves are priced by their "
            "routing's share, so they need it");
  EXPECT_EQ(errorOf(profileText(
                R"("grouped_moe_skew": {"grouped_moe_gflops": {"uniform": 0.5, "skewed": 0.4}},)")),
            "hw.json: gpus[0].grouped_moe_skew.grouped_moe_gflops.skewed: must be larger than "
            "uniform (the skewed routing's busiest quarter takes more of the pairs)");
  EXPECT_EQ(errorOf(profileText(
                R"("grouped_moe_skew": {"grouped_moe_gflops": {"uniform": 0.5, "skewed": 1.5}},)")),
            "hw.json: gpus[0].grouped_moe_skew.grouped_moe_gflops.skewed: is a share of the routed "
            "pairs: at most 1");
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_skew": {"bf16": {"uniform": 0.5}},)")),
            "hw.json: gpus[0].grouped_moe_skew.bf16: unknown field (expected one of: "
            "grouped_moe_gflops, grouped_moe_gflops_i768)");
}

TEST(ProbeFields, GroupedMoeCurveErrorsNameTheField) {
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_gflops_i768": {"bf16": {"x": 1}},)")),
            "hw.json: gpus[0].grouped_moe_gflops_i768.bf16.x: expected a row count (a positive "
            "integer) as the key");
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_gflops": {"fp8": {"12": 1}},)")),
            "hw.json: gpus[0].grouped_moe_gflops.fp8: unknown weight format (expected f32, bf16, "
            "f16, int8 or int4)");
  EXPECT_EQ(errorOf(profileText(R"("grouped_moe_gflops": {"bf16": {"12": 0}},)")),
            "hw.json: gpus[0].grouped_moe_gflops.bf16.12: expected a positive number, got 0");
  // The probe's diagnostics are comments to the parser.
  parsed(profileText(R"("_grouped_moe_alt_gflops": {"layout": "ragged"},)"));
}

// Two expert shapes (kt-rt probe: 1408 x 2048 and 768 x 2048): an expert's rate lies between the
// curves by its size (log of its weights), held at the nearer curve outside them; with one curve
// every size takes it. Qwen3-30B-A3B's experts (768 x 2048) take expert_rows_gflops_i768.
TEST(ProbeFields, CpuExpertPathRateByExpertSize) {
  const HardwareProfile p =
      parsed(profileText("", R"("expert_rows_gflops": {"int8": {"8": 1000, "32": 4000}},
             "expert_rows_gflops_i768": {"int8": {"8": 500, "32": 1000}},)"));
  const double large = 3.0 * 2048 * 1408, small = 3.0 * 2048 * 768;
  EXPECT_DOUBLE_EQ(p.cpu.expertPathGflops(WeightFormat::Int8, large, 32), 4000);
  EXPECT_DOUBLE_EQ(p.cpu.expertPathGflops(WeightFormat::Int8, small, 32), 1000);
  EXPECT_DOUBLE_EQ(p.cpu.expertPathGflops(WeightFormat::Int8, std::sqrt(large * small), 32), 2500);
  EXPECT_DOUBLE_EQ(p.cpu.expertPathGflops(WeightFormat::Int8, 10 * large, 8), 1000);
  EXPECT_DOUBLE_EQ(p.cpu.expertPathGflops(WeightFormat::Int8, small / 10, 8), 500);
  const HardwareProfile one =
      parsed(profileText("", R"("expert_rows_gflops": {"int8": {"8": 1000, "32": 4000}},)"));
  EXPECT_DOUBLE_EQ(one.cpu.expertPathGflops(WeightFormat::Int8, small, 32), 4000);
  EXPECT_DOUBLE_EQ(one.cpu.expertPathGflops(WeightFormat::BF16, small, 32), 0) << "no bf16 curve";
}

} // namespace
} // namespace kt::cost
