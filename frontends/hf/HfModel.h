#pragma once
// Resolves a Hugging Face checkpoint against its config: every tensor the architecture needs is
// found, shape-checked and described as (file, byte range, dtype, shape). Per-expert tensors of an
// MoE layer become one stacked weight with a segment per expert. Plain C++; the MLIR importer
// turns this description into a kt module.
#include "frontends/hf/HfConfig.h"
#include "runtime/support/DType.h"

#include <map>
#include <string>
#include <vector>

namespace kt::hf {

struct WeightSegment {
  int file = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct WeightDesc {
  std::string symbol; // IR symbol, e.g. "layers.1.moe.gate"
  std::string hfName; // checkpoint tensor name ("{e}" stands for the expert index when stacked)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<WeightSegment> segments;
};

struct LayerDesc {
  int index = 0;
  int inputNorm = -1, postNorm = -1;
  // Weight indices by role: attention ("q_proj", "k_proj", ..., "kv_b_proj", "o_proj") and the
  // feed-forward part ("gate", "up", "down", "router", "correction_bias", "shared_gate", ...).
  std::map<std::string, int> attention;
  std::map<std::string, int> ffn;
  bool moe = false;
};

struct ModelDesc {
  ModelConfig config;
  std::string dir;
  std::vector<std::string> files; // absolute paths of the weight files
  std::vector<uint64_t> fileSizes;
  std::vector<WeightDesc> weights;
  int embed = -1, finalNorm = -1, lmHead = -1;
  std::vector<LayerDesc> layers;
  std::string tokenizerJson, tokenizerConfigJson; // empty when the folder has none
};

// Reads config.json, the checkpoint headers and (if present) tokenizer files of `dir`.
// Throws kt::Error naming the file and tensor/field at fault.
ModelDesc describeModel(const std::string& dir);

} // namespace kt::hf
