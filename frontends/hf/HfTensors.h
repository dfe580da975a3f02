#pragma once
// Which tensors a Hugging Face checkpoint of a given architecture holds, with their names and
// shapes. This is the one table of that knowledge: the importer (HfModel) resolves these specs
// against a checkpoint, and kt-synth writes checkpoints from them. Plain C++, no I/O.
#include "frontends/hf/HfConfig.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kt::hf {

// What a tensor does, which is what a weight initializer needs to know.
enum class TensorKind {
  Embedding,      // [vocab, hidden] token table
  Linear,         // [out, in] projection (lm_head, q/k/v/o, MLP, experts, shared experts)
  Norm,           // RMSNorm scale
  Bias,           // additive bias of a projection
  Router,         // [experts, hidden] MoE router
  CorrectionBias, // DeepSeek-V3 e_score_correction_bias [experts]
  Gate,           // Qwen2-MoE shared_expert_gate [1, hidden]
};

// Where the importer files a tensor.
enum class TensorSlot { Embed, FinalNorm, LmHead, InputNorm, PostNorm, Attention, Ffn };

// One tensor of the architecture, or one per expert when `experts` > 0: then `hfName` holds "{e}"
// where the expert index goes and the importer stacks them into [experts, ...shape].
struct TensorSpec {
  std::string hfName;
  std::vector<int64_t> shape; // of one tensor (one expert's when stacked)
  int experts = 0;
  TensorKind kind = TensorKind::Linear;
  TensorSlot slot = TensorSlot::Embed;
  int layer = -1;     // decoder layer, -1 outside the layers
  std::string role;   // key in LayerDesc::attention / ::ffn ("q_proj", "gate", "router", ...)
  std::string symbol; // IR symbol ("layers.1.moe.gate")
};

// Every tensor the config implies, in the order Hugging Face's state_dict lists them (module
// registration order), which is also the order save_pretrained fills shards in.
std::vector<TensorSpec> tensorSpecs(const ModelConfig& c);

// A single checkpoint tensor: per-expert specs expanded to one entry per expert, in HF order.
struct CheckpointTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorKind kind = TensorKind::Linear;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};
std::vector<CheckpointTensor> checkpointTensors(const ModelConfig& c);

// "{e}" in `pattern` replaced by `expert`.
std::string expertTensorName(const std::string& pattern, int expert);

const char* tensorKindName(TensorKind k);

} // namespace kt::hf
