#include "compiler/cost/CostModel.h"

#include "compiler/cost/ExpertStats.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

namespace kt::cost {

CostModel::CostModel(const HardwareProfile& profile) : profile_(profile) {
  for (size_t i = 0; i < profile_.cpu.numaNodes.size(); ++i)
    devices_.push_back({"cpu:numa" + std::to_string(i), DeviceClass::Cpu, int(i)});
  for (size_t i = 0; i < profile_.gpus.size(); ++i)
    devices_.push_back({"gpu:" + std::to_string(i), DeviceClass::Gpu, int(i)});
  for (size_t i = 0; i < profile_.npus.size(); ++i)
    devices_.push_back({"npu:" + std::to_string(i), DeviceClass::Npu, int(i)});
}

bool CostModel::find(const std::string& spec, Device* out) const {
  for (const Device& d : devices_) {
    if (d.spec == spec) {
      *out = d;
      return true;
    }
  }
  return false;
}

const AcceleratorProfile& CostModel::accel(const Device& d) const {
  return d.cls == DeviceClass::Gpu ? profile_.gpus[size_t(d.index)]
                                   : profile_.npus[size_t(d.index)];
}

double CostModel::bandwidth(const Device& d) const {
  if (d.isCpu())
    return profile_.cpu.numaNodes[size_t(d.index)].bandwidthGBs * 1e9;
  return accel(d).bandwidthGBs * 1e9;
}

double CostModel::gemvEfficiency(const Device& d, WeightFormat f, bool unpacked) const {
  if (!d.isCpu())
    return accel(d).gemvEfficiency.get(f);
  const CpuProfile& c = profile_.cpu;
  return unpacked && !c.plainGemvEfficiency.values.empty() ? c.plainGemvEfficiency.get(f)
                                                           : c.gemvEfficiency.get(f);
}

double CostModel::peakFlops(const Device& d, WeightFormat f) const {
  // CPU tables are per NUMA node in GFLOP/s, accelerator tables in TFLOP/s.
  return d.isCpu() ? profile_.cpu.bestGemmGflops(f) * 1e9 : accel(d).gemmTflops.get(f) * 1e12;
}

double CostModel::attentionFlops(const Device& d, UnitKind k, double blocks) const {
  if (!d.isCpu()) {
    const AcceleratorProfile& a = accel(d);
    bool mla = k == UnitKind::MlaAttention;
    double full = mla ? a.mlaAttentionGflops : a.gqaAttentionGflops;
    double rate = full > 0 ? full * 1e9 : a.gemmTflops.get(WeightFormat::F32) * 1e12;
    double perBlock = mla ? a.mlaAttentionBlockGflops : a.gqaAttentionBlockGflops;
    if (perBlock > 0 && blocks > 0)
      rate = std::min(rate, blocks * perBlock * 1e9);
    return rate;
  }
  const CpuProfile& c = profile_.cpu;
  double measured = k == UnitKind::MlaAttention ? c.mlaAttentionGflops : c.gqaAttentionGflops;
  return measured > 0 ? measured * 1e9 : c.bestGemmGflops(WeightFormat::F32) * 1e9;
}

double CostModel::flopsSeconds(const Device& d, double packed, double unpacked, WeightFormat f,
                               double rows) const {
  const CpuProfile& c = profile_.cpu;
  // The measured rate at this many rows, when the profile has the curve for f (else 0).
  auto byRows = [&](const RowsCurve& curve) {
    return d.isCpu() && rows > 0 ? curve.at(f, rows) * 1e9 : 0.0;
  };
  double t = 0;
  if (packed > 0) {
    double rate = byRows(c.gemmRowsGflops);
    t += packed / (rate > 0 ? rate : peakFlops(d, f));
  }
  if (unpacked > 0) {
    double rate = byRows(c.plainRowsGflops);
    if (rate <= 0)
      rate =
          d.isCpu() && !c.plainGflops.values.empty() ? c.plainGflops.get(f) * 1e9 : peakFlops(d, f);
    t += unpacked / rate;
  }
  return t;
}

double CostModel::opOverhead(const Device& d) const {
  return (d.isCpu() ? profile_.cpu.opOverheadUs : accel(d).launchOverheadUs) * 1e-6;
}

double CostModel::poolWakeSeconds(const Device& d) const {
  return d.isCpu() ? profile_.cpu.poolWakeUs * 1e-6 : 0.0;
}

double CostModel::memoryBytes(const Device& d) const {
  return d.isCpu() ? profile_.cpu.numaNodes[size_t(d.index)].memoryBytes : accel(d).memoryBytes;
}

double CostModel::reservedBytes(const Device& d) const {
  if (!d.isCpu())
    return accel(d).reservedBytes;
  // The CPU reserve is for the whole machine; each node keeps its share of it.
  double total = 0;
  for (const NumaNode& n : profile_.cpu.numaNodes)
    total += n.memoryBytes;
  return total > 0 ? profile_.cpu.reservedBytes * memoryBytes(d) / total : 0;
}

bool CostModel::supports(const Device& d, const std::string& opKind) const {
  if (d.cls != DeviceClass::Npu)
    return true;
  const auto& ops = accel(d).supportedOps;
  return std::find(ops.begin(), ops.end(), opKind) != ops.end();
}

LaunchMode launchMode(const Shape& s, double rows) {
  if (s.graphs)
    return LaunchMode::Graph;
  return rows > s.batch ? LaunchMode::Pipelined : LaunchMode::Eager;
}

bool CostModel::decodeChain(const Device& d, double tokens) const {
  return !d.isCpu() && tokens <= kDecodeChainTokens && accel(d).decodeGraphKernelUs > 0;
}

double CostModel::decodeGemvSeconds(const Device& d, WeightFormat f, double bytes,
                                    double matrices) const {
  if (bytes <= 0)
    return 0;
  const double rate = d.isCpu() ? 0 : accel(d).decodeGemvGBs.at(f, bytes / std::max(1.0, matrices));
  return rate > 0 ? bytes / (rate * 1e9) : bytes / (bandwidth(d) * gemvEfficiency(d, f));
}

double CostModel::decodeMoeSeconds(const Device& d, WeightFormat f, double bytes,
                                   double expertBytes) const {
  if (bytes <= 0)
    return 0;
  const double rate = d.isCpu() ? 0 : accel(d).decodeMoeGBs.at(f, expertBytes);
  if (rate > 0)
    return bytes / (rate * 1e9);
  return decodeGemvSeconds(d, f, bytes, 3.0 * bytes / std::max(1.0, expertBytes));
}

double CostModel::prefillAttentionFlops(const Device& d, UnitKind k, double tokens) const {
  const RowsCurve& curve =
      d.isCpu() ? profile_.cpu.prefillAttentionGflops : accel(d).prefillAttentionGflops;
  return curve.atKey(k == UnitKind::MlaAttention ? "mla" : "gqa", tokens) * 1e9;
}

double CostModel::decodeAttentionFlops(const Device& d, UnitKind k, double positions) const {
  const RowsCurve& curve =
      d.isCpu() ? profile_.cpu.decodeAttentionGflops : accel(d).decodeAttentionGflops;
  return curve.atKey(k == UnitKind::MlaAttention ? "mla" : "gqa", positions) * 1e9;
}

double CostModel::withOverheads(const Device& d, double work, int cpuOps, double launches,
                                double syncs, LaunchMode mode) const {
  if (d.isCpu() || launches <= 0)
    return work + cpuOps * opOverhead(d);
  const AcceleratorProfile& a = accel(d);
  const double wait = syncs * a.link.latencyUs * 1e-6;
  // The probe's decode chain: per-kernel GPU time of the runtime's dependent decode kernels.
  if (a.decodeGraphKernelUs > 0 && mode != LaunchMode::Pipelined) {
    const double gpu = work + launches * a.decodeGraphKernelUs * 1e-6;
    if (mode == LaunchMode::Graph)
      return gpu + wait;
    // Eagerly the host issues kernel after kernel (one `eager` interval each) and the GPU runs
    // each when it is issued: the decode's many short kernels (norms, adds, small products) finish
    // within their interval and leave the GPU waiting for the next, while a long one (attention,
    // a large product) keeps running after its interval. So the unit takes the issue of every
    // launch plus the work beyond the per-kernel time, not the larger of the two: in the eighth
    // device run's DeepSeek-V2-Lite 8 GiB hybrid the host issued a layer's ~30 launches in
    // ~157 us and the routing readback then waited ~45 us for the GPU (docs/cost-model.md).
    const double eagerUs = a.decodeEagerKernelUs > 0 ? a.decodeEagerKernelUs : a.launchOverheadUs;
    return std::max(launches * eagerUs * 1e-6 + work, gpu) + wait;
  }
  if (mode == LaunchMode::Graph && a.kernelFloorUs > 0)
    return work + launches * a.kernelFloorUs * 1e-6 + wait;
  if (mode == LaunchMode::Pipelined && a.launchIssueUs > 0) // host and GPU overlap
    return std::max(launches * a.launchIssueUs * 1e-6, work + launches * a.kernelFloorUs * 1e-6) +
           wait;
  return std::max(work, launches * a.launchOverheadUs * 1e-6) + wait;
}

double CostModel::issueSeconds(const Device& d, double launches, LaunchMode mode) const {
  if (d.isCpu() || launches <= 0)
    return 0;
  const AcceleratorProfile& a = accel(d);
  if (mode == LaunchMode::Graph && (a.kernelFloorUs > 0 || a.decodeGraphKernelUs > 0))
    return 0;
  if (mode == LaunchMode::Eager && a.decodeEagerKernelUs > 0)
    return launches * a.decodeEagerKernelUs * 1e-6;
  return launches *
         (mode == LaunchMode::Pipelined && a.launchIssueUs > 0 ? a.launchIssueUs
                                                               : a.launchOverheadUs) *
         1e-6;
}

double CostModel::int8WidenedSeconds(const Device& d, const GpuInt8Work& w, double tokens) const {
  if (d.isCpu() || w.empty() || !GpuInt8Work::widens(tokens))
    return 0;
  const double bw = bandwidth(d);
  double widen = 3.0 * w.weights / bw; // int8ToBf16: read 1 B, write 2 B per weight
  double gemm = std::max(2.0 * tokens * w.weights / peakFlops(d, WeightFormat::BF16),
                         2.0 * w.weights / (bw * gemvEfficiency(d, WeightFormat::BF16)));
  double scale = 8.0 * tokens * w.outputs / bw; // scaleColumns: read and write f32 outputs
  return widen + gemm + scale;
}

double CostModel::computeTime(const Device& d, double flops, double bytes, WeightFormat f,
                              int ops) const {
  double compute = flops > 0 ? flops / peakFlops(d, f) : 0;
  double memory = bytes > 0 ? bytes / (bandwidth(d) * gemvEfficiency(d, f)) : 0;
  return std::max(compute, memory) + ops * opOverhead(d);
}

double CostModel::linkSeconds(const Device& from, const Device& to, double bytes,
                              bool staged) const {
  if (from.spec == to.spec || (from.isCpu() && to.isCpu()))
    return 0;
  auto rate = [&](double measured, double pinned) {
    return staged && measured > 0 ? measured : pinned;
  };
  double t = 0;
  if (!from.isCpu()) {
    const HostLink& l = accel(from).link;
    t += l.latencyUs * 1e-6 + bytes / (rate(l.moveD2hGBs, l.d2hGBs) * 1e9);
  }
  if (!to.isCpu()) {
    const HostLink& l = accel(to).link;
    t += l.latencyUs * 1e-6 + bytes / (rate(l.moveH2dGBs, l.h2dGBs) * 1e9);
  }
  return t;
}

double CostModel::transferTime(const Device& from, const Device& to, double bytes) const {
  return linkSeconds(from, to, bytes, /*staged=*/false);
}

double CostModel::activationMoveTime(const Device& from, const Device& to, double bytes) const {
  constexpr double kStagedBytes = 1 << 20; // runtime/exec/cuda/ActivationMoves.h
  return linkSeconds(from, to, bytes, bytes >= kStagedBytes);
}

double CostModel::unitTime(const Unit& u, const Device& d, const Shape& s) const {
  // lm_head computes logits only for the rows that are sampled: the last position of each
  // sequence (the runtime's outputRows), not every prompt token.
  double rows = u.kind == UnitKind::LmHead ? std::min(s.tokens, s.batch) : s.tokens;
  double flops = rows * u.flopsPerToken;
  const bool cpu = d.isCpu();
  double bytes = u.readsWholeWeights
                     ? u.weightBytesOn(cpu)
                     : std::min(u.weightBytesOn(cpu), s.tokens * u.bytesPerTokenOn(cpu));
  // --gpu-quant int8 matrices multiplied with more than 16 rows are widened to bf16 first: their
  // kernels are timed on their own (int8WidenedSeconds) and added, the roofline covers the rest.
  const double int8Seconds = int8WidenedSeconds(d, u.gpuInt8, rows);
  if (int8Seconds > 0) {
    flops = std::max(0.0, flops - rows * 2.0 * u.gpuInt8.weights);
    bytes = std::max(0.0, bytes - (u.gpuInt8.weights + 4.0 * u.gpuInt8.outputs));
  }
  double attnSeconds = 0;
  // A CPU decode whose profile has the runtime's decode step timed by context: the attention
  // runs after the projections (it reads their output), at that rate with its cache read in it.
  bool cpuDecodeStep = false;
  if (u.kvBytesPerToken > 0 || u.attnFlopsPerPair > 0) {
    // Each sequence adds n = tokens/batch positions after `context` cached ones; causal
    // attention pairs a new token with every earlier position. The whole visible cache is read
    // once per step. The pair work runs on the attention kernels, not the weight GEMMs.
    double n = s.tokens / std::max(1.0, s.batch);
    double pairs = s.batch * (n * s.context + n * (n + 1) / 2);
    // One kernel launch per sequence, one block per (head, new token) of it and, for a decode
    // (few tokens, cached keys), per key split (gpuAttentionSplits: ~4 blocks per SM).
    double splits = cpu ? 1 : gpuAttentionSplits(u.attnHeads, n, s.context + n, accel(d).smCount);
    double rate = attentionFlops(d, u.kind, u.attnHeads * n * splits);
    // A device whose profile has the runtime's attention timed by length: a decode at the rate
    // of its context (the GPU's split kernel, the CPU's step), a prefill at its prompt's.
    if (double r = n <= 8 ? decodeAttentionFlops(d, u.kind, s.context + n)
                          : prefillAttentionFlops(d, u.kind, n);
        r > 0) {
      rate = r;
      cpuDecodeStep = cpu && n <= 8;
    }
    attnSeconds = pairs * u.attnFlopsPerPair / rate;
    if (!cpuDecodeStep)
      bytes += s.batch * (s.context + n) * u.kvBytesPerToken;
  }
  const CpuStorage* form = u.cpuForm(cpu);
  double unpacked = form ? std::min(flops, rows * form->unpackedFlopsPerToken) : 0;
  // Matrices a GPU keeps f32 under a bf16 or int8 plan (MLA's kv_b_proj) multiply at the f32
  // rate: the eleventh device run's DeepSeek-V2-Lite prefill spent ~65 us a layer in those two
  // batched f32 GEMMs, priced at ~3 us as bf16 (docs/cost-model.md).
  const double f32Flops = cpu ? 0 : std::min(flops, rows * u.gpuF32FlopsPerToken);
  auto matmulSeconds = [&](WeightFormat f) {
    return flopsSeconds(d, flops - unpacked - f32Flops, unpacked, f, rows) +
           (f32Flops > 0 ? f32Flops / peakFlops(d, WeightFormat::F32) : 0);
  };
  double compute = matmulSeconds(u.formatOn(cpu)) + (cpuDecodeStep ? 0 : attnSeconds);
  // Unpacked matrices stream at the plain loops' rate: their share of the bytes is taken as their
  // share of the FLOPs (2 per weight either way).
  double plainShare = form && u.flopsPerToken > 0
                          ? std::min(1.0, form->unpackedFlopsPerToken / u.flopsPerToken)
                          : 0;
  WeightFormat f = u.formatOn(cpu);
  double memory = bytes > 0 ? bytes / bandwidth(d) *
                                  ((1 - plainShare) / gemvEfficiency(d, f) +
                                   plainShare / gemvEfficiency(d, f, /*unpacked=*/true))
                            : 0;
  // Decode-sized steps use the backend's decode kernels (GpuLaunches::at).
  const GpuLaunches gpu = u.gpu.at(s.tokens);
  double launches = gpu.perStep + gpu.perSequence * s.batch;
  if (!cpu && launches > 0)
    launches += u.gpuInt8.extraLaunches(rows);
  double work = std::max(compute, memory) + int8Seconds + (cpuDecodeStep ? attnSeconds : 0);
  if (decodeChain(d, s.tokens) && u.readsWholeWeights) {
    // The probe's decode chain: one 1-token product per matrix at the rate of its size, then the
    // attention kernel (its rate includes reading the cache); kernels run one after another.
    const double weights = u.weightBytesOn(false);
    work = std::max(matmulSeconds(f), decodeGemvSeconds(d, f, weights, u.matrices)) + attnSeconds;
  }
  return withOverheads(d, work, u.numOps, launches, gpu.hostSyncs, launchMode(s, rows));
}

double CostModel::expectedTouched(const Unit& u, const std::vector<int>& experts, double tokens) {
  double touched = 0;
  for (int e : experts)
    touched += 1.0 - std::pow(1.0 - u.expertProb[size_t(e)], tokens);
  return touched;
}

double CostModel::busiestQuarterShare(const Unit& u, const std::vector<int>& experts) {
  std::vector<double> p;
  for (int e : experts)
    p.push_back(u.expertProb[size_t(e)]);
  return cost::busiestQuarterShare(std::move(p));
}

double CostModel::expectedTokens(const Unit& u, const std::vector<int>& experts, double tokens) {
  double mass = 0;
  for (int e : experts)
    mass += u.expertProb[size_t(e)];
  return tokens * mass;
}

double CostModel::cpuSharedExpertsSeconds(const Unit& u, const Device& d, double tokens) const {
  if (!d.isCpu() || tokens <= 0 || u.sharedFlopsPerToken <= 0)
    return 0;
  int cores = 1;
  for (const NumaNode& n : profile_.cpu.numaNodes)
    cores = std::max(cores, n.cores);
  const double rows = std::min(tokens, std::max(128.0, std::ceil(2.0 * tokens / cores)));
  const double rate =
      profile_.cpu.expertPathGflops(u.formatOn(true), u.sharedFlopsPerToken / 2, rows);
  return rate > 0 ? tokens * u.sharedFlopsPerToken / (rate * 1e9) : 0;
}

double CostModel::expertsTime(const Unit& u, const std::vector<int>& experts, const Device& d,
                              const Shape& s) const {
  double touched = expectedTouched(u, experts, s.tokens);
  if (touched <= 0)
    return 0;
  const double tokens = expectedTokens(u, experts, s.tokens);
  double flops = tokens * u.expertFlopsPerToken;
  const bool cpu = d.isCpu();
  const CpuStorage* form = u.cpuForm(cpu);
  bool plain = form && form->expertsUnpacked;
  // Each touched expert multiplies its matrices with the rows routed to it (P*k/E of a uniform
  // P-token prefill), not with all T: its rate is the one at that many rows.
  double compute = flopsSeconds(d, plain ? 0 : flops, plain ? flops : 0, u.expertFormatOn(cpu),
                                tokens / touched);
  // On a CPU whose profile has the probe's expert-path curve: the runtime's whole fused expert
  // path (gather, prepare, gate/up, SwiGLU, down, combine) at this many rows per expert, not one
  // matrix's row blocks (the rows curves).
  if (cpu && !plain)
    if (double rate = profile_.cpu.expertPathGflops(u.expertFormatOn(cpu),
                                                    u.expertFlopsPerToken / 2, tokens / touched);
        rate > 0)
      compute = flops / (rate * 1e9);
  double memory = touched * u.expertBytesOn(cpu) /
                  (bandwidth(d) * gemvEfficiency(d, u.expertFormatOn(cpu), plain));
  double work = std::max(compute, memory);
  // Decode sizes: the fused kernels cover every touched expert at once (gpuExpertsLaunches) and
  // the routing stays on the GPU; prefill: per touched expert, after a readback (GpuLaunches).
  const GpuLaunches gpu = u.gpu.at(s.tokens);
  if (decodeChain(d, s.tokens) && gpu.gpuExpertsLaunches > 0)
    work = std::max(compute,
                    decodeMoeSeconds(d, u.expertFormatOn(false), touched * u.expertBytesOn(false),
                                     u.expertBytesOn(false)));
  double launches = touched * gpu.perTouchedExpert + gpu.gpuExpertsLaunches;
  double syncs = gpu.gpuExpertsSyncs;
  // Every expert on the GPU in f32/bf16 at prefill sizes: one batched GEMM per product and chunk
  // (runtime/exec/cuda/MoeGrouped), in chunks of kGroupedChunkTokens; groupedExpertsSeconds is 0
  // when the profile has no grouped curve for the experts' format (then: per expert, below).
  double grouped = 0;
  const bool quantized = !u.gpuInt8Expert.empty();
  if (!cpu && gpu.groupedChunkLaunches > 0 && experts.size() == size_t(u.numExperts))
    grouped = quantized ? groupedQuantExpertsSeconds(u, experts, d, s)
                        : groupedExpertsSeconds(u, experts, d, s);
  if (grouped > 0) {
    const double chunks = std::ceil(s.tokens / kGroupedChunkTokens);
    // int8/int4: per product one widening launch, int8 one column scaling too.
    const double quantLaunches =
        quantized ? 3.0 * (u.gpuInt8Expert.int4Matrices > 0 ? 1.0 : 2.0) : 0.0;
    launches = chunks * (gpu.groupedChunkLaunches + quantLaunches);
    syncs = chunks * gpu.groupedChunkSyncs;
    const AcceleratorProfile& a = accel(d);
    // The whole-chunk curve's time has the chunk's kernels back to back in it: take out the
    // per-launch floor that withOverheads adds to a prefill's work, so it is not counted twice.
    if (a.hasGroupedMoeCurve() && launchMode(s, s.tokens) == LaunchMode::Pipelined &&
        a.launchIssueUs > 0)
      grouped = std::max(0.0, grouped - launches * a.kernelFloorUs * 1e-6);
    // The host groups every chunk's routing after the readback while the GPU waits.
    work = std::max(grouped, memory) + groupedHostSeconds(u, experts, d, s);
  } else if (!cpu && !u.gpuInt8Expert.empty()) {
    // --gpu-quant int8 experts: each touched one multiplies its rows through Blas::linearInt8.
    const double rows = tokens / touched;
    if (gpu.perTouchedExpert > 0) // per-expert GEMMs (the decode kernels read int8 directly)
      launches += touched * u.gpuInt8Expert.extraLaunches(rows);
    if (double widened = int8WidenedSeconds(d, u.gpuInt8Expert, rows); widened > 0)
      work = touched * widened;
  }
  return withOverheads(d, work, 1, launches, syncs, launchMode(s, s.tokens));
}

namespace {
// The grouped MoE's chunks of a step of `tokens` tokens (runtime/exec/cuda/MoeGrouped): as
// many full chunks of kGroupedChunkTokens as fit, then the rest; each {tokens, how many}, empty
// ones left out.
std::vector<std::pair<double, double>> groupedChunks(double tokens) {
  const double full = std::floor(tokens / kGroupedChunkTokens),
               rest = tokens - full * kGroupedChunkTokens;
  std::vector<std::pair<double, double>> chunks;
  if (full > 0)
    chunks.emplace_back(kGroupedChunkTokens, full);
  if (rest > 0)
    chunks.emplace_back(rest, 1.0);
  return chunks;
}
} // namespace

double CostModel::groupedExpertsSeconds(const Unit& u, const std::vector<int>& experts,
                                        const Device& d, const Shape& s,
                                        std::optional<WeightFormat> format) const {
  const AcceleratorProfile& a = accel(d);
  const WeightFormat f = format ? *format : u.expertFormatOn(/*cpu=*/false);
  if (a.hasGroupedMoeCurve()) {
    // The probe timed whole chunks under random routing (grouped_moe_gflops): padding, uneven
    // counts and the chunk's small kernels are in its rate, keyed by the mean rows per expert of
    // a chunk. Full chunks, then the rest, each at the rate of its own size.
    // A layer whose expert stats make it more skewed than the probe's uniform routing sits
    // between that curve and the skewed one, by the share of its pairs that its busiest quarter
    // of experts takes (the eleventh device run's random-weight DeepSeek-V2-Lite: 4 buckets of
    // batched GEMMs in layer 1, up to 12 in deep layers, 707 -> ~900 us a chunk).
    const double weights = u.expertFlopsPerToken / 2;
    const AcceleratorProfile::RoutingShares shares = a.groupedMoeSharesAt(weights);
    double towardSkewed = 0;
    if (shares.skewed > shares.uniform) {
      // The layer's share: one calibration window's when the stats have it (a chunk's routing),
      // else its experts' probabilities'.
      const double share =
          u.windowBusiestQuarter > 0 ? u.windowBusiestQuarter : busiestQuarterShare(u, experts);
      towardSkewed =
          std::clamp((share - shares.uniform) / (shares.skewed - shares.uniform), 0.0, 1.0);
    }
    double t = 0;
    for (const auto& [chunkTokens, count] : groupedChunks(s.tokens)) {
      const double pairs = expectedTokens(u, experts, chunkTokens);
      const double rows = pairs / std::max(1, u.numExperts);
      const double rate = a.groupedMoeGflopsAt(f, weights, rows);
      if (rate <= 0)
        return 0;
      const double flops = pairs * u.expertFlopsPerToken;
      double chunk = flops / (rate * 1e9);
      if (const double skewed = a.groupedMoeSkewedGflopsAt(f, weights, rows);
          towardSkewed > 0 && skewed > 0)
        chunk += towardSkewed * (flops / (skewed * 1e9) - chunk);
      t += count * chunk;
    }
    return t;
  }
  if (a.groupedGemmGflops.empty())
    return 0;
  // The uniform curve (grouped_gemm_gflops, no padding): every expert of a chunk is padded to the
  // chunk's busiest, its rows the expected maximum of the experts' counts (each about Poisson:
  // mean mu, the maximum of n such lies near mu + sqrt(2 mu ln n)), and the batched GEMMs run
  // that many rows per expert.
  const double chunkTokens = std::min(s.tokens, kGroupedChunkTokens);
  const double chunkTouched = std::max(1.0, expectedTouched(u, experts, chunkTokens));
  double most = 0, rows = 0;
  for (int e : experts) {
    const double mu = chunkTokens * u.expertProb[size_t(e)];
    rows += mu;
    most = std::max(most, mu + std::sqrt(2.0 * mu * std::log(std::max(2.0, chunkTouched))));
  }
  const double padding = rows > 0 ? most * chunkTouched / rows : 1.0;
  const double rate = a.groupedGemmGflops.at(f, most);
  const double flops = expectedTokens(u, experts, s.tokens) * u.expertFlopsPerToken;
  return rate > 0 ? flops * padding / (rate * 1e9) : 0;
}

double CostModel::groupedHostSeconds(const Unit& u, const std::vector<int>& experts,
                                     const Device& d, const Shape& s) const {
  const AcceleratorProfile& a = accel(d);
  if (a.groupedMoeHostUs.empty())
    return 0;
  double t = 0;
  for (const auto& [chunkTokens, count] : groupedChunks(s.tokens))
    t += count * a.groupedMoeHostSecondsAt(u.expertFlopsPerToken / 2,
                                           expectedTokens(u, experts, chunkTokens) /
                                               std::max(1, u.numExperts));
  return t;
}

double CostModel::groupedQuantExpertsSeconds(const Unit& u, const std::vector<int>& experts,
                                             const Device& d, const Shape& s) const {
  const GpuInt8Work& w = u.gpuInt8Expert;
  if (d.isCpu() || w.empty())
    return 0;
  // The GEMMs are the bf16 grouped path's over the widened stack.
  const double gemms = groupedExpertsSeconds(u, experts, d, s, WeightFormat::BF16);
  if (gemms <= 0)
    return 0;
  const double bw = bandwidth(d);
  double t = gemms;
  for (const auto& [chunkTokens, count] : groupedChunks(s.tokens)) {
    // Each chunk widens its active experts' three matrices, and int8 rescales every pair's
    // outputs (read and write f32).
    const double active = expectedTouched(u, experts, chunkTokens);
    const double pairs = expectedTokens(u, experts, chunkTokens);
    t += count * (active * w.widenBytes() + 8.0 * pairs * w.scaledOutputs()) / bw;
  }
  return t;
}

double CostModel::streamedExpertsTime(const Unit& u, const std::vector<int>& experts,
                                      const Device& gpu, const Shape& s) const {
  double touched = expectedTouched(u, experts, s.tokens);
  if (touched <= 0)
    return 0;
  const HostLink& l = accel(gpu).link;
  // The experts are CPU-held: what crosses the link is their CPU form, packed bytes as they are
  // (runtime/exec/cuda/ExpertStream.cpp).
  double bytes = touched * u.expertBytesOn(/*cpu=*/true);
  double copy = bytes / (l.h2dGBs * 1e9);
  // The host first copies them into pinned slots: a memcpy over the CPU's thread pool, which
  // reads and writes every byte (half the CPU nodes' streaming bandwidth).
  double cpuBandwidth = 0;
  for (const Device& d : devices_)
    if (d.isCpu())
      cpuBandwidth += bandwidth(d);
  double host = cpuBandwidth > 0 ? bytes / (cpuBandwidth / 2) : 0;
  // On the GPU the packed matrices are widened (bf16, or f32 in an f32 plan) and run by the
  // grouped path of the GPU's own experts: per expert three widenings, the gather, two GEMM
  // launches, SwiGLU, the down GEMM and the weighted scatter.
  constexpr int kLaunchesPerStreamedExpert = 9;
  const WeightFormat gpuForm =
      u.expertFormatOn(/*cpu=*/false) == WeightFormat::F32 ? WeightFormat::F32 : WeightFormat::BF16;
  double widened = touched * u.expertFlopsPerToken * (gpuForm == WeightFormat::F32 ? 2.0 : 1.0);
  double compute =
      computeTime(gpu, expectedTokens(u, experts, s.tokens) * u.expertFlopsPerToken, widened,
                  gpuForm, int(std::ceil(touched)) * kLaunchesPerStreamedExpert);
  // Experts go through two slots: the host copies expert i+1 while the link carries and the GPU
  // computes expert i, so the three stages overlap; the first copy's latency does not.
  return l.latencyUs * 1e-6 + std::max({host, copy, compute});
}

} // namespace kt::cost
