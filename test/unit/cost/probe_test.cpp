// runtime/probe: the profile JSON that kt-rt probe writes is accepted by the cost model's parser
// and carries the measured numbers into the right fields; gemv_efficiency takes the runtime ISA's
// median rate; and the real command writes a valid profile on this machine.
#include "compiler/cost/HardwareProfile.h"
#include "runtime/probe/Probe.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace kt::probe {
namespace {

// A two-node machine with AVX-512 and AMX numbers and one GPU, as the probe would fill it.
ProbeResult syntheticResult() {
  ProbeResult r;
  r.cpu.model = "Test CPU";
  r.cpu.cores = 16;
  r.cpu.isa = {"avx2", "avx512", "avx512_bf16", "avx512_vnni", "amx"};
  r.cpu.l1dPerCore = 48 << 10;
  r.cpu.l2PerCore = 2 << 20;
  r.cpu.l3PerNode = 32 << 20;
  r.cpu.arrayBytes = 512 << 20;
  r.cpu.forkJoinUs = 7.5;
  r.cpu.wakeUs = 55;
  r.cpu.mlaPrefillGflops = {{128, 150}, {2048, 90}};
  r.cpu.gqaDecodeGflops = {{512, 35}, {8192, 30}};
  for (int i = 0; i < 2; ++i) {
    NodeResult n;
    n.index = i;
    n.cores = 8;
    n.threadsUsed = 8;
    n.memoryBytes = uint64_t(64) << 30;
    n.readGBs = 100 + i;
    n.readMedianGBs = 80 + i;
    r.cpu.nodes.push_back(n);
  }
  // avx512 GEMV medians 40 (f32) and 20 (int4); avx2 has a higher f32 rate that must be ignored
  // (the runtime runs the best ISA); amx has no GEMV.
  // Fields: isa, format, best GEMV, median GEMV, median read just before it (0: use the node's),
  // GEMM GFLOP/s.
  r.cpu.kernels = {{"avx2", "f32", 90, 70, 0, 300},
                   {"avx512", "f32", 60, 40, 0, 900},
                   {"avx512", "int4", 30, 20, 0, 700},
                   {"avx512", "int8", 200, 120, 0, 2000}, // cache effect: capped to 1
                   {"avx512", "bf16", 50, 30, 60, 1500},  // its own read reference: 30 / 60
                   {"amx", "bf16", 0, 0, 0, 20000}};
  // The rows curves: packed int8 at 3 row counts, plain bf16 at 2 (one unmeasured, left out).
  r.cpu.rowsRates = {{"int8", false, 8, 300}, {"int8", false, 32, 900}, {"int8", false, 512, 2600},
                     {"bf16", true, 8, 40},   {"bf16", true, 512, 150}, {"f32", true, 8, 0}};
  // The routed-expert path: int8 at 2 row counts (a failed point, 0, is left out).
  r.cpu.expertRates = {{"int8", false, 8, 250}, {"int8", false, 64, 1200}, {"int4", false, 8, 0}};
  GpuResult g;
  g.index = 0;
  g.name = "Test GPU";
  g.memoryBytes = uint64_t(24) << 30;
  g.bandwidthGBs = 900;
  g.gemmTflops = {{"f32", 50}, {"bf16", 150}};
  g.gemvEfficiency = {{"bf16", 0.85}};
  g.h2dGBs = 25;
  g.d2hGBs = 26;
  g.latencyUs = 9;
  g.moveH2dGBs = 6.5;
  g.moveD2hGBs = 4.5;
  g.launchUs = 4;
  g.launchSyncUs = 11;
  g.launchIssueUs = 2.5;
  g.kernelFloorUs = 1.5;
  g.mlaAttentionGflops = 800;
  g.mlaAttentionBlockGflops = 3.5;
  g.mlaPrefillGflops = {{512, 800}, {2048, 500}};
  g.decodeGraphKernelUs = 3.2;
  g.decodeEagerKernelUs = 9.5;
  g.decodeGemvGBs = {{"bf16", {{1 << 20, 700}, {16 << 20, 2100}}}, {"int8", {{1 << 20, 400}}}};
  g.decodeMoeGBs = {{"bf16", {{9437184, 1900}}}};
  // The whole grouped chunk under random routing: the default layout under the curve names, the
  // other one and the host's grouping time as diagnostics.
  g.groupedMoeLayout = "padded";
  g.groupedMoeGflops = {{"bf16", {{12, 60000}, {96, 180000}}}};
  g.groupedMoeGflopsI768 = {{"bf16", {{16, 50000}}}, {"f32", {{16, 20000}}}};
  g.groupedMoeAltGflops = {{"bf16", {{12, 70000}}}};
  g.groupedMoeHostUs = {{12, 8.5}};
  g.groupedMoeSkewedGflops = {{"bf16", {{12, 40000}}}};
  g.groupedMoeSkewedGflopsI768 = {{"bf16", {{16, 30000}}}};
  g.groupedMoeShareUniform[0] = 0.28;
  g.groupedMoeShareSkewed[0] = 0.62;
  // The i768 shape's shares not measured: its skewed curve is left out of the profile.
  r.gpus.push_back(g);
  r.seconds = 12;
  return r;
}

TEST(ProbeTest, GemvEfficiencyUsesTheRuntimeIsasMedian) {
  auto eff = gemvEfficiency(syntheticResult().cpu);
  EXPECT_DOUBLE_EQ(eff.at("f32"), 40.0 / 80.0); // avx512 (best ISA), not avx2's 70
  EXPECT_DOUBLE_EQ(eff.at("int4"), 20.0 / 80.0);
  EXPECT_DOUBLE_EQ(eff.at("int8"), 1.0); // capped
  EXPECT_DOUBLE_EQ(eff.at("bf16"), 0.5); // against the read sweep measured next to it
}

TEST(ProbeTest, ProfileJsonParsesWithMeasuredNumbers) {
  std::string json = profileJson(syntheticResult(), "test-box");
  cost::HardwareProfile p;
  std::string error;
  ASSERT_TRUE(cost::parseHardwareProfile(json, "probe.json", &p, &error)) << error << "\n" << json;
  EXPECT_EQ(p.name, "test-box");
  EXPECT_EQ(p.source, "measured");
  ASSERT_EQ(p.cpu.numaNodes.size(), 2u);
  EXPECT_DOUBLE_EQ(p.cpu.numaNodes[1].bandwidthGBs, 81); // sustained: the median block
  EXPECT_EQ(p.cpu.numaNodes[0].cores, 8);
  EXPECT_DOUBLE_EQ(p.cpu.numaNodes[0].memoryBytes, double(uint64_t(64) << 30));
  EXPECT_DOUBLE_EQ(p.cpu.gemvEfficiency.get(cost::WeightFormat::F32), 0.5);
  EXPECT_DOUBLE_EQ(p.cpu.gemmGflops.at("amx").get(cost::WeightFormat::BF16), 20000);
  EXPECT_DOUBLE_EQ(p.cpu.bestGemmGflops(cost::WeightFormat::F32), 900);
  EXPECT_DOUBLE_EQ(p.cpu.opOverheadUs, 7.5);
  EXPECT_DOUBLE_EQ(p.cpu.poolWakeUs, 55);
  EXPECT_DOUBLE_EQ(p.cpu.prefillAttentionGflops.atKey("mla", 2048), 90);
  EXPECT_DOUBLE_EQ(p.cpu.prefillAttentionGflops.atKey("gqa", 512), 0); // not measured: absent
  EXPECT_DOUBLE_EQ(p.cpu.decodeAttentionGflops.atKey("gqa", 8192), 30);
  EXPECT_DOUBLE_EQ(p.cpu.decodeAttentionGflops.atKey("mla", 512), 0);
  EXPECT_DOUBLE_EQ(p.cpu.caches.l3PerNode, double(32 << 20));
  EXPECT_DOUBLE_EQ(p.cpu.gemmRowsGflops.at(cost::WeightFormat::Int8, 32), 900);
  EXPECT_DOUBLE_EQ(p.cpu.gemmRowsGflops.at(cost::WeightFormat::Int8, 512), 2600);
  EXPECT_DOUBLE_EQ(p.cpu.plainRowsGflops.at(cost::WeightFormat::BF16, 8), 40);
  EXPECT_EQ(p.cpu.plainRowsGflops.points.count("f32"), 0u); // not measured: absent
  EXPECT_DOUBLE_EQ(p.cpu.expertRowsGflops.at(cost::WeightFormat::Int8, 64), 1200);
  EXPECT_EQ(p.cpu.expertRowsGflops.points.count("int4"), 0u); // 0: not written
  ASSERT_EQ(p.gpus.size(), 1u);
  EXPECT_DOUBLE_EQ(p.gpus[0].gemmTflops.get(cost::WeightFormat::BF16), 150);
  EXPECT_DOUBLE_EQ(p.gpus[0].gemvEfficiency.get(cost::WeightFormat::BF16), 0.85);
  EXPECT_DOUBLE_EQ(p.gpus[0].link.h2dGBs, 25);
  EXPECT_DOUBLE_EQ(p.gpus[0].link.latencyUs, 9);
  EXPECT_DOUBLE_EQ(p.gpus[0].link.moveH2dGBs, 6.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].link.moveD2hGBs, 4.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].launchOverheadUs, 4); // the runtime kernels' rate, not 11
  EXPECT_DOUBLE_EQ(p.gpus[0].launchIssueUs, 2.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].kernelFloorUs, 1.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].mlaAttentionGflops, 800);
  EXPECT_DOUBLE_EQ(p.gpus[0].mlaAttentionBlockGflops, 3.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].gqaAttentionGflops, 0); // not measured: absent, not 0 in the file
  EXPECT_DOUBLE_EQ(p.gpus[0].prefillAttentionGflops.atKey("mla", 2048), 500);
  EXPECT_DOUBLE_EQ(p.gpus[0].decodeGraphKernelUs, 3.2);
  EXPECT_DOUBLE_EQ(p.gpus[0].decodeEagerKernelUs, 9.5);
  EXPECT_DOUBLE_EQ(p.gpus[0].decodeGemvGBs.at(cost::WeightFormat::BF16, 16 << 20), 2100);
  EXPECT_DOUBLE_EQ(p.gpus[0].decodeGemvGBs.at(cost::WeightFormat::Int8, 1 << 20), 400);
  EXPECT_DOUBLE_EQ(p.gpus[0].decodeMoeGBs.at(cost::WeightFormat::BF16, 9437184), 1900);
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeGflops.at(cost::WeightFormat::BF16, 96), 180000);
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeGflopsI768.at(cost::WeightFormat::F32, 16), 20000);
  // The other layout's rates are diagnostics for people, not a curve of the profile.
  EXPECT_NE(json.find("\"_grouped_moe_alt_gflops\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"layout\": \"ragged\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"grouped_moe_host_us\""), std::string::npos) << json;
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeSkewedGflops.at(cost::WeightFormat::BF16, 12), 40000);
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeSkew.uniform, 0.28);
  EXPECT_DOUBLE_EQ(p.gpus[0].groupedMoeSkew.skewed, 0.62);
  EXPECT_TRUE(p.gpus[0].groupedMoeSkewedGflopsI768.empty());
  EXPECT_EQ(json.find("\"grouped_moe_skewed_gflops_i768\""), std::string::npos) << json;
  EXPECT_GT(p.gpus[0].reservedBytes, 0);
  EXPECT_LT(p.gpus[0].reservedBytes, p.gpus[0].memoryBytes);
  EXPECT_NE(json.find("\"_measured\""), std::string::npos);
}

// The device VM's case: hwloc's only NUMA node says 8.5 GiB of a 128 GiB guest -> MemTotal wins;
// consistent numbers are kept; several nodes that add up to too little are scaled in proportion.
TEST(ProbeTest, NodeMemoryIsCheckedAgainstMemTotal) {
  const uint64_t GiB = uint64_t(1) << 30;
  std::string note;
  auto m = decideNodeMemory({9088516096ull}, 128 * GiB, &note);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], 128 * GiB);
  EXPECT_NE(note.find("using MemTotal"), std::string::npos) << note;

  m = decideNodeMemory({125 * GiB}, 128 * GiB, &note); // kernel reserve: believable, kept
  EXPECT_EQ(m[0], 125 * GiB);
  EXPECT_TRUE(note.empty()) << note;
  m = decideNodeMemory({96 * GiB}, 128 * GiB, &note); // exactly 75%: kept
  EXPECT_EQ(m[0], 96 * GiB);
  m = decideNodeMemory({95 * GiB}, 128 * GiB, &note); // just under: replaced
  EXPECT_EQ(m[0], 128 * GiB);

  m = decideNodeMemory({64 * GiB, 63 * GiB}, 128 * GiB, &note); // two consistent nodes
  EXPECT_EQ(m[0], 64 * GiB);
  EXPECT_EQ(m[1], 63 * GiB);
  EXPECT_TRUE(note.empty());
  m = decideNodeMemory({8 * GiB, 24 * GiB}, 128 * GiB, &note); // too little: scaled 1:3
  EXPECT_EQ(m[0], 32 * GiB);
  EXPECT_EQ(m[1], 96 * GiB);
  EXPECT_NE(note.find("scaled"), std::string::npos) << note;
  m = decideNodeMemory({0, 0}, 128 * GiB, &note); // hwloc knows nothing: split evenly
  EXPECT_EQ(m[0], 64 * GiB);
  EXPECT_EQ(m[1], 64 * GiB);
  m = decideNodeMemory({64 * GiB, 0}, 128 * GiB, &note); // one unknown gets the mean
  EXPECT_EQ(m[0], 64 * GiB);
  EXPECT_EQ(m[1], 64 * GiB);
  m = decideNodeMemory({9 * GiB}, 0, &note); // no MemTotal: nothing to check against
  EXPECT_EQ(m[0], 9 * GiB);
  EXPECT_GT(machineMemoryBytes(), 0u); // this machine has /proc/meminfo
}

TEST(ProbeTest, ProfileWithoutGpuOrKernelsStillParses) {
  ProbeResult r = syntheticResult();
  r.gpus.clear();
  r.gpuNote = "this kt-rt was built without CUDA";
  r.cpu.kernels = {{"avx2", "f32", 0, 0, 0, 50}};
  std::string json = profileJson(r, "bare");
  cost::HardwareProfile p;
  std::string error;
  ASSERT_TRUE(cost::parseHardwareProfile(json, "probe.json", &p, &error)) << error;
  EXPECT_TRUE(p.gpus.empty());
  EXPECT_GT(p.cpu.gemvEfficiency.get(cost::WeightFormat::F32), 0);
  EXPECT_NE(json.find("built without CUDA"), std::string::npos);
}

// The real thing: kt-rt probe --quick on this machine writes a profile the parser accepts, with
// plausible numbers. (~20-40 s on a loaded 2-core VM.)
TEST(ProbeTest, KtRtProbeWritesAValidProfile) {
  std::string dir = testing_util::tempDir("kt_probe_", "cli");
  std::string out = dir + "/hw.json";
  auto r = testing_util::run(std::string(KT_BINARY_DIR) + "/tools/kt-rt/kt-rt probe --quick " +
                             "--no-gpu --name probe-test -o " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("memory bandwidth"), std::string::npos) << "no progress lines";
  cost::HardwareProfile p;
  std::string error;
  ASSERT_TRUE(cost::loadHardwareProfile(out, &p, &error)) << error;
  EXPECT_EQ(p.name, "probe-test");
  EXPECT_EQ(p.source, "measured");
  ASSERT_FALSE(p.cpu.numaNodes.empty());
  EXPECT_GT(p.cpu.numaNodes[0].bandwidthGBs, 0.1);
  EXPECT_LT(p.cpu.numaNodes[0].bandwidthGBs, 5000);
  EXPECT_GT(p.cpu.bestGemmGflops(cost::WeightFormat::F32), 0.1);
  EXPECT_GT(p.cpu.opOverheadUs, 0);
  // The rows curves of every packed format and of the plain loops, at the quick row counts.
  for (const char* f : {"f32", "bf16", "int8", "int4"}) {
    ASSERT_EQ(p.cpu.gemmRowsGflops.points.count(f), 1u) << f;
    EXPECT_EQ(p.cpu.gemmRowsGflops.points.at(f).size(), 4u) << f;
    EXPECT_GT(p.cpu.gemmRowsGflops.points.at(f).at(8), 0.01) << f;
  }
  ASSERT_EQ(p.cpu.plainRowsGflops.points.count("bf16"), 1u);
  EXPECT_GT(p.cpu.plainRowsGflops.points.at("bf16").at(512), 0.01);
  EXPECT_NE(r.output.find("products by rows per matrix"), std::string::npos) << r.output;
  // The routed-expert path (cpuops::routedExpertsOver) per packed format at the quick rows.
  for (const char* f : {"bf16", "int8", "int4"}) {
    ASSERT_EQ(p.cpu.expertRowsGflops.points.count(f), 1u) << f;
    EXPECT_EQ(p.cpu.expertRowsGflops.points.at(f).size(), expertCurveRows(true).size()) << f;
    EXPECT_GT(p.cpu.expertRowsGflops.points.at(f).at(32), 0.01) << f;
  }
  EXPECT_NE(r.output.find("routed-expert path by rows per expert"), std::string::npos);
  // A bad output path fails before measuring, naming the path.
  auto bad = testing_util::run(std::string(KT_BINARY_DIR) +
                               "/tools/kt-rt/kt-rt probe --quick -o /nonexistent/dir/hw.json");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("/nonexistent/dir/hw.json"), std::string::npos) << bad.output;
}

} // namespace
} // namespace kt::probe
