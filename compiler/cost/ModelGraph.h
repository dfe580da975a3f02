#pragma once
// What the cost model needs to know about a model, without MLIR: the placeable units of the
// forward pass in program order — embedding, attention, dense MLP, MoE (router + shared experts,
// plus the routed experts as separately placeable pieces), lm_head — with their weight bytes (in
// the format they are stored at run time), FLOPs per token and KV-cache bytes. kt-partition builds
// one from a kt module (dialects/kt/Transforms/PartitionGraph.cpp); the unit tests build them by
// hand. Small ops between the big ones (norms, residual adds) are folded into the next unit: they
// add op overheads and tiny weights, and move with it.
#include "compiler/cost/GpuInt8.h"
#include "compiler/cost/GpuLaunches.h"
#include "compiler/cost/Units.h"

#include <string>
#include <vector>

namespace kt::cost {

enum class UnitKind { Embedding, Attention, MlaAttention, DenseMlp, Moe, LmHead, Linear, Other };

// How a unit's weights are stored on a CPU node when that differs from how they are stored
// elsewhere: kt-quantize-weights (--cpu-quant, or --dtype bf16) runs after partitioning and packs
// only the CPU-held matrices, so an expert is e.g. bf16 on the GPU but int4 on the CPU. The fields
// mean what the Unit fields of the same name mean.
struct CpuStorage {
  double weightBytes = 0, residentBytes = -1, sharedBytes = 0, bytesPerToken = 0;
  double expertBytes = 0;
  WeightFormat format = WeightFormat::F32, expertFormat = WeightFormat::F32;
  // FLOPs per token on matrices the CPU keeps unpacked (no --cpu-quant, or ops whose kernels read
  // plain rows, like MLA's kv_b_proj): the runtime multiplies those in plain loops, timed at the
  // profile's plain_gflops instead of the packed kernels' gemm_gflops. For MoE units this is the
  // router, plus the shared experts when sharedUnpacked.
  double unpackedFlopsPerToken = 0;
  bool sharedUnpacked = false, expertsUnpacked = false;
};

// One placeable unit (one big kt op and the small ops folded into it).
struct Unit {
  UnitKind kind = UnitKind::Other;
  int layer = -1;                       // decoder layer, -1 outside the layers
  std::string opKind;                   // the main op's kind (knownOpKinds()): NPU support
  std::vector<std::string> glueOpKinds; // kinds of the small ops folded in
  int numOps = 1;                       // kt ops in the unit (each pays a CPU op overhead)
  // What the CUDA backend launches for the unit, glue included (GpuLaunches.h). perStep == 0 (a
  // hand-built unit): one launch overhead per kt op instead.
  GpuLaunches gpu;
  // --gpu-quant int8 matrices as a GPU holds them (GpuInt8.h): the unit's own (not its shared or
  // routed experts), its shared experts', and one routed expert's. Empty without int8 on the GPU.
  GpuInt8Work gpuInt8, gpuInt8Shared, gpuInt8Expert;
  WeightFormat format = WeightFormat::F32; // format of its largest weight

  // Everything except routed experts. For MoE: router, correction bias and shared experts.
  double weightBytes = 0; // read per step (and resident on the unit's device)
  // Memory the unit adds to its device when that differs from weightBytes: a unit tied to
  // another (tiedTo) reads the shared weights but does not hold a second copy. -1 = weightBytes.
  double residentBytes = -1;
  double memoryBytes() const { return residentBytes >= 0 ? residentBytes : weightBytes; }
  double flopsPerToken = 0; // matmul FLOPs per token (2 per multiply-add)
  // The part of flopsPerToken through matrices a GPU keeps f32 whatever the plan's compute dtype
  // (MLA's kv_b_proj: the absorbed attention's batched f32 GEMMs): on a GPU they run at the f32
  // rate, not the unit's format's.
  double gpuF32FlopsPerToken = 0;
  // Weight matrices the unit multiplies per step (its shared experts' included): a decode runs
  // one 1-token product per matrix, whose rate depends on the matrix's size (decode_gemv_gbs).
  // 0 (a hand-built unit): its weights count as one matrix.
  double matrices = 0;
  // Embedding lookups read one row per token instead of the whole table.
  bool readsWholeWeights = true;
  double bytesPerToken = 0; // when !readsWholeWeights

  // Attention: the KV cache lives with the op.
  double kvBytesPerToken = 0;  // per sequence, per cached position
  double attnFlopsPerPair = 0; // per (new token, visible position) pair
  int attnHeads = 0;           // query heads: the GPU kernel runs one block per (head, token)

  // MoE.
  double sharedBytes = 0, sharedFlopsPerToken = 0; // the shared-expert part of the above
  int numExperts = 0, topK = 0;
  double expertBytes = 0;         // one routed expert (gate + up + down)
  double expertBytesInt4 = 0;     // the same as --cpu-quant int4 would store it (error hints)
  double expertFlopsPerToken = 0; // one routed expert applied to one token
  WeightFormat expertFormat = WeightFormat::F32;
  std::vector<double> expertProb; // P(a token activates expert e); sums to ~topK
  // Share of one prefill window's (token, k) pairs that its busiest quarter of experts takes
  // (the stats file's window_busiest_quarter): a prefill chunk is routed far more unevenly than
  // the whole calibration set. 0: not measured (the share of expertProb's busiest quarter).
  double windowBusiestQuarter = 0;

  int64_t hidden = 0; // f32 elements per token of the activation it hands on

  // Placement constraints. `names` are the weight symbols and Hugging Face names of the unit
  // (placement overrides match them); expertNames[e] those of routed expert e.
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> expertNames;
  std::string pinned;                    // device spec the unit must use ("" = free)
  std::vector<std::string> expertPinned; // per expert, "" = free
  int tiedTo = -1;                       // shares weights with (and so the device of) that unit

  // The CPU form of the weights when --cpu-quant repacks them (absent: the fields above hold on
  // every device). The accessors give the form of a CPU node (`cpu`) or of an accelerator.
  bool hasCpuStorage = false;
  CpuStorage cpuStorage;
  const CpuStorage* cpuForm(bool cpu) const { return cpu && hasCpuStorage ? &cpuStorage : nullptr; }
  double weightBytesOn(bool cpu) const {
    return cpuForm(cpu) ? cpuStorage.weightBytes : weightBytes;
  }
  double memoryBytesOn(bool cpu) const {
    if (!cpuForm(cpu))
      return memoryBytes();
    return cpuStorage.residentBytes >= 0 ? cpuStorage.residentBytes : cpuStorage.weightBytes;
  }
  double sharedBytesOn(bool cpu) const {
    return cpuForm(cpu) ? cpuStorage.sharedBytes : sharedBytes;
  }
  double bytesPerTokenOn(bool cpu) const {
    return cpuForm(cpu) ? cpuStorage.bytesPerToken : bytesPerToken;
  }
  double expertBytesOn(bool cpu) const {
    return cpuForm(cpu) ? cpuStorage.expertBytes : expertBytes;
  }
  WeightFormat formatOn(bool cpu) const { return cpuForm(cpu) ? cpuStorage.format : format; }
  WeightFormat expertFormatOn(bool cpu) const {
    return cpuForm(cpu) ? cpuStorage.expertFormat : expertFormat;
  }
};

struct ModelGraph {
  std::string name; // model/arch name for --explain
  int numLayers = 0;
  int64_t maxPosition = 0; // 0 = unknown
  std::vector<Unit> units; // program order
};

// One step of the forward pass: `tokens` new tokens over `batch` sequences, each of which already
// has `context` positions in its KV cache.
struct Shape {
  double tokens = 1;
  double context = 0;
  double batch = 1;
  // A decode step the CUDA backend replays as one CUDA graph (runtime/exec/cuda/Graphs.cpp: every
  // unit and expert of the plan on the GPU): its launches cost the GPU's time per kernel, not the
  // host's launch overhead. Set by the predictor from the placement.
  bool graphs = false;
};

} // namespace kt::cost
