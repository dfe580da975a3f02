#pragma once
// What the CUDA backend (runtime/exec/cuda) launches for each kind of unit, counted from its code:
// the cost model charges a GPU-held unit max(GPU work, launches x launch_overhead_us) plus one link
// round trip (latency_us) per blocking copy, instead of one overhead per kt op. A decode step of a
// small model is bound by these launches and round trips, not by FLOPs or bytes.
//
// The counts mirror the runtime and must change with it (test/unit/cost/cost_test.cpp spells out
// the DeepSeek-V2-Lite numbers the code gives):
//   linear        1 cuBLAS GEMM; bf16 weights add the kernel that rounds the activations to bf16
//                 (kernels/cuda/Blas.cu); a bias adds one kernel
//   glue ops      rms_norm 1, add 1, swiglu 1, rope 2 (copy + rotate)
//   attention     q/k/v/o linears, q/k norms, 2 ropes; per sequence 2 KV-cache appends + 1 kernel,
//                 at decode sizes + 1 merge of the key splits (kernels/cuda/Attention.cu splits
//                 the keys of up to cuda::kAttentionSplitMaxTokens tokens; a short KV cache or a
//                 step of many heads is not split, which this count ignores)
//   mla_attention q (or q_a, norm, q_b), kv_a, norm, 2 ropes, 2 batched GEMMs, o; per sequence
//                 2 KV-cache appends + 1 kernel (+ 1 merge at decode sizes, as attention)
//   mlp           gate/up/down linears + swiglu
//   moe, prefill (more than decodeMaxTokens tokens): router linear, top-k kernel, zero fill, shared
//                 experts (3 linears, swiglu, scatter-add; Qwen2's gate: a linear + sigmoid); one
//                 synchronisation that brings the routing choices (and, hybrid, the activations)
//                 to the host. Routed experts on the GPU: 2 blocking copies of the grouping back,
//                 and per touched expert a gather, 3 linears, swiglu and a scatter-add; or, when
//                 every expert is on the GPU in f32/bf16, per 1024-token chunk 14 (f32: 11)
//                 launches and no blocking copy (groupedChunk*, MoeGrouped.h). Routed
//                 experts on the host: the result goes back by an async copy and an add (the link
//                 time itself is the cost model's transfer).
//   moe, decode (up to decodeMaxTokens tokens; kernels/cuda/MoeDecode.cu): router linear, top-k,
//                 shared experts as 2 fused kernels (gate+up+SwiGLU, down; Qwen2's gate: a linear
//                 + sigmoid), one combine kernel. GPU-resident routed experts: 2 kernels for all
//                 (token, expert) pairs, whatever the number touched, and no host round trip.
//                 Experts on the host: the routing's synchronisation as in prefill.
//                 at(tokens) gives the fields for a step's size.
//   lm_head       a gather of the sampled rows (their ids uploaded once per distinct list) and the
//                 linear; decode (every row sampled) the linear alone
//   embedding     1 kernel
//
// CUDA graphs (runtime/exec/cuda/Graphs.cpp): a decode step of a plan whose steps all run on the
// GPU is replayed as one graph, so its launches cost the GPU's per-node time (~1-2 us), not the
// host's launch overhead; a cost model that prices them at launch_overhead_us overestimates such
// plans' decode.
#include "compiler/cost/Units.h"

#include <string>

namespace kt::cost {

// Launches (kernels, cuBLAS calls, async copies) and blocking copies of one step of a unit.
struct GpuLaunches {
  double perStep = 0;     // whatever the step's shape
  double perSequence = 0; // per sequence of the step (KV-cache copies, the attention kernel)
  double hostSyncs = 0;   // blocking host<->GPU copies: the host waits for the GPU's queue
  double shared = 0;      // MoE: the shared experts' part of perStep (they run after the router)
  // MoE only: when the layer's routed experts are held by the GPU, per touched expert and the
  // fixed part; when they are held by the host instead.
  double perTouchedExpert = 0, gpuExpertsSyncs = 0;
  // MoE prefill whose routed experts are all on the GPU in f32/bf16 (runtime/exec/cuda/
  // MoeGrouped): instead of perTouchedExpert and gpuExpertsSyncs, per chunk of
  // kGroupedChunkTokens tokens a gather, three batched GEMMs (each: the bf16 rounding, the pointer
  // arrays, the GEMM), SwiGLU, a gather back, the combine (and one async upload of the grouping
  // per step, counted here); nothing blocks.
  double groupedChunkLaunches = 0, groupedChunkSyncs = 0;
  double hostExpertsLaunches = 0, hostExpertsSyncs = 0;
  // MoE and lm_head at decode sizes (tokens <= decodeMaxTokens; 0: no decode form): what
  // perStep, shared and hostSyncs are then, and the fixed launches of GPU-resident routed experts
  // (instead of perTouchedExpert and gpuExpertsSyncs). A decode router whose experts all stay on
  // the GPU does not synchronise (decodeHostSyncs 0); with experts on the host it does, once
  // (decodeHostExpertsSyncs, which at() puts in hostExpertsSyncs).
  double decodeMaxTokens = 0;
  double decodePerStep = 0, decodeShared = 0, decodeHostSyncs = 0, decodeGpuExperts = 0;
  double decodeHostExpertsSyncs = 0; // the routing's readback when experts run on the host
  double decodePerSequence = 0;      // attention: the kernel and the merge of its key splits

  // The counts for a step of `tokens` tokens: the decode form folded into the prefill fields
  // (perTouchedExpert 0, the fixed expert launches in gpuExpertsLaunches), or *this.
  GpuLaunches at(double tokens) const;
  // Sums another op's launches into a unit's: a part without a decode form counts the same at
  // decode sizes.
  GpuLaunches& operator+=(const GpuLaunches& o);
  double gpuExpertsLaunches = 0; // fixed launches of GPU-resident routed experts (decode form)
};

// One weight product (runtime linearInto): the GEMM, the bf16 rounding of the activations when
// the weight is bf16 on the GPU, the bias.
double linearLaunches(bool bf16, bool bias = false);
// Tokens up to which the moe op runs its decode kernels (cuda::kMoeDecodeMaxTokens).
constexpr double kMoeDecodeMaxTokens = 8;
// Tokens per chunk of the grouped prefill MoE (cudaops::kGroupedChunkTokens).
constexpr double kGroupedChunkTokens = 1024;
// Key splits of one sequence's attention (kernels/cuda/Attention.cu, attentionSplits): with up to
// 8 query tokens, about 4 blocks per SM over heads x tokens x splits, at most 64 splits and at
// least 32 cached positions each; 1 (no split) for longer steps or when `sms` is unknown (0).
double gpuAttentionSplits(double heads, double tokens, double keys, int sms);
// Tokens up to which the attention kernel splits over the keys (cuda::kAttentionSplitMaxTokens).
constexpr double kAttentionSplitMaxTokens = 8;
// A small op folded into a unit ("rms_norm", "add", "rope", "swiglu"; anything else 1).
double glueLaunches(const std::string& opKind);

// Per kind of unit. `bf16`: the unit's matrices are bf16 on the GPU (--dtype bf16).
GpuLaunches attentionLaunches(bool bf16, int biases, bool qkNorm);
GpuLaunches mlaLaunches(bool bf16, bool qLora);
GpuLaunches mlpLaunches(bool bf16);
GpuLaunches moeLaunches(bool bf16, bool sharedExperts, bool sharedExpertGate);
GpuLaunches lmHeadLaunches(bool bf16);
GpuLaunches embeddingLaunches();

} // namespace kt::cost
