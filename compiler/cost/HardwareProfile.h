#pragma once
// A hardware profile: what the cost model knows about the machine a plan is compiled for — CPU
// NUMA nodes (cores, memory, bandwidth), CPU kernel throughput per weight format and ISA, GPUs
// (memory, HBM bandwidth, GEMM throughput, the host link) and NPUs (the same plus the op kinds they
// can run). Read from JSON; the schema is docs/hardware-profile.md and examples are in
// examples/hw/.
//
// Parsing never throws: errors come back as one line naming the file and the JSON field, e.g.
// "hw.json: cpu.numa_nodes[1].bandwidth_gbs: expected a positive number, got \"fast\"".
// (The parser itself is exception-based nlohmann_json, caught inside HardwareProfile.cpp, so this
// header is safe for -fno-exceptions callers.)
#include "compiler/cost/Units.h"

#include <map>
#include <string>
#include <vector>

namespace kt::cost {

// A number per weight format ("f32", "bf16", "f16", "int8", "int4"). A format that is absent
// falls back along f16 -> bf16 -> f32 and int4 -> int8 -> bf16 -> f32, so a profile can give
// only what it has measured; "f32" is always present (the parser requires it).
struct FormatTable {
  std::map<std::string, double> values;
  double get(WeightFormat f) const;
};

// GFLOP/s by the number of activation rows a matrix is multiplied with, per weight format: kt-rt
// probe's measured points on expert-sized matrices (a MoE expert of a P-token prefill gets about
// P*k/E rows, far fewer than the large GEMM of gemm_gflops). Between two points the rate is
// interpolated linearly in log2(rows); outside the points it stays at the nearest one's rate
// (below the first, the roofline's memory side — the weights' streaming time, at the GEMV
// efficiency of the kernels a few rows take — is what bounds a product anyway).
struct RowsCurve {
  std::map<std::string, std::map<int64_t, double>> points; // format -> rows -> GFLOP/s
  bool empty() const { return points.empty(); }
  // GFLOP/s for format `f` (the FormatTable fallback chain picks the curve) at `rows`; 0 when no
  // format on the chain has a curve.
  double at(WeightFormat f, double rows) const;
  // The curve named `key` at `x`, linear in log2(x) between points and held flat outside them; 0
  // when there is no such curve. (Also used for curves keyed by attention kind and positions.)
  double atKey(const std::string& key, double x) const;
};

struct NumaNode {
  int id = 0;
  int cores = 0;
  double memoryBytes = 0;
  double bandwidthGBs = 0; // sustained DRAM read bandwidth of this node (STREAM-like)
};

struct CpuCaches {
  double l1dPerCore = 0, l2PerCore = 0, l3PerNode = 0; // bytes; recorded, not yet modelled
};

struct CpuProfile {
  std::string model;
  std::vector<std::string> isa;    // e.g. avx2, avx512, avx512_bf16, avx512_vnni, amx
  std::vector<NumaNode> numaNodes; // index i is cpu:numa<i>
  CpuCaches caches;
  FormatTable gemvEfficiency; // fraction of bandwidthGBs a 1-token GEMV reaches
  // ISA -> GFLOP/s of one NUMA node (all its cores) for a large GEMM of that weight format.
  std::map<std::string, FormatTable> gemmGflops;
  // GFLOP/s of one node multiplying unpacked (checkpoint-dtype) matrices: the runtime's plain
  // loops. Empty when not given: the packed kernels' rate is used.
  FormatTable plainGflops;
  // Fraction of bandwidthGBs a 1-token product over unpacked matrices reaches (the plain loops
  // convert and multiply every element, which can be slower than DRAM). Empty: gemvEfficiency.
  FormatTable plainGemvEfficiency;
  // The packed kernels (the runtime's ISA) and the plain loops by rows per matrix; empty when the
  // profile predates them: gemm_gflops / plain_gflops are used at every row count.
  RowsCurve gemmRowsGflops, plainRowsGflops;
  // The runtime's whole routed-expert path (gather, prepare, gate/up, SwiGLU, down, combine over a
  // layer's experts: cpuops::routedExpertsOver) by rows per expert, per packed format, GFLOP/s of
  // the experts' matrix FLOPs: `expert_rows_gflops` (kt-rt probe). Empty: routed experts use
  // gemmRowsGflops (one matrix's row blocks), which overstates a MoE layer's prefill.
  RowsCurve expertRowsGflops;
  // The same for smaller experts (768 x 2048, Qwen3-30B-A3B's): `expert_rows_gflops_i768`. With
  // both, an expert's rate is interpolated by its size (expertPathGflops).
  RowsCurve expertRowsGflopsI768;
  // The expert path's GFLOP/s for an expert of `weights` matrix elements (gate + up + down) at
  // `rows` rows: expert_rows_gflops for a DeepSeek-V2-Lite-sized expert (3 x 2048 x 1408), between
  // the two curves linearly in log(weights), held flat outside them; 0 without a curve.
  double expertPathGflops(WeightFormat f, double weights, double rows) const;
  double reservedBytes = 0; // kept for the OS and runtime, summed over nodes
  double opOverheadUs = 0;  // fork/join of the worker pool, per kt op
  // The fork/join of a pool whose workers went to sleep (after the caller worked elsewhere, e.g.
  // a GPU phase): paid once by a CPU step that follows GPU work. 0 = not given.
  double poolWakeUs = 0;
  // GFLOP/s of one node's f32 attention kernels (scores + weighted sums of the KV cache, not
  // GEMMs); 0 = not given: the best f32 GEMM rate is used.
  double gqaAttentionGflops = 0, mlaAttentionGflops = 0;
  // The same kernels over a causal prefill, by its tokens: {"gqa"|"mla": {"TOKENS": GFLOP/s}}
  // (kt-rt probe; as the accelerators' prefill_attention_gflops). Empty: attention_gflops.
  RowsCurve prefillAttentionGflops;
  // One decode token's attention as the runtime's step runs it (MLA split over the keys), by
  // cached positions: {"gqa"|"mla": {"POSITIONS": GFLOP/s}} (kt-rt probe). With it a CPU decode's
  // attention is priced at that rate after the projections' time (its cache read included),
  // not hidden under their weight streaming. Empty: attention_gflops, inside the roofline.
  RowsCurve decodeAttentionGflops;

  // The best GFLOP/s of any ISA this CPU has for `f`.
  double bestGemmGflops(WeightFormat f) const;
};

// The PCIe (or other) link between host memory and an accelerator, pinned buffers.
struct HostLink {
  double h2dGBs = 0, d2hGBs = 0;
  double latencyUs = 0;
  // An activation moved at a step that changes device, as the runtime moves it (a pageable
  // vector staged through pinned memory, runtime/exec/cuda/ActivationMoves.h): kt-rt probe times
  // a 2048 x 2048 f32 one. 0 = not measured: the pinned rates above.
  double moveH2dGBs = 0, moveD2hGBs = 0;
};

// A GPU or an NPU. NPUs also list the op kinds they can run; GPUs run everything.
struct AcceleratorProfile {
  int id = 0;
  std::string name;
  double memoryBytes = 0;
  double reservedBytes = 0;   // runtime context, workspaces and activations
  double bandwidthGBs = 0;    // device memory bandwidth
  FormatTable gemvEfficiency; // default 0.8 for every format when absent
  FormatTable gemmTflops;     // per weight format
  HostLink link;
  // Host time to issue one kernel, cuBLAS call or async copy back to back (kt-rt probe times the
  // runtime's own kernels). The cost model multiplies it by the launches the CUDA backend issues
  // per op (GpuLaunches.h); blocking copies cost link.latency_us each on top.
  double launchOverheadUs = 0;
  // A prefill's kernels are long enough that the host issues the next ones while the GPU runs
  // earlier ones: then a unit takes max(launches x launchIssueUs, its GPU work + launches x
  // kernelFloorUs) instead of max(work, launches x launchOverheadUs). launchIssueUs: host time per
  // launch while the GPU is busy; kernelFloorUs: GPU time per small kernel run back to back
  // (kt-rt probe measures both). 0 = not given: a prefill's launches cost launchOverheadUs too.
  double launchIssueUs = 0, kernelFloorUs = 0;
  // Streaming multiprocessors (GPUs; `sm_count`, kt-rt probe writes it): decode attention is split
  // over the keys into about 4 blocks per SM (kernels/cuda/Attention.cu). 0 = not given: one block
  // per (head, query token), as before the split.
  int smCount = 0;
  // One decode token's attention as the runtime runs it (split over the keys), GFLOP/s by cached
  // positions, per kind ("gqa", "mla"): `decode_attention_gflops` (kt-rt probe). Empty = not
  // given: decode attention is timed from attention_gflops / attention_block_gflops.
  RowsCurve decodeAttentionGflops;
  // The prefill (causal, no cache) of the same kernel by prompt length (tokens per sequence), per
  // kind: `prefill_attention_gflops` (kt-rt probe, 512-4096 tokens). Empty: attention_gflops
  // (measured at 512 tokens) at every length.
  RowsCurve prefillAttentionGflops;
  // A decode-shaped chain of the runtime's own kernels (kt-rt probe, GpuDecodeProbe.cu). Used for
  // decode-sized steps (up to 8 tokens) when decodeGraphKernelUs > 0:
  //   GPU microseconds per kernel of the chain's small kernels back to back, replayed as a CUDA
  //   graph (`decode_kernel_us.graph`) and issued eagerly (`.eager`, host issue included; 0:
  //   launch_overhead_us);
  double decodeGraphKernelUs = 0, decodeEagerKernelUs = 0;
  //   weight bytes per second of a 1-token product by matrix bytes, per format, beyond the
  //   per-kernel cost (`decode_gemv_gbs`; empty: bandwidth x gemv_efficiency);
  RowsCurve decodeGemvGBs;
  //   the same for the fused MoE decode kernels by one expert's bytes (`decode_moe_gbs`; empty:
  //   decodeGemvGBs at one expert matrix's bytes).
  RowsCurve decodeMoeGBs;
  // GFLOP/s of a prefill MoE layer's routed experts multiplied as one batched GEMM over the
  // experts (runtime/exec/cuda/MoeGrouped, when every expert is on the GPU in f32 or bf16) by rows
  // per expert, per format: `grouped_gemm_gflops`. Empty: such layers are priced per expert.
  RowsCurve groupedGemmGflops;
  // The whole grouped chunk as the runtime runs it under random top-k routing (kt-rt probe: the
  // index upload, gather, three products, SwiGLU, gather back and combine; the padding to each
  // chunk's busiest expert and the uneven counts included), GFLOP/s of the useful expert FLOPs by
  // MEAN rows per expert of a chunk (chunk tokens x k / E), per format: `grouped_moe_gflops`
  // (DeepSeek-V2-Lite's 64 experts of 1408 x 2048, top-6) and `grouped_moe_gflops_i768`
  // (Qwen3-30B-A3B's 128 of 768 x 2048, top-8). With either, grouped layers are priced with
  // groupedMoeGflopsAt instead of groupedGemmGflops times an estimated padding.
  RowsCurve groupedMoeGflops, groupedMoeGflopsI768;
  // The same chunks under a skewed routing (the probe's experts drawn by a log-normal popularity):
  // `grouped_moe_skewed_gflops` and `grouped_moe_skewed_gflops_i768`, and `grouped_moe_skew`
  // {"grouped_moe_gflops": {"uniform": S, "skewed": S}, ...}: the share of the (token, k) pairs
  // that the busiest quarter of the experts took under each of the probe's two routings. A layer
  // whose expert stats give its busiest quarter a share between the two is priced between the
  // curves (CostModel::groupedExpertsSeconds); without stats its share is 1/4: the uniform curve.
  RowsCurve groupedMoeSkewedGflops, groupedMoeSkewedGflopsI768;
  struct RoutingShares {
    double uniform = 0, skewed = 0; // 0: not measured
  };
  RoutingShares groupedMoeSkew, groupedMoeSkewI768;
  // The skewed curve at (f, weights, rows) as groupedMoeGflopsAt, and the two routings' shares
  // between the shapes; 0 / zero shares without them.
  double groupedMoeSkewedGflopsAt(WeightFormat f, double weights, double rows) const;
  RoutingShares groupedMoeSharesAt(double weights) const;
  // GFLOP/s of a grouped chunk for experts of `weights` matrix elements (gate + up + down) at
  // `rows` mean rows per expert: between the two curves by expert size as
  // CpuProfile::expertPathGflops; the one curve given when only one is; 0 without either.
  double groupedMoeGflopsAt(WeightFormat f, double weights, double rows) const;
  bool hasGroupedMoeCurve() const {
    return !groupedMoeGflops.empty() || !groupedMoeGflopsI768.empty();
  }
  // Host microseconds of grouping one chunk's routing (countChunk + fillChunkIndex, after the
  // routing readback, while the GPU waits) by mean rows per expert, for the two shapes of the
  // curves above: `grouped_moe_host_us` {"grouped_moe_gflops": {ROWS: us},
  // "grouped_moe_gflops_i768": {...}}. Empty: not priced.
  RowsCurve groupedMoeHostUs;
  // Seconds of that grouping for experts of `weights` matrix elements at `rows` mean rows per
  // expert, between the two shapes as groupedMoeGflopsAt; 0 without the curve.
  double groupedMoeHostSecondsAt(double weights, double rows) const;
  // GFLOP/s of the runtime's attention kernel (kernels/cuda/Attention.cu, one block per (head,
  // token)) per (token, position) pair FLOPs: `attention` with enough blocks to fill the GPU (a
  // prefill), `attentionBlock` of one block when few run (decode: heads x 1 blocks). A step with
  // B blocks runs at min(attention, B x attentionBlock). 0 = not given: the f32 GEMM rate, and no
  // per-block limit.
  double gqaAttentionGflops = 0, mlaAttentionGflops = 0;
  double gqaAttentionBlockGflops = 0, mlaAttentionBlockGflops = 0;
  std::vector<std::string> supportedOps; // NPU only; see docs/hardware-profile.md for the names
};

struct HardwareProfile {
  std::string name;
  std::string description;
  std::string source; // "measured" (kt-rt probe), "datasheet" or "placeholder"
  CpuProfile cpu;
  std::vector<AcceleratorProfile> gpus; // index i is gpu:<i>
  std::vector<AcceleratorProfile> npus; // index i is npu:<i>
};

// The op kinds an NPU's supported_ops may list (also the names --explain uses for groups).
const std::vector<std::string>& knownOpKinds();
// ISA names a profile may use in cpu.isa and cpu.gemm_gflops.
const std::vector<std::string>& knownIsas();

// Parses and validates a profile. `origin` (a file name, or "inline profile") prefixes errors.
bool parseHardwareProfile(const std::string& jsonText, const std::string& origin,
                          HardwareProfile* out, std::string* error);
// Reads `path` and parses it.
bool loadHardwareProfile(const std::string& path, HardwareProfile* out, std::string* error);

} // namespace kt::cost
