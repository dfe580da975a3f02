// A probe result as a hardware profile (docs/hardware-profile.md). Only what was measured is
// written (format tables fall back along the documented chain); raw numbers the schema has no
// field for go under "_measured" (keys starting with '_' are comments to the parser).
#include "runtime/probe/Probe.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <unistd.h>

namespace kt::probe {

namespace {

using Json = nlohmann::ordered_json;

double round3(double x) {
  return std::round(x * 1000.0) / 1000.0;
}

// obj[key] = {"gqa": {"N": GFLOP/s, ...}, "mla": {...}}, two attention curves keyed by positions
// or tokens (decode_attention_gflops, prefill_attention_gflops); nothing when neither was
// measured.
void putAttentionCurves(Json& obj, const char* key, const std::map<int64_t, double>& gqa,
                        const std::map<int64_t, double>& mla) {
  Json j;
  for (const auto& [kind, curve] : {std::make_pair("gqa", &gqa), std::make_pair("mla", &mla)})
    for (const auto& [n, gflops] : *curve)
      j[kind][std::to_string(n)] = round3(gflops);
  if (!j.empty())
    obj[key] = j;
}

// Memory the rest of the machine holds now (MemTotal - MemAvailable): what the profile keeps back
// from the CPU budget. 0 when /proc/meminfo is unreadable.
double memoryInUse() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0, total = 0, available = -1;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:")
      total = kib * 1024;
    else if (key == "MemAvailable:")
      available = kib * 1024;
  }
  return total > 0 && available >= 0 ? total - available : 0;
}

double physicalMemory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0;
}

std::string today() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buf;
}

Json cpuJson(const CpuResult& c) {
  Json cpu;
  cpu["model"] = c.model;
  cpu["isa"] = c.isa;
  double fallbackMemory = physicalMemory() / double(std::max<size_t>(1, c.nodes.size()));
  Json nodes = Json::array();
  for (const NodeResult& n : c.nodes) {
    Json j;
    j["id"] = n.index;
    j["cores"] = n.threadsUsed; // the measured numbers are for this many threads
    j["memory_bytes"] = n.memoryBytes > 0 ? double(n.memoryBytes) : fallbackMemory;
    // Sustained = the median 16 MiB block (the best one is in _measured): on a shared machine
    // the runtime sees the typical rate; on a quiet one they agree.
    j["bandwidth_gbs"] = round3(n.readMedianGBs > 0 ? n.readMedianGBs : n.readGBs);
    nodes.push_back(j);
  }
  cpu["numa_nodes"] = nodes;
  Json caches;
  if (c.l1dPerCore > 0)
    caches["l1d_per_core_bytes"] = c.l1dPerCore;
  if (c.l2PerCore > 0)
    caches["l2_per_core_bytes"] = c.l2PerCore;
  if (c.l3PerNode > 0)
    caches["l3_per_node_bytes"] = c.l3PerNode;
  if (!caches.empty())
    cpu["caches"] = caches;
  Json eff;
  for (const auto& [format, e] : gemvEfficiency(c))
    if (e > 0)
      eff[format] = round3(e);
  if (eff.empty())
    eff["f32"] = 0.5; // unmeasurable (no bandwidth): a conservative guess, named in _measured
  cpu["gemv_efficiency"] = eff;
  Json gemm;
  for (const KernelResult& k : c.kernels)
    if (k.gemmGflops > 0)
      gemm[k.isa][k.format] = round3(k.gemmGflops);
  cpu["gemm_gflops"] = gemm;
  Json plain;
  if (c.plainF32Gflops > 0)
    plain["f32"] = round3(c.plainF32Gflops);
  if (c.plainBf16Gflops > 0)
    plain["bf16"] = round3(c.plainBf16Gflops);
  if (!plain.empty())
    cpu["plain_gflops"] = plain;
  // The plain loops' GEMV against node 0's read rate, as gemv_efficiency does for packed kernels.
  double read = c.nodes.empty() ? 0 : c.nodes[0].readMedianGBs;
  Json plainEff;
  if (read > 0 && c.plainF32GemvGBs > 0)
    plainEff["f32"] = round3(std::min(1.0, c.plainF32GemvGBs / read));
  if (read > 0 && c.plainBf16GemvGBs > 0)
    plainEff["bf16"] = round3(std::min(1.0, c.plainBf16GemvGBs / read));
  if (!plainEff.empty())
    cpu["plain_gemv_efficiency"] = plainEff;
  // The rows curves: {"int8": {"8": GFLOP/s, ...}, ...} (row counts as keys, in order).
  Json gemmRows, plainRows;
  for (const RowsResult& r : c.rowsRates)
    if (r.gflops > 0)
      (r.plain ? plainRows : gemmRows)[r.format][std::to_string(r.rows)] = round3(r.gflops);
  if (!gemmRows.empty())
    cpu["gemm_rows_gflops"] = gemmRows;
  if (!plainRows.empty())
    cpu["plain_rows_gflops"] = plainRows;
  // The routed-expert path by rows per expert, per packed format (ExpertProbe.cpp).
  // The DeepSeek-shaped experts (intermediate 1408) under expert_rows_gflops, the smaller
  // Qwen3-shaped ones (768) under expert_rows_gflops_i768.
  Json expertRows, expertRowsSmall;
  for (const RowsResult& r : c.expertRates)
    if (r.gflops > 0)
      (r.inter == 768 ? expertRowsSmall : expertRows)[r.format][std::to_string(r.rows)] =
          round3(r.gflops);
  if (!expertRows.empty())
    cpu["expert_rows_gflops"] = expertRows;
  if (!expertRowsSmall.empty())
    cpu["expert_rows_gflops_i768"] = expertRowsSmall;
  Json attn;
  if (c.gqaAttentionGflops > 0)
    attn["gqa"] = round3(c.gqaAttentionGflops);
  if (c.mlaAttentionGflops > 0)
    attn["mla"] = round3(c.mlaAttentionGflops);
  if (!attn.empty())
    cpu["attention_gflops"] = attn;
  putAttentionCurves(cpu, "prefill_attention_gflops", c.gqaPrefillGflops, c.mlaPrefillGflops);
  putAttentionCurves(cpu, "decode_attention_gflops", c.gqaDecodeGflops, c.mlaDecodeGflops);
  cpu["reserved_bytes"] = std::round(memoryInUse());
  cpu["op_overhead_us"] = round3(c.forkJoinUs);
  if (c.wakeUs > 0)
    cpu["pool_wake_us"] = round3(c.wakeUs);
  return cpu;
}

Json measuredJson(const ProbeResult& r) {
  Json m;
  m["seconds"] = round3(r.seconds);
  m["cpu_cores"] = r.cpu.cores;
  m["cpu_threads"] = r.cpu.threads;
  Json nodes = Json::array();
  for (const NodeResult& n : r.cpu.nodes)
    nodes.push_back({{"os_index", n.osIndex},
                     {"cores", n.cores},
                     {"threads_used", n.threadsUsed},
                     {"read_gbs", round3(n.readGBs)},
                     {"read_median_gbs", round3(n.readMedianGBs)},
                     {"triad_gbs", round3(n.triadGBs)}});
  m["numa_nodes"] = nodes;
  Json kernels = Json::array();
  for (const KernelResult& k : r.cpu.kernels)
    kernels.push_back({{"isa", k.isa},
                       {"format", k.format},
                       {"gemv_gbs", round3(k.gemvGBs)},
                       {"gemm_gflops", round3(k.gemmGflops)}});
  m["cpu_kernels"] = kernels;
  m["fork_join_us"] = round3(r.cpu.forkJoinUs);
  m["plain_gemv_gbs"] = {{"f32", round3(r.cpu.plainF32GemvGBs)},
                         {"bf16", round3(r.cpu.plainBf16GemvGBs)}};
  m["bandwidth_array_bytes"] = r.cpu.arrayBytes;
  if (r.cpu.l3PerNode > r.cpu.arrayBytes / 4)
    m["l3_vs_arrays"] = "the L3 the CPU reports is over a quarter of the probe's arrays: on a VM "
                        "it is the host's, otherwise bandwidth_gbs may be partly a cache rate";
  if (!r.cpu.memoryNote.empty())
    m["memory_note"] = r.cpu.memoryNote;
  if (!r.gpuNote.empty())
    m["gpu_note"] = r.gpuNote;
  return m;
}

Json gpuJson(const GpuResult& g) {
  Json j;
  j["id"] = g.index;
  j["name"] = g.name;
  j["memory_bytes"] = double(g.memoryBytes);
  // Context, cuBLAS workspace and activations: 5% of the card, at least 1 GiB.
  j["reserved_bytes"] =
      std::min(double(g.memoryBytes), std::max(double(1ull << 30), 0.05 * double(g.memoryBytes)));
  j["bandwidth_gbs"] = round3(std::max(g.bandwidthGBs, 1e-3));
  Json eff;
  for (const auto& [f, e] : g.gemvEfficiency)
    if (e > 0)
      eff[f] = round3(e);
  if (!eff.empty())
    j["gemv_efficiency"] = eff;
  Json tf;
  for (const auto& [f, t] : g.gemmTflops)
    if (t > 0)
      tf[f] = round3(t);
  if (tf.empty())
    tf["f32"] = 1e-3; // cuBLAS unavailable: effectively "do not compute here"; see _measured
  j["gemm_tflops"] = tf;
  j["link"] = {{"h2d_gbs", round3(std::max(g.h2dGBs, 1e-3))},
               {"d2h_gbs", round3(std::max(g.d2hGBs, 1e-3))},
               {"latency_us", round3(g.latencyUs)}};
  if (g.moveH2dGBs > 0 && g.moveD2hGBs > 0) {
    j["link"]["move_h2d_gbs"] = round3(g.moveH2dGBs);
    j["link"]["move_d2h_gbs"] = round3(g.moveD2hGBs);
  }
  // Per launch of the runtime's kernels back to back; without cuBLAS only the empty kernel's
  // launch + synchronize was timed, an upper bound.
  j["launch_overhead_us"] = round3(g.launchUs > 0 ? g.launchUs : g.launchSyncUs);
  if (g.smCount > 0) // decode attention splits over the keys by it (kernels/cuda/Attention.cu)
    j["sm_count"] = g.smCount;
  // The same kernels queued behind a busy GPU: the host's and the GPU's side of a prefill.
  if (g.launchIssueUs > 0)
    j["launch_issue_us"] = round3(g.launchIssueUs);
  if (g.kernelFloorUs > 0)
    j["kernel_floor_us"] = round3(g.kernelFloorUs);
  auto rates = [&](const char* key, double gqa, double mla) {
    Json a;
    if (gqa > 0)
      a["gqa"] = round3(gqa);
    if (mla > 0)
      a["mla"] = round3(mla);
    if (!a.empty())
      j[key] = a;
  };
  rates("attention_gflops", g.gqaAttentionGflops, g.mlaAttentionGflops);
  rates("attention_block_gflops", g.gqaAttentionBlockGflops, g.mlaAttentionBlockGflops);
  putAttentionCurves(j, "decode_attention_gflops", g.gqaDecodeGflops, g.mlaDecodeGflops);
  putAttentionCurves(j, "prefill_attention_gflops", g.gqaPrefillGflops, g.mlaPrefillGflops);
  // The decode-shaped chain of the runtime's kernels (GpuDecodeProbe.cu).
  Json kernelUs;
  if (g.decodeGraphKernelUs > 0)
    kernelUs["graph"] = round3(g.decodeGraphKernelUs);
  if (g.decodeEagerKernelUs > 0)
    kernelUs["eager"] = round3(g.decodeEagerKernelUs);
  if (!kernelUs.empty())
    j["decode_kernel_us"] = kernelUs;
  auto byBytes = [&](const char* key, const std::map<std::string, std::map<int64_t, double>>& m) {
    Json c;
    for (const auto& [format, points] : m)
      for (const auto& [bytes, gbs] : points)
        if (gbs > 0)
          c[format][std::to_string(bytes)] = round3(gbs);
    if (!c.empty())
      j[key] = c;
  };
  byBytes("decode_gemv_gbs", g.decodeGemvGBs);
  byBytes("decode_moe_gbs", g.decodeMoeGBs);
  byBytes("grouped_gemm_gflops", g.groupedGemmGflops); // keyed by rows per expert
  // The whole chunk under random routing, keyed by mean rows per expert (GpuProbe.cu).
  byBytes("grouped_moe_gflops", g.groupedMoeGflops);
  byBytes("grouped_moe_gflops_i768", g.groupedMoeGflopsI768);
  // Diagnostics (comments to the parser): which layout the curves timed, the other layout's
  // rates, and the host's grouping time per chunk.
  if (!g.groupedMoeLayout.empty())
    j["_grouped_moe_layout"] = g.groupedMoeLayout;
  Json alt;
  for (const auto& [key, curves] :
       {std::make_pair("grouped_moe_gflops", &g.groupedMoeAltGflops),
        std::make_pair("grouped_moe_gflops_i768", &g.groupedMoeAltGflopsI768)})
    for (const auto& [format, points] : *curves)
      for (const auto& [rows, gflops] : points)
        alt[key][format][std::to_string(rows)] = round3(gflops);
  if (!alt.empty()) {
    alt["layout"] = g.groupedMoeLayout == "ragged" ? "padded" : "ragged";
    j["_grouped_moe_alt_gflops"] = alt;
  }
  Json hostUs;
  for (const auto& [key, points] :
       {std::make_pair("grouped_moe_gflops", &g.groupedMoeHostUs),
        std::make_pair("grouped_moe_gflops_i768", &g.groupedMoeHostUsI768)})
    for (const auto& [rows, us] : *points)
      hostUs[key][std::to_string(rows)] = round3(us);
  if (!hostUs.empty())
    j["grouped_moe_host_us"] = hostUs; // the cost model adds it per grouped chunk
  // The skewed routing's chunks and the two routings' busiest-quarter shares (GpuProbe.cu).
  // A curve goes out only with its shares (the parser prices it by them).
  Json skew;
  for (int small = 0; small < 2; ++small) {
    const double uniform = round3(g.groupedMoeShareUniform[small]),
                 skewed = round3(g.groupedMoeShareSkewed[small]);
    if (uniform <= 0 || skewed <= uniform)
      continue;
    skew[small ? "grouped_moe_gflops_i768" : "grouped_moe_gflops"] = {{"uniform", uniform},
                                                                      {"skewed", skewed}};
    byBytes(small ? "grouped_moe_skewed_gflops_i768" : "grouped_moe_skewed_gflops",
            small ? g.groupedMoeSkewedGflopsI768 : g.groupedMoeSkewedGflops);
  }
  if (!skew.empty())
    j["grouped_moe_skew"] = skew;
  if (g.launchSyncUs > 0)
    j["_launch_sync_us"] = round3(g.launchSyncUs); // empty kernel + synchronize, for reference
  return j;
}

} // namespace

std::string profileJson(const ProbeResult& r, const std::string& name) {
  Json p;
  p["name"] = name;
  int threads = r.cpu.nodes.empty() ? 0 : r.cpu.nodes[0].threadsUsed;
  p["description"] = "Measured by kt-rt probe on " + today() + ": " + r.cpu.model + ", " +
                     std::to_string(r.cpu.nodes.size()) + " NUMA node(s), " +
                     std::to_string(threads) + " threads per node, " +
                     std::to_string(r.gpus.size()) + " GPU(s)" +
                     (r.gpuNote.empty() ? "" : " (" + r.gpuNote + ")") +
                     ". reserved_bytes is the memory other processes held at probe time.";
  p["source"] = "measured";
  p["cpu"] = cpuJson(r.cpu);
  if (!r.gpus.empty()) {
    Json gpus = Json::array();
    for (const GpuResult& g : r.gpus)
      gpus.push_back(gpuJson(g));
    p["gpus"] = gpus;
  }
  p["_measured"] = measuredJson(r);
  return p.dump(2) + "\n";
}

} // namespace kt::probe
