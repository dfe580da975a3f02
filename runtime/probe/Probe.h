#pragma once
// kt-rt probe: measures this machine into a hardware profile (docs/hardware-profile.md) — NUMA
// nodes, cores and caches from hwloc; sustained memory bandwidth per node (STREAM-like, the
// bench/kernels probes); the CPU quantized GEMV/GEMM kernels (kernels/cpu/quant) per weight format
// and ISA; the runtime thread pool's fork/join cost (the cost model's per-op overhead); and, when
// this build has CUDA and a GPU is present, each GPU's memory, HBM bandwidth, GEMM throughput and
// pinned host link. kt-compile --hw reads the file it writes.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kt::bench {
struct Buffer;
}

namespace kt::probe {

struct ProbeOptions {
  bool quick = false;     // smaller buffers, fewer repetitions (a few seconds)
  bool gpu = true;        // probe GPUs when this build has CUDA
  int threadsPerNode = 0; // 0: every core of the node
  std::string name;       // profile name ("" = the host name)
  // One line per phase ("bandwidth of cpu:numa0 ..."), for a progress display.
  std::function<void(const std::string&)> progress;
};

struct NodeResult {
  int index = 0;            // position (cpu:numa<index>)
  int osIndex = 0;          // hwloc's OS index
  int cores = 0;            // cores of the node (what the profile records)
  int threadsUsed = 0;      // threads the measurements ran with
  uint64_t memoryBytes = 0; // 0 when hwloc does not know
  double readGBs = 0;       // read-only sum, best 16 MiB block
  double triadGBs = 0;      // STREAM triad (24 bytes per element)
  double readMedianGBs = 0;
};

// One (ISA, weight format) pair of the quantized matmul kernels on node 0.
struct KernelResult {
  std::string isa;          // profile ISA key: scalar, avx2, avx512, amx
  std::string format;       // profile format key: f32, bf16, int8, int4
  double gemvGBs = 0;       // packed weight bytes per second of a 1-token GEMV over DRAM-sized data
  double gemvMedianGBs = 0; // median over the timed matrices (interference on a shared host)
  double readMedianGBs = 0; // plain read of the same matrices, alternating with the GEMV
  double gemmGflops = 0;    // large GEMM (prefill-like token count)
};

// GFLOP/s of the runtime's products at one activation row count (kt-rt probe's rows curves): a
// MoE expert of a P-token prefill multiplies its matrices with about P*k/E rows.
struct RowsResult {
  std::string format; // profile format key: f32, bf16, int8, int4
  bool plain = false; // the plain loops over unpacked rows (else the packed kernels)
  int64_t rows = 0;
  double gflops = 0;
  // Expert path only: the timed layer's expert intermediate size (hidden 2048): DeepSeek-V2-Lite's
  // 1408 (the profile's expert_rows_gflops) or Qwen3-30B-A3B's 768 (expert_rows_gflops_i768).
  int64_t inter = 0;
};

struct CpuResult {
  std::string model;
  int cores = 0, threads = 0;
  std::vector<std::string> isa; // profile ISA names this CPU offers
  double l1dPerCore = 0, l2PerCore = 0, l3PerNode = 0;
  std::vector<NodeResult> nodes;
  std::vector<KernelResult> kernels;
  double forkJoinUs = 0; // one parallel region of the runtime's ThreadPool beyond its work
  // The same region when the workers have gone to sleep first (the caller busy elsewhere for
  // longer than their spin: a hybrid plan's GPU phase before a CPU step).
  double wakeUs = 0;
  double gqaAttentionGflops = 0, mlaAttentionGflops = 0; // the runtime's f32 attention kernels
  // The same kernels over a causal prefill of N tokens, by N (the profile's
  // cpu.prefill_attention_gflops): a 256-token rate priced every prompt length before.
  std::map<int64_t, double> gqaPrefillGflops, mlaPrefillGflops;
  // One decode token's attention as the runtime's step runs it, by cached positions (the
  // profile's cpu.decode_attention_gflops).
  std::map<int64_t, double> gqaDecodeGflops, mlaDecodeGflops;
  double plainF32Gflops = 0, plainBf16Gflops = 0; // linear() over unpacked matrices
  // The same at 1 token over a DRAM-sized matrix, as weight bytes per second: a decode's GEMV
  // through the plain loops (plans without --cpu-quant), compared with readMedianGBs.
  double plainF32GemvGBs = 0, plainBf16GemvGBs = 0;
  // The packed kernels (runtime ISA) and the plain loops on expert-sized matrices by rows per
  // matrix: the profile's gemm_rows_gflops / plain_rows_gflops.
  std::vector<RowsResult> rowsRates;
  // The runtime's whole routed-expert path (cpuops::routedExpertsOver over a model's layer) by rows
  // per expert, per packed format and layer: the profile's expert_rows_gflops (DeepSeek-V2-Lite:
  // 64 experts of 1408 x 2048, top-6) and expert_rows_gflops_i768 (Qwen3-30B-A3B: 128 of
  // 768 x 2048, top-8) (ExpertProbe.cpp).
  std::vector<RowsResult> expertRates;
  double arrayBytes = 0;  // size of each bandwidth array (compare with l3PerNode)
  std::string memoryNote; // how node memory was decided when hwloc's numbers were not used
};

struct GpuResult {
  int index = 0;
  std::string name;
  uint64_t memoryBytes = 0;
  int smCount = 0;                              // streaming multiprocessors (device properties)
  double bandwidthGBs = 0;                      // device-to-device copy, counting read + write
  std::map<std::string, double> gemmTflops;     // per format (what cuBLAS reaches)
  std::map<std::string, double> gemvEfficiency; // per format: 1-token GEMV rate / bandwidthGBs
  double h2dGBs = 0, d2hGBs = 0;                // pinned, large copies
  double latencyUs = 0;                         // blocking 4-byte host-to-GPU copy
  double moveH2dGBs = 0, moveD2hGBs = 0;        // a prefill activation moved as the runtime does
  double launchSyncUs = 0;                      // empty kernel launch + synchronize
  // Host time per launch of the runtime's kernels issued back to back (a decode's routed
  // experts): the cost model's launch_overhead_us. 0 = not measured (no cuBLAS).
  double launchUs = 0;
  // The same kernels queued behind a busy GPU (a prefill's situation): host time to issue one,
  // and GPU time per kernel run back to back (the cost model's launch_issue_us, kernel_floor_us);
  // 0 = not measured.
  double launchIssueUs = 0, kernelFloorUs = 0;
  // The runtime's attention kernel (kernels/cuda/Attention.cu): GFLOP/s of a prefill (many
  // blocks) and of one (head, token) block in a decode; 0 = not measured.
  double gqaAttentionGflops = 0, mlaAttentionGflops = 0;
  double gqaAttentionBlockGflops = 0, mlaAttentionBlockGflops = 0;
  // One decode token's attention as the runtime runs it (split over the keys, Attention.cu), in
  // GFLOP/s, by cached positions; empty = not measured.
  std::map<int64_t, double> gqaDecodeGflops, mlaDecodeGflops;
  // The prefill (causal, no cache) of the same kernel by prompt length, GFLOP/s; empty = not
  // measured.
  std::map<int64_t, double> gqaPrefillGflops, mlaPrefillGflops;
  // A decode-shaped chain of the runtime's own kernels run back to back, each depending on the
  // previous one (GpuDecodeProbe.cu): GPU microseconds per kernel of the small kernels (norms,
  // adds, SwiGLU, rope, routing, combine) replayed as a CUDA graph and issued eagerly; 0 = not
  // measured.
  double decodeGraphKernelUs = 0, decodeEagerKernelUs = 0;
  // 1-token products in such a chain (Blas::linear, linearInt8), per format ("f32", "bf16",
  // "int8"), by matrix bytes: weight bytes per second beyond decodeGraphKernelUs per launch.
  std::map<std::string, std::map<int64_t, double>> decodeGemvGBs;
  // The fused MoE decode kernels (moeGateUpDecode + moeDownDecode for one token's top-k pairs),
  // per format, by one expert's bytes: expert bytes per second beyond decodeGraphKernelUs per
  // launch.
  std::map<std::string, std::map<int64_t, double>> decodeMoeGBs;
  // A prefill MoE layer's routed experts as the runtime multiplies them when all are on the GPU
  // (runtime/exec/cuda/MoeGrouped: Blas::linearStack, one batched GEMM over 64 DeepSeek-V2-Lite
  // experts of 1408 x 2048), per weight format, GFLOP/s by rows per expert: the profile's
  // grouped_gemm_gflops.
  std::map<std::string, std::map<int64_t, double>> groupedGemmGflops;
  // The whole grouped chunk as the runtime runs it under random top-k routing (index upload,
  // gather, three products, SwiGLU, gather back, combine; padding included), per format, GFLOP/s
  // of the useful expert FLOPs by MEAN rows per expert (chunk tokens x k / E): DeepSeek-V2-Lite's
  // layer (64 experts of 1408 x 2048, top-6) -> grouped_moe_gflops, Qwen3-30B-A3B's (128 of
  // 768 x 2048, top-8) -> grouped_moe_gflops_i768. groupedMoeLayout: the layout timed there (the
  // runtime's KT_CUDA_MOE_GEMM, "bucketed", "padded" or "ragged"); the Alt curves: the comparison
  // layout (diagnostics). HostUs: the host's grouping of such a chunk, microseconds (not in the
  // curves).
  std::string groupedMoeLayout;
  std::map<std::string, std::map<int64_t, double>> groupedMoeGflops, groupedMoeGflopsI768;
  std::map<std::string, std::map<int64_t, double>> groupedMoeAltGflops, groupedMoeAltGflopsI768;
  std::map<int64_t, double> groupedMoeHostUs, groupedMoeHostUsI768;
  // The same chunks under a skewed routing (experts drawn by a log-normal popularity), the
  // default layout: grouped_moe_skewed_gflops[_i768]; and the share of the pairs that the busiest
  // quarter of the experts took under each routing (grouped_moe_skew: {uniform, skewed} per
  // shape, over every chunk's pairs).
  std::map<std::string, std::map<int64_t, double>> groupedMoeSkewedGflops,
      groupedMoeSkewedGflopsI768;
  double groupedMoeShareUniform[2] = {0, 0}, groupedMoeShareSkewed[2] = {0, 0}; // [i768]
};

struct ProbeResult {
  CpuResult cpu;
  std::vector<GpuResult> gpus;
  std::string gpuNote; // why there are no GPUs ("built without CUDA", driver message)
  double seconds = 0;  // how long the probe took
};

ProbeResult runProbe(const ProbeOptions& options);

// The hardware-profile JSON of a result ("source": "measured"); `name` is the profile name.
std::string profileJson(const ProbeResult& r, const std::string& name);

// ---- pieces (CpuProbe.cpp, GpuProbe.*), exposed for tests ----
void probeCpu(const ProbeOptions& options, CpuResult* out);
// Fills `out` with every GPU this process can use; returns false with *note when none.
bool probeGpus(const ProbeOptions& options, std::vector<GpuResult>* out, std::string* note);

// Memory per NUMA node: hwloc's numbers (`hwlocBytes`, 0 = unknown) checked against the machine's
// total (`machineBytes`, 0 = unknown). A single node reporting under 75% of the total gets the
// total (VMs whose hwloc node is a fraction of the guest); several nodes under it, or with unknown
// members, are scaled to it in proportion. *note says what was changed ("" when nothing).
std::vector<uint64_t> decideNodeMemory(const std::vector<uint64_t>& hwlocBytes,
                                       uint64_t machineBytes, std::string* note);
// /proc/meminfo MemTotal, else sysconf physical pages; 0 when neither is readable.
uint64_t machineMemoryBytes();

// The expert-path curve of node 0 (ExpertProbe.cpp) into out->expertRates, over copies of one
// expert filling `blob`; and its row counts.
void measureExpertPath(const ProbeOptions& options, int threads, bench::Buffer& blob,
                       CpuResult* out);
const std::vector<int64_t>& expertCurveRows(bool quick);

// gemv_efficiency per format: the runtime ISA's median GEMV rate / node 0's median read rate,
// capped to 1.
std::map<std::string, double> gemvEfficiency(const CpuResult& cpu);

} // namespace kt::probe
