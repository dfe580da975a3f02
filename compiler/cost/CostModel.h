#pragma once
// The cost model: how long a piece of work takes on a device of a hardware profile.
//
//   time = max(flops / peak(format), bytes / (bandwidth * gemv_efficiency(format)))
//          + ops * per-op overhead (CPU fork/join, GPU/NPU launch)
//
// a roofline per op: decode (a few tokens) is bound by the weight bytes it streams, prefill (many
// tokens) by FLOPs. Moving activations between a CPU node and an accelerator costs the link's
// latency plus bytes / link bandwidth. Routed experts are modelled by expectation: with P(token
// picks expert e) = p_e, a step of T tokens touches expert e with probability 1 - (1 - p_e)^T
// (its weights are read once if touched) and sends it T * p_e tokens (FLOPs). For uniform routing
// p_e = k/E, so E * (1 - (1 - k/E)^T) distinct experts and T*k/E tokens per expert.
// docs/cost-model.md has the derivations and the limits.
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/ModelGraph.h"

#include <optional>
#include <string>
#include <vector>

namespace kt::cost {

enum class DeviceClass { Cpu, Gpu, Npu };

struct Device {
  std::string spec; // "cpu:numa0", "gpu:1", "npu:0" (the #kt.device spelling)
  DeviceClass cls = DeviceClass::Cpu;
  int index = 0;
  bool isCpu() const { return cls == DeviceClass::Cpu; }
};

// How an accelerator's launches of one step are paid for:
//   Eager      small kernels issued one by one (a decode step): the host's launch overhead bounds
//              it, max(work, launches x launch_overhead_us);
//   Pipelined  long kernels (a prefill: many rows each): the host issues while the GPU runs
//              earlier ones, max(launches x launch_issue_us, work + launches x kernel_floor_us)
//              when the profile has both, else as Eager;
//   Graph      a decode step replayed as a CUDA graph: no host issue, the GPU's own time per
//   kernel,
//              work + launches x kernel_floor_us (as Eager without kernel_floor_us).
enum class LaunchMode { Eager, Pipelined, Graph };
// The mode of a step of shape `s` whose kernels each cover `rows` rows.
LaunchMode launchMode(const Shape& s, double rows);

class CostModel {
public:
  explicit CostModel(const HardwareProfile& profile);

  const HardwareProfile& profile() const { return profile_; }
  // Every device of the profile: CPU NUMA nodes, then GPUs, then NPUs.
  const std::vector<Device>& devices() const { return devices_; }
  // Looks up a spec; false if the profile has no such device.
  bool find(const std::string& spec, Device* out) const;

  // Device characteristics (seconds, bytes/s, FLOP/s).
  double bandwidth(const Device& d) const; // memory bandwidth
  // Fraction of bandwidth a 1-token product over weights in `f` reaches: the packed kernels', or
  // with `unpacked` the CPU's plain loops (plain_gemv_efficiency when the profile has it).
  double gemvEfficiency(const Device& d, WeightFormat f, bool unpacked = false) const;
  double peakFlops(const Device& d, WeightFormat f) const;
  double opOverhead(const Device& d) const;
  // A CPU step's start after the host worked elsewhere (a GPU phase): the pool's wake-up
  // (pool_wake_us); 0 for accelerators and profiles without it.
  double poolWakeSeconds(const Device& d) const;
  // FLOP/s of attention's score and value work (per (token, position) pair FLOPs) for a unit of
  // kind `k`: the measured attention kernels when the profile has them (else the f32 GEMM rate).
  // On an accelerator the kernel runs one block per (head, token): with `blocks` of them (0 =
  // plenty) the rate is at most blocks x the profile's one-block rate.
  double attentionFlops(const Device& d, UnitKind k, double blocks = 0) const;
  // Seconds of `packed` FLOPs on the packed kernels of format `f` plus `unpacked` FLOPs on plain
  // loops over checkpoint-dtype rows (the CPU's plain_gflops; elsewhere the same peak). `rows`:
  // the activation rows each matrix is multiplied with (a routed expert gets T*p_e of a T-token
  // step); on a CPU whose profile has the measured rows curves (gemm_rows_gflops,
  // plain_rows_gflops) the rate is read off them there. 0: the large-GEMM rate.
  double flopsSeconds(const Device& d, double packed, double unpacked, WeightFormat f,
                      double rows = 0) const;
  double memoryBytes(const Device& d) const;   // physical memory
  double reservedBytes(const Device& d) const; // kept back from the budget
  // Whether `d` can run ops of this kind (CPUs and GPUs run everything; NPUs what they list).
  bool supports(const Device& d, const std::string& opKind) const;

  // Decode-sized steps (up to kDecodeChainTokens tokens) on an accelerator whose profile has the
  // probe's decode chain (decode_kernel_us): the step's kernels are priced as measured on a chain
  // of the runtime's own decode kernels instead of by the roofline and the tiny-kernel floor.
  static constexpr double kDecodeChainTokens = 8;
  bool decodeChain(const Device& d, double tokens) const;
  // Seconds of 1-token products streaming `bytes` of weights in format `f` held in `matrices`
  // matrices (of bytes / matrices each) in such a step, beyond the per-kernel cost: the probe's
  // decode_gemv_gbs at that size, else bandwidth x gemv_efficiency.
  double decodeGemvSeconds(const Device& d, WeightFormat f, double bytes, double matrices) const;
  // The same for the fused MoE decode kernels over experts (routed or shared) of `expertBytes`
  // each: decode_moe_gbs at that size, else decodeGemvSeconds over 3 matrices per expert.
  double decodeMoeSeconds(const Device& d, WeightFormat f, double bytes, double expertBytes) const;
  // FLOP/s of a prefill's attention on `d` (an accelerator or the CPU) with `tokens` new tokens
  // per sequence: the probe's prefill_attention_gflops at that length when the profile has it,
  // else 0.
  double prefillAttentionFlops(const Device& d, UnitKind k, double tokens) const;
  // The same for a decode over `positions` cached positions: decode_attention_gflops (the GPU's
  // split kernel, the CPU's decode step) at that context, else 0.
  double decodeAttentionFlops(const Device& d, UnitKind k, double positions) const;

  // `work` seconds (a roofline time) plus the overheads of issuing it: on a CPU `cpuOps` fork/joins
  // of the pool; on an accelerator the host issues `launches` kernels back to back, which the GPU
  // cannot outrun, so max(work, launches x launch overhead), then waits `syncs` link round trips
  // (blocking copies). `launches` <= 0 on an accelerator (an unknown structure): `cpuOps` launch
  // overheads added instead. How launches cost depends on `mode` (LaunchMode); with the decode
  // chain's numbers (decode_kernel_us) a Graph step costs work + launches x its graph time per
  // kernel, an Eager one max(launches x its eager time, work + launches x the graph time).
  double withOverheads(const Device& d, double work, int cpuOps, double launches, double syncs,
                       LaunchMode mode = LaunchMode::Eager) const;
  // GPU seconds of products over the int8 matrices `w` with `tokens` rows each when they take
  // Blas::linearInt8's widening path (GpuInt8.h): widening traffic at the memory bandwidth, the
  // bf16 GEMM at the bf16 rate, the column scaling. 0 when they do not (a GEMV over int8 bytes: the
  // ordinary roofline) or on a CPU.
  double int8WidenedSeconds(const Device& d, const GpuInt8Work& w, double tokens) const;
  // Host time to issue `launches` to accelerator `d`: launch_issue_us in a prefill (Pipelined)
  // when the profile has it, 0 for a replayed graph, else launch_overhead_us. 0 on a CPU.
  double issueSeconds(const Device& d, double launches, LaunchMode mode) const;
  // The roofline time of `flops` and `bytes` (streamed from memory) in format `f` plus `ops`
  // op overheads.
  double computeTime(const Device& d, double flops, double bytes, WeightFormat f, int ops) const;
  // Moving `bytes` of activations from one device to another: 0 within the host (NUMA nodes
  // share memory), latency + bytes / link bandwidth across a host link (twice between two
  // accelerators, which go through the host).
  double transferTime(const Device& from, const Device& to, double bytes) const;
  // An activation moved at a step that changes device, as the runtime moves it: from 1 MiB on
  // (the runtime's staging threshold, runtime/exec/cuda/ActivationMoves.h) at the link's measured
  // move rates when the profile has them, else as transferTime.
  double activationMoveTime(const Device& from, const Device& to, double bytes) const;

  // A unit's dense work (everything but routed experts) for one step.
  double unitTime(const Unit& u, const Device& d, const Shape& s) const;
  // The routed experts `experts` of MoE unit `u`, all held by `d`, for one step (no time if none
  // is expected to be touched).
  double expertsTime(const Unit& u, const std::vector<int>& experts, const Device& d,
                     const Shape& s) const;
  // Compute seconds of `tokens` tokens through MoE unit `u`'s packed shared experts on CPU `d`,
  // run as the CPU moe op runs them: inside the fused expert region, in token chunks of at most
  // max(128, 2 tokens / cores) (runtime/exec/cpu/MoeOp.cpp), at the profile's expert-path rate for
  // their size at that many rows; 0 when the profile has no expert-path curve for the format.
  double cpuSharedExpertsSeconds(const Unit& u, const Device& d, double tokens) const;
  // GPU seconds of a prefill MoE layer's routed experts, all on accelerator `d` in f32/bf16, run
  // by the grouped path (runtime/exec/cuda/MoeGrouped, chunks of kGroupedChunkTokens): the
  // profile's whole-chunk curve (grouped_moe_gflops[_i768]) at each chunk's mean rows per expert,
  // else the uniform grouped_gemm_gflops with an estimated padding; 0 when the profile has no
  // grouped curve for the experts' format. Launch overheads are not included (expertsTime adds
  // them).
  // `format`: price the GEMMs in this format instead of the experts' own (the widened bf16 stack
  // of int8/int4 experts).
  double groupedExpertsSeconds(const Unit& u, const std::vector<int>& experts, const Device& d,
                               const Shape& s,
                               std::optional<WeightFormat> format = std::nullopt) const;
  // Host time grouping a grouped layer's chunks (grouped_moe_host_us at each chunk's mean rows per
  // expert), during which the GPU waits; 0 without that curve.
  double groupedHostSeconds(const Unit& u, const std::vector<int>& experts, const Device& d,
                            const Shape& s) const;
  // The same for --gpu-quant int8/int4 experts (runtime/exec/cuda/MoeGroupedQuant): per chunk and
  // product the active experts' slices widened to bf16 (read q and scales, write 2 B a weight),
  // the bf16 grouped GEMMs at the bf16 curve, and for int8 the per-column scaling of the outputs.
  double groupedQuantExpertsSeconds(const Unit& u, const std::vector<int>& experts, const Device& d,
                                    const Shape& s) const;
  // Prefill offload: the same experts held in host memory, streamed to accelerator `gpu` over
  // its link and computed there (transfer and compute overlap).
  double streamedExpertsTime(const Unit& u, const std::vector<int>& experts, const Device& gpu,
                             const Shape& s) const;

  // Expected distinct experts touched / tokens routed to a set of experts in one step.
  static double expectedTouched(const Unit& u, const std::vector<int>& experts, double tokens);
  static double expectedTokens(const Unit& u, const std::vector<int>& experts, double tokens);
  // Share of the set's expected pairs that its busiest quarter of experts takes (expert stats):
  // 1/4 under uniform routing (compared with the probe's grouped_moe_skew).
  static double busiestQuarterShare(const Unit& u, const std::vector<int>& experts);

private:
  const AcceleratorProfile& accel(const Device& d) const;
  // transferTime, or with `staged` at the links' measured activation-move rates where given.
  double linkSeconds(const Device& from, const Device& to, double bytes, bool staged) const;

  HardwareProfile profile_;
  std::vector<Device> devices_;
};

} // namespace kt::cost
