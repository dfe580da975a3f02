#pragma once
// What the cost model needs to know about a model, without MLIR: the placeable units of the
// forward pass in program order — embedding, attention, dense MLP, MoE (router + shared experts,
// plus the routed experts as separately placeable pieces), lm_head — with their weight bytes (in
// the format they are stored at run time), FLOPs per token and KV-cache bytes. kt-partition builds
// one from a kt module (dialects/kt/Transforms/PartitionGraph.cpp); the unit tests build them by
// hand. Small ops between the big ones (norms, residual adds) are folded into the next unit: they
// add op overheads and tiny weights, and move with it.
#include "compiler/cost/Units.h"

#include <string>
#include <vector>

namespace kt::cost {

enum class UnitKind { Embedding, Attention, MlaAttention, DenseMlp, Moe, LmHead, Linear, Other };

// One placeable unit (one big kt op and the small ops folded into it).
struct Unit {
  UnitKind kind = UnitKind::Other;
  int layer = -1;                          // decoder layer, -1 outside the layers
  std::string opKind;                      // the main op's kind (knownOpKinds()): NPU support
  std::vector<std::string> glueOpKinds;    // kinds of the small ops folded in
  int numOps = 1;                          // kt ops in the unit (each pays an op/launch overhead)
  WeightFormat format = WeightFormat::F32; // format of its largest weight

  // Everything except routed experts. For MoE: router, correction bias and shared experts.
  double weightBytes = 0; // read per step (and resident on the unit's device)
  // Memory the unit adds to its device when that differs from weightBytes: a unit tied to
  // another (tiedTo) reads the shared weights but does not hold a second copy. -1 = weightBytes.
  double residentBytes = -1;
  double memoryBytes() const { return residentBytes >= 0 ? residentBytes : weightBytes; }
  double flopsPerToken = 0; // matmul FLOPs per token (2 per multiply-add)
  // Embedding lookups read one row per token instead of the whole table.
  bool readsWholeWeights = true;
  double bytesPerToken = 0; // when !readsWholeWeights

  // Attention: the KV cache lives with the op.
  double kvBytesPerToken = 0;  // per sequence, per cached position
  double attnFlopsPerPair = 0; // per (new token, visible position) pair

  // MoE.
  double sharedBytes = 0, sharedFlopsPerToken = 0; // the shared-expert part of the above
  int numExperts = 0, topK = 0;
  double expertBytes = 0;         // one routed expert (gate + up + down)
  double expertBytesInt4 = 0;     // the same as --cpu-quant int4 would store it (error hints)
  double expertFlopsPerToken = 0; // one routed expert applied to one token
  WeightFormat expertFormat = WeightFormat::F32;
  std::vector<double> expertProb; // P(a token activates expert e); sums to ~topK

  int64_t hidden = 0; // f32 elements per token of the activation it hands on

  // Placement constraints. `names` are the weight symbols and Hugging Face names of the unit
  // (placement overrides match them); expertNames[e] those of routed expert e.
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> expertNames;
  std::string pinned;                    // device spec the unit must use ("" = free)
  std::vector<std::string> expertPinned; // per expert, "" = free
  int tiedTo = -1;                       // shares weights with (and so the device of) that unit
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
};

} // namespace kt::cost
