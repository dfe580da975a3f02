// compiler/cost: the hardware-profile parser's error messages, the cost model's arithmetic on a
// profile with known numbers, expert statistics, and the partitioner on hand-built graphs.
#include "compiler/cost/CostModel.h"
#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/Explain.h"
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/Partitioner.h"
#include "compiler/cost/Predict.h"
#include "compiler/cost/Units.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace kt::cost {
namespace {

// One NUMA node of 100 GB/s at 1000 GFLOP/s, one GPU of 1000 GB/s at 100 TFLOP/s on a 10 GB/s
// link with 5 us latency; efficiencies 1 and overheads 0 unless a test sets them, so times are
// plain bytes / bandwidth and flops / peak.
const char* kProfile = R"({
  "name": "unit",
  "source": "placeholder",
  "cpu": {
    "isa": ["avx512", "amx"],
    "numa_nodes": [{"cores": 8, "memory_bytes": "64GiB", "bandwidth_gbs": 100}],
    "gemv_efficiency": {"f32": 1.0},
    "gemm_gflops": {"avx512": {"f32": 1000, "bf16": 2000}, "amx": {"bf16": 20000, "int8": 40000}}
  },
  "gpus": [{"memory_bytes": "16GiB", "reserved_bytes": "1GiB", "bandwidth_gbs": 1000,
            "gemv_efficiency": {"f32": 1.0}, "gemm_tflops": {"f32": 100},
            "link": {"h2d_gbs": 10, "d2h_gbs": 20, "latency_us": 5}}]
})";

HardwareProfile parsed(const std::string& text = kProfile) {
  HardwareProfile p;
  std::string error;
  EXPECT_TRUE(parseHardwareProfile(text, "unit.json", &p, &error)) << error;
  return p;
}

// The error for `text`, which must not parse.
std::string profileError(const std::string& text) {
  HardwareProfile p;
  std::string error;
  EXPECT_FALSE(parseHardwareProfile(text, "hw.json", &p, &error));
  return error;
}

// kProfile with `from` replaced by `to` (exactly once).
std::string edited(const std::string& from, const std::string& to) {
  std::string s = kProfile;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

// ---- Units -------------------------------------------------------------------------------------

TEST(Units, ByteSizes) {
  double b = 0;
  std::string why;
  ASSERT_TRUE(parseByteSize("12GiB", &b, &why));
  EXPECT_EQ(b, 12.0 * 1024 * 1024 * 1024);
  ASSERT_TRUE(parseByteSize("1.5 GB", &b, &why));
  EXPECT_EQ(b, 1.5e9);
  ASSERT_TRUE(parseByteSize("4096", &b, &why));
  EXPECT_EQ(b, 4096);
  ASSERT_TRUE(parseByteSize("0", &b, &why));
  EXPECT_EQ(b, 0);
  ASSERT_TRUE(parseByteSize("unlimited", &b, &why));
  EXPECT_GE(b, kUnlimitedBytes);
  EXPECT_FALSE(parseByteSize("lots", &b, &why));
  EXPECT_EQ(why, "expected a size such as 12GiB, 512MiB, 4096 or 'unlimited', got 'lots'");
  EXPECT_FALSE(parseByteSize("12 parsecs", &b, &why));
  EXPECT_NE(why.find("unknown unit 'parsecs'"), std::string::npos) << why;
  EXPECT_FALSE(parseByteSize("-1GiB", &b, &why));
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(formatBytes(3.0 * 1024 * 1024 * 1024), "3.0 GiB");
  EXPECT_EQ(formatBytes(kUnlimitedBytes), "unlimited");
  EXPECT_EQ(formatSeconds(1.2e-5), "12.0 us");
  EXPECT_EQ(formatSeconds(0.0345), "34.50 ms");
}

TEST(Units, WeightBytesPerFormat) {
  // bf16 2 B, int8 1 B + an f32 scale per row, int4 0.5 B + an f16 scale per group (+ an f16
  // minimum per group when asymmetric).
  EXPECT_EQ(matrixBytes(4096, 1024, {WeightFormat::F32}), 4.0 * 4096 * 1024);
  EXPECT_EQ(matrixBytes(4096, 1024, {WeightFormat::BF16}), 2.0 * 4096 * 1024);
  EXPECT_EQ(matrixBytes(4096, 1024, {WeightFormat::Int8}), 4096.0 * 1024 + 4.0 * 4096);
  EXPECT_EQ(matrixBytes(4096, 1024, {WeightFormat::Int4, 64, true}),
            0.5 * 4096 * 1024 + 2.0 * 4096 * (1024 / 64));
  EXPECT_EQ(matrixBytes(4096, 1024, {WeightFormat::Int4, 128, false}),
            0.5 * 4096 * 1024 + 4.0 * 4096 * (1024 / 128));
  EXPECT_EQ(plainBytes(100, WeightFormat::F16), 200);
}

// ---- Hardware profile --------------------------------------------------------------------------

TEST(HardwareProfile, ParsesAndFallsBack) {
  HardwareProfile p = parsed();
  EXPECT_EQ(p.name, "unit");
  ASSERT_EQ(p.cpu.numaNodes.size(), 1u);
  EXPECT_EQ(p.cpu.numaNodes[0].memoryBytes, 64.0 * (1ull << 30));
  ASSERT_EQ(p.gpus.size(), 1u);
  EXPECT_EQ(p.gpus[0].reservedBytes, 1.0 * (1ull << 30));
  // Missing formats fall back: int4 -> int8 -> bf16 -> f32.
  EXPECT_EQ(p.cpu.gemvEfficiency.get(WeightFormat::Int4), 1.0);
  EXPECT_EQ(p.gpus[0].gemmTflops.get(WeightFormat::BF16), 100);
  // The best ISA per format: AMX for bf16/int8, but AMX has no f32, so f32 is AVX-512's.
  EXPECT_EQ(p.cpu.bestGemmGflops(WeightFormat::BF16), 20000);
  EXPECT_EQ(p.cpu.bestGemmGflops(WeightFormat::Int8), 40000);
  EXPECT_EQ(p.cpu.bestGemmGflops(WeightFormat::Int4), 40000);
  EXPECT_EQ(p.cpu.bestGemmGflops(WeightFormat::F32), 1000);
}

TEST(HardwareProfile, ShippedExamplesParse) {
  for (const char* name :
       {"xeon-2s-rtx4090.json", "xeon-2s-8xl20.json", "npu-box.json", "this-vm.json"}) {
    HardwareProfile p;
    std::string error;
    EXPECT_TRUE(loadHardwareProfile(std::string(KT_EXAMPLES_DIR) + "/hw/" + name, &p, &error))
        << error;
  }
  HardwareProfile l20;
  std::string error;
  ASSERT_TRUE(
      loadHardwareProfile(std::string(KT_EXAMPLES_DIR) + "/hw/xeon-2s-8xl20.json", &l20, &error));
  EXPECT_EQ(l20.gpus.size(), 8u);
  EXPECT_EQ(l20.cpu.numaNodes.size(), 2u);
}

TEST(HardwareProfile, ErrorsNameTheField) {
  EXPECT_EQ(profileError(edited("\"bandwidth_gbs\": 100", "\"bandwith_gbs\": 100")),
            "hw.json: cpu.numa_nodes[0].bandwith_gbs: unknown field (expected one of: id, cores, "
            "memory_bytes, bandwidth_gbs)");
  EXPECT_EQ(profileError(edited("\"bandwidth_gbs\": 100", "\"bandwidth_gbs\": \"fast\"")),
            "hw.json: cpu.numa_nodes[0].bandwidth_gbs: expected a positive number, got \"fast\"");
  EXPECT_EQ(profileError(edited("\"cores\": 8, ", "")),
            "hw.json: cpu.numa_nodes[0].cores: missing (required)");
  EXPECT_EQ(
      profileError(edited("\"gemv_efficiency\": {\"f32\": 1.0},\n    \"gemm",
                          "\"gemv_efficiency\": {\"f32\": 1.5},\n    \"gemm")),
      "hw.json: cpu.gemv_efficiency.f32: must be at most 1 (a fraction of the bandwidth), got 1.5");
  EXPECT_EQ(profileError(edited("\"amx\": {\"bf16\"", "\"avx2\": {\"bf16\"")),
            "hw.json: cpu.gemm_gflops.avx2: ISA 'avx2' is not listed in cpu.isa");
  EXPECT_EQ(profileError(edited("{\"f32\": 1000, \"bf16\": 2000}", "{\"bf16\": 2000}")),
            "hw.json: cpu.gemm_gflops: needs an f32 entry for at least one ISA (every format can "
            "fall back to f32)");
  EXPECT_EQ(
      profileError(edited("\"gemm_tflops\": {\"f32\": 100}", "\"gemm_tflops\": {\"fp8\": 100}")),
      "hw.json: gpus[0].gemm_tflops.fp8: unknown weight format (expected f32, bf16, f16, int8 or "
      "int4)");
  EXPECT_EQ(
      profileError(edited("\"memory_bytes\": \"16GiB\"", "\"memory_bytes\": \"16 GiBs\"")),
      "hw.json: gpus[0].memory_bytes: unknown unit 'gibs' in '16 GiBs' (use B, KiB, MiB, GiB, "
      "TiB, KB, MB, GB or TB)");
  EXPECT_EQ(profileError(edited("\"link\": {\"h2d_gbs\": 10, ", "\"link\": {")),
            "hw.json: gpus[0].link.h2d_gbs: missing (required)");
  EXPECT_EQ(profileError(edited("\"gpus\": [{", "\"gpus\": [{\"id\": 3, ")),
            "hw.json: gpus[0].id: must equal the position in the list (0), got 3");
  EXPECT_EQ(profileError(edited("\"gpus\"", "\"npus\"")),
            "hw.json: npus[0].supported_ops: missing (required)");
  EXPECT_EQ(
      profileError(edited("\"source\": \"placeholder\"", "\"source\": \"guess\"")),
      "hw.json: source: expected \"measured\", \"datasheet\" or \"placeholder\", got \"guess\"");
  EXPECT_EQ(profileError("[1, 2]"), "hw.json: (top level): expected an object, got [1,2]");
  std::string json = profileError("{\"name\": ");
  EXPECT_EQ(json.rfind("hw.json: not valid JSON: ", 0), 0u) << json;
  HardwareProfile p;
  std::string error;
  EXPECT_FALSE(loadHardwareProfile("/no/such/profile.json", &p, &error));
  EXPECT_EQ(error, "/no/such/profile.json: cannot open the hardware profile");
}

TEST(HardwareProfile, NpuOpKinds) {
  std::string npu =
      edited("\"gpus\": [{", "\"npus\": [{\"supported_ops\": [\"attention\", \"warp_drive\"], ");
  EXPECT_EQ(profileError(npu).substr(0, 64),
            "hw.json: npus[0].supported_ops[1]: unknown op kind 'warp_drive' ");
}

// ---- Cost model arithmetic -----------------------------------------------------------------

Unit linearUnit(double bytes, double flopsPerToken) {
  Unit u;
  u.kind = UnitKind::Linear;
  u.opKind = "linear";
  u.weightBytes = bytes;
  u.flopsPerToken = flopsPerToken;
  u.hidden = 1024;
  return u;
}

// An attention unit with no weights: 1000 FLOPs per (query, key) pair over `heads` heads.
Unit attentionUnit(UnitKind kind, int heads) {
  Unit u = linearUnit(0, 0);
  u.kind = kind;
  u.attnFlopsPerPair = 1000;
  u.attnHeads = heads;
  return u;
}

TEST(CostModel, DecodeGemvIsBytesOverBandwidth) {
  CostModel m(parsed());
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  // A 4096 x 4096 f32 GEMV: 64 MiB read, 2 * 16.8 M flops (negligible at 1 token).
  double bytes = 4.0 * 4096 * 4096, flops = 2.0 * 4096 * 4096;
  Unit u = linearUnit(bytes, flops);
  Shape decode{1, 0, 1};
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, decode), bytes / 100e9);
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, decode), bytes / 1000e9);
  // 4096 tokens: compute-bound, flops / peak.
  Shape prefill{4096, 0, 1};
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, prefill), 4096 * flops / 1000e9);
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, prefill), 4096 * flops / 100e12);
}

TEST(CostModel, EfficiencyOverheadAndTransfers) {
  HardwareProfile p = parsed();
  p.cpu.gemvEfficiency.values["f32"] = 0.5;
  p.cpu.opOverheadUs = 3;
  CostModel m(p);
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = linearUnit(1e9, 0);
  u.numOps = 2;
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {1, 0, 1}), 1e9 / (100e9 * 0.5) + 2 * 3e-6);
  // Host <-> GPU: latency + bytes / link bandwidth, per direction; nothing between CPU nodes.
  EXPECT_DOUBLE_EQ(m.transferTime(cpu, gpu, 1e6), 5e-6 + 1e6 / 10e9);
  EXPECT_DOUBLE_EQ(m.transferTime(gpu, cpu, 1e6), 5e-6 + 1e6 / 20e9);
  EXPECT_EQ(m.transferTime(cpu, cpu, 1e6), 0);
}

// An activation moved at a step that changes device: from 1 MiB on at the probe's measured move
// rates (the runtime stages those through pinned memory), below it and without them at the
// pinned link rates; the parser names a bad rate.
TEST(CostModel, ActivationMovesAtTheMeasuredMoveRates) {
  const std::string link = "\"link\": {\"h2d_gbs\": 10, \"d2h_gbs\": 20, \"latency_us\": 5}";
  CostModel m(parsed(edited(link, "\"link\": {\"h2d_gbs\": 10, \"d2h_gbs\": 20, "
                                  "\"latency_us\": 5, \"move_h2d_gbs\": 4, \"move_d2h_gbs\": 2}")));
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  const double big = 16 << 20, small = 64 << 10;
  EXPECT_DOUBLE_EQ(m.activationMoveTime(cpu, gpu, big), 5e-6 + big / 4e9);
  EXPECT_DOUBLE_EQ(m.activationMoveTime(gpu, cpu, big), 5e-6 + big / 2e9);
  EXPECT_DOUBLE_EQ(m.activationMoveTime(cpu, gpu, small), m.transferTime(cpu, gpu, small));
  EXPECT_EQ(m.activationMoveTime(cpu, cpu, big), 0);
  CostModel plain(parsed()); // not measured: the pinned rates
  EXPECT_DOUBLE_EQ(plain.activationMoveTime(gpu, cpu, big), plain.transferTime(gpu, cpu, big));
  EXPECT_EQ(profileError(edited(link, "\"link\": {\"h2d_gbs\": 10, \"d2h_gbs\": 20, "
                                      "\"move_d2h_gbs\": 0}")),
            "hw.json: gpus[0].link.move_d2h_gbs: expected a positive number, got 0");
}

TEST(CostModel, AttentionReadsTheKvCache) {
  CostModel m(parsed());
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  Unit u = linearUnit(1e6, 0);
  u.kvBytesPerToken = 1000;
  // Decode one token of each of 4 sequences with 999 cached positions: 4 * 1000 positions read.
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {4, 999, 4}), (1e6 + 4 * 1000 * 1000) / 100e9);
}

Unit moeUnit(int experts, int topK, double expertBytes) {
  Unit u;
  u.kind = UnitKind::Moe;
  u.opKind = "shared_experts";
  u.layer = 1;
  u.numExperts = experts;
  u.topK = topK;
  u.expertBytes = expertBytes;
  u.expertBytesInt4 = expertBytes / 4;
  u.expertFlopsPerToken = expertBytes / 2; // bf16: 2 flops per 2-byte weight
  u.expertFormat = WeightFormat::BF16;
  u.format = WeightFormat::BF16;
  u.hidden = 2048;
  std::string why;
  EXPECT_TRUE(expertProbabilities(nullptr, 1, experts, topK, &u.expertProb, &why));
  return u;
}

TEST(CostModel, UniformRoutingExpectations) {
  // Uniform routing: T*k/E tokens per expert, E*(1-(1-k/E)^T) distinct experts touched.
  Unit u = moeUnit(64, 6, 1e6);
  std::vector<int> all(64);
  for (int e = 0; e < 64; ++e)
    all[size_t(e)] = e;
  for (double t : {1.0, 8.0, 512.0}) {
    EXPECT_NEAR(CostModel::expectedTouched(u, all, t), 64 * (1 - std::pow(1 - 6.0 / 64, t)), 1e-9);
    EXPECT_NEAR(CostModel::expectedTokens(u, all, t), t * 6, 1e-9);
  }
  // One decode token reads exactly its 6 experts.
  CostModel m(parsed());
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  EXPECT_NEAR(m.expertsTime(u, all, cpu, {1, 0, 1}), 6 * 1e6 / 100e9, 1e-15);
}

TEST(ExpertStats, NormalisesAndChecksLengths) {
  ExpertStats s;
  std::string why;
  ASSERT_TRUE(
      parseExpertStats(R"({"tokens": 10, "layers": {"3": [1, 1, 2, 4]}})", "s.json", &s, &why))
      << why;
  std::vector<double> p;
  ASSERT_TRUE(expertProbabilities(&s, 3, 4, 2, &p, &why));
  EXPECT_DOUBLE_EQ(p[0], 0.25);
  EXPECT_DOUBLE_EQ(p[2], 0.5);
  EXPECT_DOUBLE_EQ(p[3], 1.0);
  ASSERT_TRUE(expertProbabilities(&s, 5, 4, 2, &p, &why)); // absent layer: uniform
  EXPECT_DOUBLE_EQ(p[1], 0.5);
  EXPECT_FALSE(expertProbabilities(&s, 3, 8, 2, &p, &why));
  EXPECT_EQ(why, "s.json: layers.3 has 4 values but the model's layer 3 has 8 routed experts");
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"x": [1]}})", "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: layers.x: layer keys must be layer numbers such as \"3\"");
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"1": [1, -2]}})", "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: layers.1[1]: expected a non-negative number, got -2");
}

// kt-tune's per-window skew (window_busiest_quarter): a share in (0, 1] per layer of "layers".
TEST(ExpertStats, WindowBusiestQuarterPerLayer) {
  ExpertStats s;
  std::string why;
  ASSERT_TRUE(parseExpertStats(
      R"({"layers": {"1": [1, 2], "2": [3, 4]}, "window_busiest_quarter": {"2": 0.62}})", "s.json",
      &s, &why))
      << why;
  EXPECT_DOUBLE_EQ(windowBusiestQuarter(&s, 2), 0.62);
  EXPECT_DOUBLE_EQ(windowBusiestQuarter(&s, 1), 0); // not measured
  EXPECT_DOUBLE_EQ(windowBusiestQuarter(nullptr, 2), 0);
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"1": [1]}, "window_busiest_quarter": {"1": 1.5}})",
                                "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: window_busiest_quarter.1: expected a share in (0, 1], got 1.5");
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"1": [1]}, "window_busiest_quarter": {"7": 0.5}})",
                                "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: window_busiest_quarter.7: not a layer of \"layers\"");
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"1": [1]}, "window_busiest_quarter": [0.5]})",
                                "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: window_busiest_quarter: expected an object of {\"<layer>\": share}");
  EXPECT_FALSE(parseExpertStats(R"({"layers": {"1": [1]}, "windows": 3})", "s.json", &s, &why));
  EXPECT_EQ(why, "s.json: windows: unknown field (expected layers, tokens, model, "
                 "window_busiest_quarter)");
}

// ---- Partitioner -------------------------------------------------------------------------------

// attention (10 MB + KV), one MoE layer of 8 experts of 10 MB, lm_head 20 MB.
ModelGraph smallModel() {
  ModelGraph g;
  g.name = "small";
  g.numLayers = 1;
  Unit attn = linearUnit(10e6, 2 * 5e6);
  attn.kind = UnitKind::Attention;
  attn.opKind = "attention";
  attn.layer = 0;
  attn.kvBytesPerToken = 1000;
  g.units.push_back(attn);
  Unit moe = moeUnit(8, 2, 10e6);
  moe.layer = 0;
  moe.weightBytes = 1e6;
  moe.flopsPerToken = 1e6;
  g.units.push_back(moe);
  Unit head = linearUnit(20e6, 2 * 10e6);
  head.kind = UnitKind::LmHead;
  head.opKind = "lm_head";
  g.units.push_back(head);
  return g;
}

TEST(Partitioner, BudgetsDecide) {
  CostModel m(parsed());
  ModelGraph g = smallModel();
  PartitionOptions o;
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;

  o.gpuMemBytes = 0;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  for (const std::string& d : r.assignment.unitDevice)
    EXPECT_EQ(d, "cpu:numa0");
  for (const std::string& d : r.assignment.expertDevice[1])
    EXPECT_EQ(d, "cpu:numa0");
  EXPECT_TRUE(r.assignment.offloadDevice.empty());

  o.gpuMemBytes = kUnlimitedBytes;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  for (const std::string& d : r.assignment.unitDevice)
    EXPECT_EQ(d, "gpu:0");
  for (const std::string& d : r.assignment.expertDevice[1])
    EXPECT_EQ(d, "gpu:0");
  // Everything on the GPU: the decode step is the GPU's bytes / bandwidth (weights, 513 cached
  // positions, the 2 routed experts of the token) plus the logits copy back to the host.
  double bytes = 10e6 + 1000 * 513 + 1e6 + 2 * 10e6 + 20e6;
  EXPECT_NEAR(r.prediction.decodeStepSeconds, bytes / 1000e9 + 5e-6 + 1024 * 4 / 20e9, 1e-9);

  // Room for the dense part (31 MB + KV) and 2 experts besides the 20 MB streaming buffer.
  o.gpuMemBytes = 72e6;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  EXPECT_EQ(r.assignment.unitDevice[0], "gpu:0");
  EXPECT_EQ(r.assignment.unitDevice[2], "gpu:0");
  int onGpu = 0;
  for (const std::string& d : r.assignment.expertDevice[1])
    onGpu += d == "gpu:0";
  EXPECT_EQ(onGpu, 2);
  EXPECT_EQ(r.assignment.offloadDevice, "gpu:0");
  EXPECT_GT(r.assignment.prefillOffloadMinTokens[1], 1);
}

TEST(Partitioner, PrefillCrossoverIsWhereStreamingWins) {
  CostModel m(parsed());
  ModelGraph g = smallModel();
  PartitionOptions o;
  o.gpuMemBytes = 72e6;
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  int64_t n = r.assignment.prefillOffloadMinTokens[1];
  ASSERT_GT(n, 1);
  std::vector<int> cpuExperts;
  for (int e = 0; e < 8; ++e)
    if (r.assignment.expertDevice[1][size_t(e)] == "cpu:numa0")
      cpuExperts.push_back(e);
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  auto wins = [&](int64_t p) {
    Shape s{double(p), 0, 1};
    return m.streamedExpertsTime(g.units[1], cpuExperts, gpu, s) <
           m.expertsTime(g.units[1], cpuExperts, cpu, s);
  };
  EXPECT_TRUE(wins(n));
  EXPECT_FALSE(wins(n - 1));
}

// kt-rt streams CPU-packed experts as their packed bytes and widens them on the GPU, so each of
// the two slots holds the packed expert plus the widened (bf16, or f32) one; unpacked experts
// keep one expert in the larger form.
TEST(Partitioner, StreamingSlotHoldsPackedAndWidenedExpert) {
  Unit u = moeUnit(8, 2, 10e6);           // bf16 on the GPU: 5e6 weights
  u.expertFlopsPerToken = 10e6;           // 2 per weight
  EXPECT_EQ(streamingSlotBytes(u), 10e6); // no CPU form: the GPU's
  u.hasCpuStorage = true;
  u.cpuStorage.expertBytes = 5e6; // --cpu-quant int8
  u.cpuStorage.expertFormat = WeightFormat::Int8;
  EXPECT_EQ(streamingSlotBytes(u), 5e6 + 10e6);
  u.expertFormat = WeightFormat::F32; // an f32 plan widens to f32
  u.expertBytes = 20e6;
  EXPECT_EQ(streamingSlotBytes(u), 5e6 + 20e6);
  u.cpuStorage.expertsUnpacked = true; // converted on the host: one expert in the larger form
  EXPECT_EQ(streamingSlotBytes(u), 20e6);

  // The partitioner reserves two such slots on the streaming GPU.
  CostModel m(parsed());
  ModelGraph g = smallModel();
  g.units[1].expertFlopsPerToken = 10e6;
  g.units[1].hasCpuStorage = true;
  g.units[1].cpuStorage.expertBytes = 5e6;
  g.units[1].cpuStorage.expertFormat = WeightFormat::Int8;
  g.units[1].cpuStorage.weightBytes = g.units[1].weightBytes;
  PartitionOptions o;
  o.gpuMemBytes = 72e6;
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  ASSERT_EQ(r.assignment.offloadDevice, "gpu:0");
  bool noted = false;
  for (const std::string& n : r.notes)
    noted = noted || n.find("prefill offload: " + formatBytes(2 * (5e6 + 10e6)) + " of gpu:0") !=
                         std::string::npos;
  EXPECT_TRUE(noted) << "no note reserving 2 x (packed + widened) = 30 MB";
}

TEST(Partitioner, DoesNotFitSaysByHowMuch) {
  CostModel m(parsed());
  ModelGraph g = smallModel();
  PartitionOptions o;
  o.gpuMemBytes = 0;
  o.cpuMemBytes = 50e6;
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;
  EXPECT_FALSE(partition(g, m, o, &r, &why));
  // 80 MB of experts + 31 MB of other weights + 1 MB of KV cache = 112 MB; budget 50 MB.
  EXPECT_NE(why.find("needs 106.8 MiB of CPU memory (76.3 MiB for routed experts, 30.5 MiB for "
                     "other weights and the KV cache)"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("but the CPU budget is 47.7 MiB (short by 59.1 MiB)"), std::string::npos)
      << why;
  EXPECT_NE(why.find("use --cpu-quant int4 (saves 57.2 MiB on the routed experts alone)"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("--gpu-mem is 0 B"), std::string::npos) << why;
}

// --cpu-quant: the same model with CPU-held weights packed as int4 (a quarter of bf16). The GPU
// still holds bf16; the CPU budget, the does-not-fit error and the CPU's decode time use int4.
ModelGraph withInt4CpuForm(ModelGraph g) {
  for (Unit& u : g.units) {
    u.hasCpuStorage = true;
    u.cpuStorage.weightBytes = u.weightBytes / 4;
    u.cpuStorage.sharedBytes = u.sharedBytes / 4;
    u.cpuStorage.expertBytes = u.expertBytes / 4;
    u.cpuStorage.format = WeightFormat::Int4;
    u.cpuStorage.expertFormat = WeightFormat::Int4;
  }
  return g;
}

TEST(Partitioner, CpuQuantSizesCpuWeightsAsPacked) {
  CostModel m(parsed());
  ModelGraph g = withInt4CpuForm(smallModel());
  PartitionOptions o;
  o.gpuMemBytes = 0;
  o.cpuMemBytes = 50e6; // 112 MB as stored does not fit; 28 MB of weights + 1 MB KV as int4 does
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  ASSERT_EQ(r.prediction.devices.size(), 2u);
  EXPECT_NEAR(r.prediction.devices[0].weightBytes, (10e6 + 1e6 + 80e6 + 20e6) / 4, 1);
  // Decode on the CPU reads the int4 bytes: a quarter of the dense weights and of the 2 experts.
  double bytes = (10e6 + 1e6 + 2 * 10e6 + 20e6) / 4 + 1000 * 513;
  EXPECT_NEAR(r.prediction.decodeStepSeconds, bytes / 100e9, 1e-9);
  // The explain rows show the stored size per device.
  EXPECT_NEAR(r.prediction.rows[2].weightBytes, 80e6 / 4, 1); // routed experts, all on the CPU

  // A too-small budget says what int4 already is: no "use --cpu-quant int4" advice.
  o.cpuMemBytes = 10e6;
  EXPECT_FALSE(partition(g, m, o, &r, &why));
  EXPECT_NE(why.find("needs 27.4 MiB of CPU memory"), std::string::npos) << why;
  EXPECT_EQ(why.find("--cpu-quant int4"), std::string::npos) << why;

  // With an unlimited GPU everything moves there, in its stored (bf16) size.
  o.cpuMemBytes = -1;
  o.gpuMemBytes = kUnlimitedBytes;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  EXPECT_NEAR(r.prediction.devices[1].weightBytes, 10e6 + 1e6 + 80e6 + 20e6, 1);
}

TEST(CostModel, LmHeadComputesOnlySampledRows) {
  CostModel m(parsed());
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  Unit head = linearUnit(1e9, 2e9);
  head.kind = UnitKind::LmHead;
  // A 4096-token prefill of one sequence: logits for 1 row, so the weights' bytes dominate.
  EXPECT_DOUBLE_EQ(m.unitTime(head, cpu, {4096, 0, 1}), 1e9 / 100e9);
  Unit linear = linearUnit(1e9, 2e9);
  EXPECT_DOUBLE_EQ(m.unitTime(linear, cpu, {4096, 0, 1}), 4096 * 2e9 / 1000e9);
}

TEST(CostModel, AttentionPairsRunAtTheMeasuredAttentionRate) {
  HardwareProfile p = parsed(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                                    R"("gemv_efficiency": {"f32": 1.0},
    "attention_gflops": {"gqa": 50, "mla": 25},)"));
  EXPECT_EQ(p.cpu.gqaAttentionGflops, 50);
  CostModel m(p);
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  Unit u = attentionUnit(UnitKind::Attention, 0); // heads: only the GPU kernel needs them
  // 100 new tokens, no cache: 5050 pairs of 1000 flops at 50 GFLOP/s (not the 1000 GFLOP/s GEMM).
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {100, 0, 1}), 5050 * 1000 / 50e9);
  u.kind = UnitKind::MlaAttention;
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {100, 0, 1}), 5050 * 1000 / 25e9);
  // Without the field: the f32 GEMM rate.
  CostModel plain(parsed());
  EXPECT_DOUBLE_EQ(plain.unitTime(u, cpu, {100, 0, 1}), 5050 * 1000 / 1000e9);
  EXPECT_NE(
      profileError(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                          R"("gemv_efficiency": {"f32": 1.0}, "attention_gflops": {"gqa": 0},)"))
          .find("cpu.attention_gflops.gqa: expected a positive number"),
      std::string::npos);
}

// The GPU's attention kernel runs one block per (head, token): a prefill fills the GPU and runs
// at attention_gflops, a decode of one token over a long cache runs `heads` blocks at
// attention_block_gflops each.
TEST(CostModel, GpuAttentionRateDependsOnBlocks) {
  HardwareProfile p = parsed(edited(R"("link": {"h2d_gbs")",
                                    R"("attention_gflops": {"mla": 800},
            "attention_block_gflops": {"mla": 4},
            "link": {"h2d_gbs")"));
  EXPECT_EQ(p.gpus[0].mlaAttentionGflops, 800);
  EXPECT_EQ(p.gpus[0].mlaAttentionBlockGflops, 4);
  CostModel m(p);
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = attentionUnit(UnitKind::MlaAttention, 16);
  // Prefill of 512: 16 x 512 blocks x 4 GFLOP/s > 800: the full rate.
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, {512, 0, 1}), 512.0 * 513 / 2 * 1000 / 800e9);
  // Decode over 1000 cached positions: 16 blocks x 4 GFLOP/s = 64 GFLOP/s.
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, {1, 1000, 1}), 1001.0 * 1000 / 64e9);
  // GQA has no rate in this profile: the f32 GEMM rate (100 TFLOP/s), no block limit.
  u.kind = UnitKind::Attention;
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, {1, 1000, 1}), 1001.0 * 1000 / 100e12);
  EXPECT_NE(profileError(edited(R"("link": {"h2d_gbs")",
                                R"("attention_block_gflops": {"mla": -1}, "link": {"h2d_gbs")"))
                .find("gpus[0].attention_block_gflops.mla: expected a positive number"),
            std::string::npos);
  EXPECT_NE(profileError(edited(R"("link": {"h2d_gbs")",
                                R"("attention_gflops": {"mha": 1}, "link": {"h2d_gbs")"))
                .find("gpus[0].attention_gflops.mha: unknown field"),
            std::string::npos);
}

// With the GPU's SM count in the profile, a decode's attention is split over the keys as the
// CUDA backend splits it (kernels/cuda/Attention.cu: ~4 blocks per SM, at most 64 splits of at
// least 32 positions), so many more blocks run at the per-block rate.
TEST(CostModel, GpuDecodeAttentionSplitsOverTheKeys) {
  EXPECT_EQ(gpuAttentionSplits(16, 1, 512, 132), 16);  // 512 / 32 positions
  EXPECT_EQ(gpuAttentionSplits(16, 1, 2048, 132), 33); // ceil(528 / 16)
  EXPECT_EQ(gpuAttentionSplits(32, 1, 4096, 132), 17);
  EXPECT_EQ(gpuAttentionSplits(16, 1, 20, 132), 1);    // too short to split
  EXPECT_EQ(gpuAttentionSplits(16, 512, 512, 132), 1); // a prefill
  EXPECT_EQ(gpuAttentionSplits(16, 1, 2048, 0), 1);    // SM count unknown
  EXPECT_EQ(gpuAttentionSplits(1, 1, 1e6, 132), 64);   // capped
  const std::string rates = R"("attention_gflops": {"mla": 800},
            "attention_block_gflops": {"mla": 4},)";
  const HardwareProfile withoutSms =
      parsed(edited(R"("link": {"h2d_gbs")", rates + R"("link": {"h2d_gbs")"));
  const HardwareProfile withSms =
      parsed(edited(R"("link": {"h2d_gbs")", rates + R"("sm_count": 132, "link": {"h2d_gbs")"));
  EXPECT_EQ(withSms.gpus[0].smCount, 132);
  CostModel unsplit(withoutSms), split(withSms);
  Device gpu;
  ASSERT_TRUE(split.find("gpu:0", &gpu));
  Unit u = attentionUnit(UnitKind::MlaAttention, 16);
  // Decode over 2047 cached positions: 16 heads x 33 splits x 4 GFLOP/s, capped at 800.
  EXPECT_DOUBLE_EQ(unsplit.unitTime(u, gpu, {1, 2047, 1}), 2048.0 * 1000 / 64e9);
  EXPECT_DOUBLE_EQ(split.unitTime(u, gpu, {1, 2047, 1}), 2048.0 * 1000 / 800e9);
  // Over 127 positions: 4 splits of 32, 16 x 4 x 4 = 256 GFLOP/s.
  EXPECT_DOUBLE_EQ(split.unitTime(u, gpu, {1, 127, 1}), 128.0 * 1000 / 256e9);
  EXPECT_NE(profileError(edited(R"("link": {"h2d_gbs")", R"("sm_count": 1.5, "link": {"h2d_gbs")"))
                .find("gpus[0].sm_count: must be a whole number"),
            std::string::npos);
  // The probe's measured split decode by context replaces both: over 1023 cached positions
  // (1024 with the new one), halfway in log2 between 512 (100 GFLOP/s) and 2048 (400).
  const HardwareProfile curve = parsed(edited(
      R"("link": {"h2d_gbs")",
      rates + R"("sm_count": 132, "decode_attention_gflops": {"mla": {"512": 100, "2048": 400}},
            "link": {"h2d_gbs")"));
  CostModel measured(curve);
  EXPECT_DOUBLE_EQ(measured.unitTime(u, gpu, {1, 1023, 1}), 1024.0 * 1000 / 250e9);
  // Prefill keeps attention_gflops (800).
  EXPECT_DOUBLE_EQ(measured.unitTime(u, gpu, {512, 0, 1}), 512.0 * 513 / 2 * 1000 / 800e9);
  EXPECT_NE(profileError(edited(R"("link": {"h2d_gbs")",
                                R"("decode_attention_gflops": {"mha": {"512": 1}},
            "link": {"h2d_gbs")"))
                .find("gpus[0].decode_attention_gflops.mha: unknown name (expected gqa or mla)"),
            std::string::npos);
  EXPECT_NE(
      profileError(edited(R"("link": {"h2d_gbs")",
                          R"("decode_attention_gflops": {"mla": {"x": 1}},
            "link": {"h2d_gbs")"))
          .find("gpus[0].decode_attention_gflops.mla.x: expected a number of cached positions"),
      std::string::npos);
}

// The launch counts mirror runtime/exec/cuda (GpuLaunches.h); these are DeepSeek-V2-Lite's.
TEST(GpuLaunches, CountsMirrorTheCudaBackend) {
  // MLA without q_lora: q, kv_a, o linears + norm + 2 ropes + 2 batched GEMMs; per sequence 2
  // cache copies + the kernel. bf16 adds one rounding kernel per linear.
  GpuLaunches f32 = mlaLaunches(false, false), bf16 = mlaLaunches(true, false);
  EXPECT_EQ(f32.perStep, 8);
  EXPECT_EQ(bf16.perStep, 11);
  EXPECT_EQ(bf16.perSequence, 3);
  EXPECT_EQ(mlaLaunches(true, true).perStep, 11 + 2 + 1); // q_a, q_a norm, q_b instead of q
  // MoE with shared experts, bf16: router (2) + top-k + zero fill + shared (3 x 2 + swiglu +
  // scatter) = 12; per touched expert gather + 3 x 2 + swiglu + scatter = 9; with its norm and
  // residual add, a decode step touching 6 experts issues 2 + 12 + 54 = 68 launches (~70).
  GpuLaunches moe = moeLaunches(true, true, false);
  EXPECT_EQ(moe.perStep, 12);
  EXPECT_EQ(moe.shared, 8);
  EXPECT_EQ(moe.perTouchedExpert, 9);
  EXPECT_EQ(moe.hostSyncs, 1);
  EXPECT_EQ(moe.gpuExpertsSyncs, 2);
  EXPECT_EQ(moeLaunches(false, true, true).shared, 3 + 1 + 1 + 2); // Qwen2's gate: linear + sigmoid
  EXPECT_EQ(attentionLaunches(false, 3, true).perStep, 4 + 3 + 2 + 2);
  EXPECT_EQ(mlpLaunches(true).perStep, 7);
  EXPECT_EQ(glueLaunches("rope"), 2);
  EXPECT_EQ(glueLaunches("rms_norm"), 1);
}

// A GPU unit with a launch structure: the host issues its launches back to back (the GPU cannot
// run ahead of them), then waits a link round trip per blocking copy.
TEST(CostModel, GpuLaunchesBoundSmallSteps) {
  HardwareProfile p =
      parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5}, "launch_overhead_us": 4}])"));
  CostModel m(p);
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = linearUnit(1e6, 0); // 1 us of HBM reads
  u.gpu.perStep = 10;
  u.gpu.perSequence = 3;
  u.gpu.hostSyncs = 2;
  // Decode of 2 sequences: 10 + 2 x 3 launches x 4 us > 1 us of work; 2 round trips of 5 us.
  EXPECT_NEAR(m.unitTime(u, gpu, {2, 0, 2}), 16 * 4e-6 + 2 * 5e-6, 1e-12);
  // A large read hides the launches.
  Unit big = linearUnit(1e9, 0);
  big.gpu = u.gpu;
  EXPECT_NEAR(m.unitTime(big, gpu, {1, 0, 1}), 1e9 / 1000e9 + 2 * 5e-6, 1e-12);
  // Without a launch structure (hand-built units): one launch overhead per kt op, added.
  Unit plain = linearUnit(1e6, 0);
  plain.numOps = 3;
  EXPECT_NEAR(m.unitTime(plain, gpu, {1, 0, 1}), 1e6 / 1000e9 + 3 * 4e-6, 1e-12);
  // Routed experts on the GPU: launches per touched expert plus the grouping's round trips.
  Unit moe = moeUnit(8, 2, 1e3);
  moe.gpu.perTouchedExpert = 9;
  moe.gpu.gpuExpertsSyncs = 2;
  std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  double touched = CostModel::expectedTouched(moe, all, 1);
  EXPECT_NEAR(touched, 2, 1e-12);
  EXPECT_NEAR(m.expertsTime(moe, all, gpu, {1, 0, 1}), touched * 9 * 4e-6 + 2 * 5e-6, 1e-12);
}

// A prefill's kernels are long: the host issues launches while the GPU runs earlier ones, so with
// the probe's launch_issue_us / kernel_floor_us a unit takes max(host issue, GPU work + a floor per
// kernel); a decode (one row per sequence) keeps the launch_overhead_us price, and so does a
// prefill on a profile without the two fields.
TEST(CostModel, PrefillLaunchesOverlapTheGpuWork) {
  HardwareProfile p = parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5},
    "launch_overhead_us": 4, "launch_issue_us": 2, "kernel_floor_us": 1}])"));
  EXPECT_DOUBLE_EQ(p.gpus[0].launchIssueUs, 2);
  EXPECT_DOUBLE_EQ(p.gpus[0].kernelFloorUs, 1);
  HardwareProfile old =
      parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5}, "launch_overhead_us": 4}])"));
  CostModel m(p), decodePrice(old);
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = linearUnit(1e3, 1e3); // tiny work
  u.gpu.perStep = 100;
  u.gpu.hostSyncs = 1;
  EXPECT_NEAR(m.unitTime(u, gpu, {1, 0, 1}), 100 * 4e-6 + 5e-6, 1e-12);   // decode
  EXPECT_NEAR(m.unitTime(u, gpu, {512, 0, 1}), 100 * 2e-6 + 5e-6, 1e-12); // host-bound prefill
  EXPECT_NEAR(decodePrice.unitTime(u, gpu, {512, 0, 1}), 100 * 4e-6 + 5e-6, 1e-12);
  // GPU-bound prefill: 0.5 ms of reads plus 100 kernels of 1 us each, the host's 200 us hidden.
  Unit big = linearUnit(0.5e9, 1e3);
  big.gpu.perStep = 100;
  EXPECT_NEAR(m.unitTime(big, gpu, {512, 0, 1}), 0.5e9 / 1000e9 + 100 * 1e-6, 1e-12);
  EXPECT_NEAR(decodePrice.unitTime(big, gpu, {512, 0, 1}), 0.5e9 / 1000e9, 1e-12);
  // Routed experts of a prefill alike: 8 touched x 9 launches at the host's 2 us.
  Unit moe = moeUnit(8, 2, 1e3);
  moe.gpu.perTouchedExpert = 9;
  std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_NEAR(m.expertsTime(moe, all, gpu, {512, 0, 1}), 8 * 9 * 2e-6, 1e-9);
  EXPECT_NEAR(decodePrice.expertsTime(moe, all, gpu, {512, 0, 1}), 8 * 9 * 4e-6, 1e-9);
}

// A hybrid MoE layer as the CUDA backend runs it (runtime/exec/cuda/MoeOp.cpp): router and top-k
// on the GPU, one synchronisation that brings the choices and x to the host, the host issues the
// shared experts' launches, then computes its experts while the GPU runs them, then copies the
// result back and adds it. Only the GPU's shared-expert work overlaps the CPU's experts: the
// issuing, both copies and the add are on the critical path.
TEST(Predict, HybridLayerOverlapsOnlyTheSharedExperts) {
  HardwareProfile p =
      parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5}, "launch_overhead_us": 4}])"));
  CostModel m(p);
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  ModelGraph g;
  g.numLayers = 1;
  Unit moe = moeUnit(8, 2, 1e6);
  moe.weightBytes = moe.sharedBytes = 1e6; // the router's bytes are negligible
  moe.gpu.perStep = 10;                    // router 3 launches, shared experts 7
  moe.gpu.shared = 7;
  moe.gpu.hostSyncs = 1;
  moe.gpu.hostExpertsLaunches = 2; // the result's async copy and the add
  g.units.push_back(moe);
  Assignment a;
  a.unitDevice = {"gpu:0"};
  a.expertDevice = {std::vector<std::string>(8, "cpu:numa0")};
  a.prefillOffloadMinTokens = {0};
  a.kvBytes = {0};
  Shape decode{1, 0, 1};
  const double us = 1e-6, x = 2048 * 4.0; // one token's activation
  double router = 3 * 4 * us + 5 * us;    // launches, then the routing's round trip
  double shared = 7 * 4 * us;             // launch-bound (1 us of reads)
  double cpuExperts = m.expertsTime(moe, {0, 1, 2, 3, 4, 5, 6, 7}, cpu, decode);
  ASSERT_GT(cpuExperts, 15 * us);
  double copies = x / 20e9 + (5 * us + x / 10e9) + 2 * 4 * us; // x over, result back, copy + add
  double logits = 5 * us + x / 20e9;                           // the step's last row to the host
  EXPECT_NEAR(predictStepSeconds(g, m, a, decode, false),
              router + std::max(shared, 7 * 4 * us + cpuExperts) + copies + logits, 1e-12);
  // Experts on the GPU instead: no host path at all.
  a.expertDevice = {std::vector<std::string>(8, "gpu:0")};
  EXPECT_NEAR(predictStepSeconds(g, m, a, decode, false),
              router + shared + m.expertsTime(moe, {0, 1, 2, 3, 4, 5, 6, 7}, gpu, decode) + logits,
              1e-12);
  // With the probe's pool_wake_us, the host's experts start after the pool wakes from the GPU
  // phase: 60 us more on the host path.
  HardwareProfile pw = p;
  pw.cpu.poolWakeUs = 60;
  CostModel mw(pw);
  a.expertDevice = {std::vector<std::string>(8, "cpu:numa0")};
  EXPECT_NEAR(predictStepSeconds(g, mw, a, decode, false),
              router + std::max(shared, 7 * 4 * us + cpuExperts + 60 * us) + copies + logits,
              1e-12);
}

// CUDA graphs (runtime/exec/cuda/Graphs.cpp) replay a decode step only when every step of the
// plan runs on the GPU: then each launch costs the GPU's kernel floor, not the host's launch
// overhead. One unit left on the CPU turns graphs off for the whole step.
TEST(Predict, GraphDecodeCostsTheKernelFloor) {
  HardwareProfile p = parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5},
    "launch_overhead_us": 4, "launch_issue_us": 2, "kernel_floor_us": 1}])"));
  CostModel m(p);
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  ModelGraph g;
  g.numLayers = 1;
  Unit first = linearUnit(1e3, 1e3), second = linearUnit(1e3, 1e3); // launch-bound
  first.gpu.perStep = 100;
  second.gpu.perStep = 50;
  g.units = {first, second};
  Assignment a;
  a.unitDevice = {"gpu:0", "gpu:0"};
  a.expertDevice = {{}, {}};
  a.prefillOffloadMinTokens = {0, 0};
  a.kvBytes = {0, 0};
  const Shape decode{1, 0, 1};
  const double us = 1e-6, x = double(first.hidden) * 4.0; // one token's hidden state
  const double logits = m.transferTime(gpu, cpu, x);
  // Graph: the kernels' floor plus their (2 ns of) reads, the host's 4 us per launch gone.
  EXPECT_NEAR(predictStepSeconds(g, m, a, decode, false), 150 * 1 * us + logits, 1e-8);
  // The second unit on the CPU: eager launches at the host's 4 us, and the hidden state crosses.
  a.unitDevice = {"gpu:0", "cpu:numa0"};
  EXPECT_NEAR(predictStepSeconds(g, m, a, decode, false),
              100 * 4 * us + m.transferTime(gpu, cpu, x) + m.unitTime(second, cpu, decode), 1e-12);
  // ... and the CPU pool, idle through the GPU's unit, wakes first (pool_wake_us); a CPU unit
  // after a CPU unit does not.
  HardwareProfile pw = p;
  pw.cpu.poolWakeUs = 60;
  CostModel mw(pw);
  EXPECT_NEAR(predictStepSeconds(g, mw, a, decode, false),
              predictStepSeconds(g, m, a, decode, false) + 60 * us, 1e-12);
  a.unitDevice = {"cpu:numa0", "cpu:numa0"};
  EXPECT_NEAR(predictStepSeconds(g, mw, a, decode, false),
              predictStepSeconds(g, m, a, decode, false), 1e-12);
  // A prefill is never a graph: the host issues while the GPU runs (2 us per launch here).
  a.unitDevice = {"gpu:0", "gpu:0"};
  EXPECT_NEAR(predictStepSeconds(g, m, a, {512, 0, 1}, true), 150 * 2 * us + logits, 1e-9);
}

// --gpu-quant int8 on the GPU (Blas::linearInt8): up to 16 rows the int8 GEMV (one launch, int8
// bytes); more rows widen each row block to bf16 (read 1 B + write 2 B per weight), run a bf16
// GEMM at the bf16 rate (reading the 2 B again) and scale the output columns, with 3 launches per
// row block and one for the scaling instead of the 1 GpuLaunches counts for a linear.
TEST(CostModel, GpuInt8PrefillWidensToBf16) {
  HardwareProfile p =
      parsed(edited(R"("latency_us": 5}}])", R"("latency_us": 5}, "launch_overhead_us": 4}])"));
  CostModel m(p);
  Device gpu;
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  const double n = 4096, k = 4096, w = n * k, bw = 1000e9;
  Unit u = linearUnit(w + 4 * n, 2 * w);
  u.format = WeightFormat::Int8;
  u.gpu.perStep = 1;
  u.gpuInt8.add(int64_t(n), int64_t(k), /*countedLaunches=*/1);
  EXPECT_EQ(u.gpuInt8.rowBlocks, 1);
  EXPECT_EQ(u.gpuInt8.extraLaunches(1), 0);  // decode: the GEMV is the counted launch
  EXPECT_EQ(u.gpuInt8.extraLaunches(12), 1); // two GEMV launches (8 rows each)
  EXPECT_EQ(u.gpuInt8.extraLaunches(512), 3);
  // Decode: unchanged, the int8 bytes over the bandwidth.
  EXPECT_NEAR(m.unitTime(u, gpu, {1, 0, 1}), (w + 4 * n) / bw, 1e-12);
  // Prefill of 512 rows: the widening, the bf16 GEMM (100 TFLOP/s: bf16 falls back to f32 here),
  // the column scaling, one after another.
  double widened = 3 * w / bw + std::max(2 * 512 * w / 100e12, 2 * w / bw) + 8 * 512 * n / bw;
  EXPECT_NEAR(m.unitTime(u, gpu, {512, 0, 1}), widened, 1e-12);
  // A matrix over 32M weights is widened in row blocks, 3 launches each.
  GpuInt8Work big;
  big.add(102400, 2048, 1); // an lm_head: 16384-row blocks
  EXPECT_EQ(big.rowBlocks, 7);
  EXPECT_EQ(big.extraLaunches(512), 3 * 7 + 1 - 1);
  // A small matrix is bound by the launches: 4 of 4 us.
  Unit small = linearUnit(64 * 64 + 4 * 64, 2 * 64 * 64);
  small.gpu.perStep = 1;
  small.gpuInt8.add(64, 64, 1);
  EXPECT_NEAR(m.unitTime(small, gpu, {512, 0, 1}), 4 * 4e-6, 1e-12);
  // Routed experts: each touched expert widens its 3 matrices for its own rows (8 experts, top-2,
  // 512 tokens: 128 rows each), 9 launches more than the 6 counted per expert.
  Unit moe = moeUnit(8, 2, 3 * (1408 * 2048 + 4 * 1408));
  moe.expertFormat = WeightFormat::Int8;
  moe.gpu.perTouchedExpert = 6;
  moe.gpu.gpuExpertsSyncs = 2;
  for (int i = 0; i < 3; ++i)
    moe.gpuInt8Expert.add(1408, 2048, 1);
  std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7};
  double touched = CostModel::expectedTouched(moe, all, 512);
  ASSERT_NEAR(touched, 8, 1e-9);
  const double we = 3 * 1408 * 2048.0;
  double perExpert =
      3 * we / bw + std::max(2 * 128 * we / 100e12, 2 * we / bw) + 8 * 128 * 3 * 1408 / bw;
  EXPECT_NEAR(m.expertsTime(moe, all, gpu, {512, 0, 1}),
              std::max(touched * perExpert, touched * 15 * 4e-6) + 2 * 5e-6, 1e-12);
}

// The CUDA backend's upload rule (CudaBackend::upload): matrices in the compute dtype, vectors and
// MLA's kv_b_proj f32; kt-opt without a compute dtype sizes them as stored.
TEST(Units, GpuFormatFollowsTheUploadRule) {
  GpuDtype d;
  ASSERT_TRUE(parseGpuDtype("bf16", &d));
  EXPECT_EQ(gpuFormat(d, 2, false, WeightFormat::F32), WeightFormat::BF16);
  EXPECT_EQ(gpuFormat(d, 3, false, WeightFormat::BF16), WeightFormat::BF16);
  EXPECT_EQ(gpuFormat(d, 2, /*forceF32=*/true, WeightFormat::BF16), WeightFormat::F32);
  EXPECT_EQ(gpuFormat(d, 1, false, WeightFormat::BF16), WeightFormat::F32);
  ASSERT_TRUE(parseGpuDtype("f32", &d));
  EXPECT_EQ(gpuFormat(d, 2, false, WeightFormat::BF16), WeightFormat::F32);
  EXPECT_EQ(gpuFormat(d, 3, false, WeightFormat::Int8), WeightFormat::F32);
  ASSERT_TRUE(parseGpuDtype("", &d));
  EXPECT_EQ(gpuFormat(d, 2, false, WeightFormat::BF16), WeightFormat::BF16);
  EXPECT_FALSE(parseGpuDtype("fp8", &d));
}

TEST(CostModel, UnpackedFlopsRunAtThePlainRate) {
  HardwareProfile p = parsed(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                                    R"("gemv_efficiency": {"f32": 1.0},
    "plain_gflops": {"f32": 10},)"));
  CostModel m(p);
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit u = linearUnit(0, 3e9);
  u.hasCpuStorage = true;
  u.cpuStorage.unpackedFlopsPerToken = 1e9; // e.g. MLA's kv_b_proj, kept unpacked
  // 10 tokens: 2e10 packed flops at 1000 GFLOP/s + 1e10 unpacked at 10 GFLOP/s.
  EXPECT_DOUBLE_EQ(m.unitTime(u, cpu, {10, 0, 1}), 2e10 / 1000e9 + 1e10 / 10e9);
  // On the GPU everything runs at its peak.
  EXPECT_DOUBLE_EQ(m.unitTime(u, gpu, {10, 0, 1}), 3e10 / 100e12);
  // Routed experts without --cpu-quant are multiplied in plain loops too.
  Unit moe = moeUnit(4, 4, 1e6);
  moe.hasCpuStorage = true;
  moe.cpuStorage.expertBytes = 1e6;
  moe.cpuStorage.expertFormat = WeightFormat::BF16;
  moe.cpuStorage.expertsUnpacked = true;
  std::vector<int> all = {0, 1, 2, 3};
  double flops = 100 * 4 * moe.expertFlopsPerToken; // 100 tokens, each to all 4 experts
  EXPECT_DOUBLE_EQ(m.expertsTime(moe, all, cpu, {100, 0, 1}), flops / 10e9);
}

// A 1-token product over unpacked matrices streams at plain_gemv_efficiency (the plain loops
// convert every element), the packed ones at gemv_efficiency; without the field, the latter.
TEST(CostModel, UnpackedBytesStreamAtThePlainGemvEfficiency) {
  HardwareProfile p = parsed(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                                    R"("gemv_efficiency": {"f32": 1.0},
    "plain_gemv_efficiency": {"f32": 0.25},)"));
  EXPECT_EQ(p.cpu.plainGemvEfficiency.get(WeightFormat::BF16), 0.25); // falls back to f32
  CostModel m(p), packedOnly(parsed());
  Device cpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  // 1e9 bytes, a quarter of its FLOPs (so of its bytes) on unpacked matrices, at 100 GB/s.
  Unit u = linearUnit(1e9, 4e3);
  u.hasCpuStorage = true;
  u.cpuStorage.weightBytes = 1e9;
  u.cpuStorage.unpackedFlopsPerToken = 1e3;
  EXPECT_NEAR(m.unitTime(u, cpu, {1, 0, 1}), 0.75e9 / 100e9 + 0.25e9 / (100e9 * 0.25), 1e-12);
  EXPECT_NEAR(packedOnly.unitTime(u, cpu, {1, 0, 1}), 1e9 / 100e9, 1e-12);
  // Unpacked routed experts: all their bytes.
  Unit moe = moeUnit(4, 4, 1e6);
  moe.hasCpuStorage = true;
  moe.cpuStorage.expertBytes = 1e6;
  moe.cpuStorage.expertFormat = WeightFormat::F32;
  moe.cpuStorage.expertsUnpacked = true;
  std::vector<int> all = {0, 1, 2, 3};
  EXPECT_NEAR(m.expertsTime(moe, all, cpu, {1, 0, 1}), 4e6 / (100e9 * 0.25), 1e-12);
  EXPECT_NE(profileError(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                                R"("gemv_efficiency": {"f32": 1.0},
    "plain_gemv_efficiency": {"bf16": 1.5},)"))
                .find("cpu.plain_gemv_efficiency.bf16: must be at most 1"),
            std::string::npos);
}

// kt-rt probe's rows curves: a packed or plain product's rate at the rows each matrix gets, read
// off the measured points (linear in log2(rows) between them, flat outside them); format fallback
// as in every per-format table.
TEST(HardwareProfile, RowsCurveInterpolates) {
  HardwareProfile p = parsed(edited(R"("gemv_efficiency": {"f32": 1.0},)",
                                    R"("gemv_efficiency": {"f32": 1.0},
    "gemm_rows_gflops": {"int8": {"8": 100, "32": 300, "512": 900}},
    "plain_rows_gflops": {"f32": {"16": 5, "64": 20}},)"));
  const RowsCurve& c = p.cpu.gemmRowsGflops;
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int8, 8), 100);
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int8, 16), 200); // halfway in log2 between 8 and 32
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int8, 128), 600);
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int8, 4), 100); // below the first point: flat
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int8, 4096), 900);
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::Int4, 8), 100); // int4 -> int8
  EXPECT_DOUBLE_EQ(c.at(WeightFormat::F32, 8), 0);    // no curve on f32's chain
  EXPECT_DOUBLE_EQ(p.cpu.plainRowsGflops.at(WeightFormat::BF16, 32), 12.5); // bf16 -> f32
  EXPECT_TRUE(parsed().cpu.gemmRowsGflops.empty()); // older profiles: no curve

  auto bad = [](const std::string& curve) {
    return profileError(
        edited(R"("gemv_efficiency": {"f32": 1.0},)",
               R"("gemv_efficiency": {"f32": 1.0}, "gemm_rows_gflops": )" + curve + ","));
  };
  EXPECT_EQ(bad(R"({"int8": {"eight": 100}})"),
            "hw.json: cpu.gemm_rows_gflops.int8.eight: expected a row count (a positive integer) "
            "as the key");
  EXPECT_EQ(bad(R"({"int8": {"0": 100}})"),
            "hw.json: cpu.gemm_rows_gflops.int8.0: expected a row count (a positive integer) as "
            "the key");
  EXPECT_EQ(bad(R"({"int8": {"8": -1}})"),
            "hw.json: cpu.gemm_rows_gflops.int8.8: expected a positive number, got -1");
  EXPECT_EQ(bad(R"({"int8": {}})"),
            "hw.json: cpu.gemm_rows_gflops.int8: needs at least one point (\"ROWS\": GFLOP/s)");
  EXPECT_EQ(bad(R"({"fp8": {"8": 1}})"),
            "hw.json: cpu.gemm_rows_gflops.fp8: unknown weight format (expected f32, bf16, f16, "
            "int8 or int4)");
  EXPECT_EQ(bad(R"({"int8": [100, 200]})"),
            "hw.json: cpu.gemm_rows_gflops.int8: expected an object, got [100,200]");
}

// A prefill's routed experts each get T*k/E rows: with the curve, their FLOPs run at the rate
// measured at that many rows, not at gemm_gflops' large-GEMM rate; without it, as before.
TEST(CostModel, ExpertFlopsRunAtTheRateOfTheirRows) {
  const std::string curve = R"("gemv_efficiency": {"f32": 1.0},
    "gemm_rows_gflops": {"int8": {"8": 4000, "32": 16000, "512": 40000}},
    "plain_rows_gflops": {"bf16": {"8": 2, "512": 20}},)";
  HardwareProfile p = parsed(edited(R"("gemv_efficiency": {"f32": 1.0},)", curve));
  CostModel m(p), largeTile(parsed());
  Device cpu, gpu;
  ASSERT_TRUE(m.find("cpu:numa0", &cpu));
  ASSERT_TRUE(m.find("gpu:0", &gpu));
  Unit moe = moeUnit(64, 4, 1e6);
  moe.hasCpuStorage = true;
  moe.cpuStorage.expertBytes = 0.5e6;
  moe.cpuStorage.expertFormat = WeightFormat::Int8;
  moe.expertFlopsPerToken = 1e8; // compute-bound at these row counts
  std::vector<int> all(64);
  for (int e = 0; e < 64; ++e)
    all[size_t(e)] = e;
  // 512 tokens x 4 / 64 = 32 rows per expert (all 64 touched): 16000 GFLOP/s, not 40000.
  Shape prefill{512, 0, 1};
  double flops = 512 * 4 * moe.expertFlopsPerToken;
  double touched = CostModel::expectedTouched(moe, all, 512);
  ASSERT_NEAR(touched, 64, 1e-6);
  double memory = touched * 0.5e6 / 100e9;
  ASSERT_LT(memory, flops / 16000e9); // compute-bound, so the rate decides
  EXPECT_NEAR(m.expertsTime(moe, all, cpu, prefill), flops / 16000e9, 1e-12);
  EXPECT_NEAR(largeTile.expertsTime(moe, all, cpu, prefill), flops / 40000e9, 1e-12);
  // 1024 tokens: 64 rows per expert, a quarter of the way from 32 to 512 in log2.
  double flops64 = 1024 * 4 * moe.expertFlopsPerToken;
  EXPECT_NEAR(m.expertsTime(moe, all, cpu, {1024, 0, 1}), flops64 / 22000e9, 1e-9);
  // The GPU ignores the CPU's curves.
  EXPECT_NEAR(m.expertsTime(moe, all, gpu, prefill), largeTile.expertsTime(moe, all, gpu, prefill),
              1e-15);
  // Unpacked experts read the plain curve; a dense unit gets all T rows.
  moe.cpuStorage.expertsUnpacked = true;
  moe.cpuStorage.expertFormat = WeightFormat::BF16;
  double plainRate = 2 + (20 - 2) * (std::log2(32.0) - 3) / (9 - 3);
  EXPECT_NEAR(m.expertsTime(moe, all, cpu, prefill), flops / (plainRate * 1e9), 1e-9);
  Unit dense = linearUnit(1e6, 1e9);
  dense.hasCpuStorage = true;
  dense.cpuStorage.weightBytes = 0.5e6;
  dense.cpuStorage.format = WeightFormat::Int8;
  EXPECT_NEAR(m.unitTime(dense, cpu, prefill), 512 * 1e9 / 40000e9, 1e-12);
}

TEST(Units, CpuQuantSchemes) {
  QuantSpec q;
  ASSERT_TRUE(parseCpuQuant("int4", &q));
  EXPECT_EQ(q.format, WeightFormat::Int4);
  EXPECT_EQ(q.group, 32);
  ASSERT_TRUE(parseCpuQuant("int4:g128:asym", &q));
  EXPECT_EQ(q.group, 128);
  EXPECT_FALSE(q.symmetric);
  ASSERT_TRUE(parseCpuQuant("bf16", &q));
  EXPECT_EQ(q.format, WeightFormat::BF16);
  EXPECT_FALSE(parseCpuQuant("int3", &q));
  // Groups must divide the input size: g128 -> g32 -> int8 (what kt-quantize-weights does).
  EXPECT_EQ(effectiveCpuQuant({WeightFormat::Int4, 128, true}, 256).group, 128);
  EXPECT_EQ(effectiveCpuQuant({WeightFormat::Int4, 128, true}, 96).group, 32);
  EXPECT_EQ(effectiveCpuQuant({WeightFormat::Int4, 32, true}, 100).format, WeightFormat::Int8);
}

TEST(Partitioner, OverridesAndExpertCap) {
  CostModel m(parsed());
  ModelGraph g = smallModel();
  g.units[2].names = {"lm_head", "lm_head.weight"};
  for (int e = 0; e < 8; ++e)
    g.units[1].expertNames.push_back(
        {"experts", "model.layers.0.mlp.experts." + std::to_string(e) + ".up_proj.weight"});
  PartitionOptions o;
  o.gpuMemBytes = kUnlimitedBytes;
  o.kvTokens = 1000;
  o.expertsOnGpu = 0;
  PlacementOverride ov;
  std::string why;
  ASSERT_TRUE(parsePlacementOverride("^lm_head$=cpu:numa0", &ov, &why)) << why;
  o.overrides.push_back(ov);
  ASSERT_TRUE(parsePlacementOverride("experts\\.7\\.=gpu:0", &ov, &why)) << why;
  o.overrides.push_back(ov);
  PartitionResult r;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  EXPECT_EQ(r.assignment.unitDevice[2], "cpu:numa0");
  for (int e = 0; e < 8; ++e)
    EXPECT_EQ(r.assignment.expertDevice[1][size_t(e)], e == 7 ? "gpu:0" : "cpu:numa0") << e;

  EXPECT_FALSE(parsePlacementOverride("([=gpu:0", &ov, &why));
  EXPECT_NE(why.find("invalid regex '(['"), std::string::npos) << why;
  o.overrides = {{"lm_head", "gpu:7"}};
  EXPECT_FALSE(partition(g, m, o, &r, &why));
  EXPECT_EQ(why, "placement override 'lm_head=gpu:7': the profile has no device 'gpu:7' (it has "
                 "cpu:numa0, gpu:0)");
}

TEST(Explain, TableAndJson) {
  HardwareProfile p = parsed();
  CostModel m(p);
  ModelGraph g = smallModel();
  PartitionOptions o;
  o.gpuMemBytes = 72e6;
  o.kvTokens = 1000;
  PartitionResult r;
  std::string why;
  ASSERT_TRUE(partition(g, m, o, &r, &why)) << why;
  std::string text = explainText(g, p, o, r);
  EXPECT_NE(text.find("kt-partition: small (1 layers) on unit [placeholder numbers]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("routed experts          2 gpu:0 / 6 cpu"), std::string::npos) << text;
  EXPECT_NE(text.find("predicted: prefill 512 tokens in"), std::string::npos) << text;
  std::string json = explainJson(g, p, o, r);
  EXPECT_NE(json.find("\"group\": \"routed experts\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"decode_tokens_per_second\""), std::string::npos) << json;
}

} // namespace
} // namespace kt::cost
