#include "frontends/hf/HfTensors.h"

namespace kt::hf {

namespace {

// Appends specs in the order the caller calls it; callers follow each architecture's module
// registration order so that the list matches the HF state_dict.
class Specs {
public:
  explicit Specs(std::vector<TensorSpec>& out) : out_(out) {}

  void add(TensorSlot slot, int layer, const std::string& role, const std::string& symbol,
           const std::string& hfName, std::vector<int64_t> shape, TensorKind kind,
           int experts = 0) {
    TensorSpec s;
    s.hfName = hfName;
    s.shape = std::move(shape);
    s.experts = experts;
    s.kind = kind;
    s.slot = slot;
    s.layer = layer;
    s.role = role;
    s.symbol = symbol;
    out_.push_back(std::move(s));
  }

private:
  std::vector<TensorSpec>& out_;
};

void attentionSpecs(Specs& s, const ModelConfig& c, int l, const std::string& pre,
                    const std::string& sym) {
  const int64_t H = c.hiddenSize;
  const int64_t nh = c.numHeads;
  auto add = [&](const std::string& role, const std::string& hf, std::vector<int64_t> shape,
                 TensorKind kind) {
    s.add(TensorSlot::Attention, l, role, sym + role, pre + hf, std::move(shape), kind);
  };
  if (c.mla) {
    const MlaConfig& m = c.mlaConfig;
    const int64_t qhd = m.qkNopeHeadDim + m.qkRopeHeadDim;
    if (m.qLoraRank > 0) {
      add("q_a_proj", "q_a_proj.weight", {m.qLoraRank, H}, TensorKind::Linear);
      add("q_a_norm", "q_a_layernorm.weight", {m.qLoraRank}, TensorKind::Norm);
      add("q_b_proj", "q_b_proj.weight", {nh * qhd, m.qLoraRank}, TensorKind::Linear);
    } else {
      add("q_proj", "q_proj.weight", {nh * qhd, H}, TensorKind::Linear);
    }
    add("kv_a_proj", "kv_a_proj_with_mqa.weight", {m.kvLoraRank + m.qkRopeHeadDim, H},
        TensorKind::Linear);
    add("kv_a_norm", "kv_a_layernorm.weight", {m.kvLoraRank}, TensorKind::Norm);
    add("kv_b_proj", "kv_b_proj.weight", {nh * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank},
        TensorKind::Linear);
    add("o_proj", "o_proj.weight", {H, nh * m.vHeadDim}, TensorKind::Linear);
    return;
  }
  const int64_t hd = c.headDim, q = nh * hd, kv = int64_t(c.numKvHeads) * hd;
  // A module's weight precedes its bias in the state_dict.
  add("q_proj", "q_proj.weight", {q, H}, TensorKind::Linear);
  if (c.attentionBias)
    add("q_bias", "q_proj.bias", {q}, TensorKind::Bias);
  add("k_proj", "k_proj.weight", {kv, H}, TensorKind::Linear);
  if (c.attentionBias)
    add("k_bias", "k_proj.bias", {kv}, TensorKind::Bias);
  add("v_proj", "v_proj.weight", {kv, H}, TensorKind::Linear);
  if (c.attentionBias)
    add("v_bias", "v_proj.bias", {kv}, TensorKind::Bias);
  add("o_proj", "o_proj.weight", {H, q}, TensorKind::Linear);
  if (c.qkNorm) {
    add("q_norm", "q_norm.weight", {hd}, TensorKind::Norm);
    add("k_norm", "k_norm.weight", {hd}, TensorKind::Norm);
  }
}

// gate/up/down of a SwiGLU MLP; `experts` > 0 makes them per-expert patterns.
void swigluSpecs(Specs& s, int l, const std::string& rolePrefix, const std::string& symPrefix,
                 const std::string& pre, int64_t H, int64_t I, int experts) {
  auto add = [&](const std::string& role, const std::string& hf, std::vector<int64_t> shape) {
    s.add(TensorSlot::Ffn, l, rolePrefix + role, symPrefix + role, pre + hf, std::move(shape),
          TensorKind::Linear, experts);
  };
  add("gate", "gate_proj.weight", {I, H});
  add("up", "up_proj.weight", {I, H});
  add("down", "down_proj.weight", {H, I});
}

void ffnSpecs(Specs& s, const ModelConfig& c, int l, const std::string& layerPre,
              const std::string& sym) {
  const int64_t H = c.hiddenSize;
  if (!c.layerIsMoe[size_t(l)]) {
    swigluSpecs(s, l, "", sym + "mlp.", layerPre + "mlp.", H, c.intermediateSize, 0);
    return;
  }
  const MoeConfig& m = c.moe;
  const int E = m.numExperts;
  const int64_t I = m.intermediate;
  const std::string ms = sym + "moe.";
  auto add = [&](const std::string& role, const std::string& hf, std::vector<int64_t> shape,
                 TensorKind kind, int experts = 0) {
    s.add(TensorSlot::Ffn, l, role, ms + role, hf, std::move(shape), kind, experts);
  };
  if (c.arch == "mixtral") {
    const std::string pre = layerPre + "block_sparse_moe.";
    add("router", pre + "gate.weight", {E, H}, TensorKind::Router);
    // Mixtral's experts name their projections w1 (gate), w2 (down), w3 (up), in that order.
    add("gate", pre + "experts.{e}.w1.weight", {I, H}, TensorKind::Linear, E);
    add("down", pre + "experts.{e}.w2.weight", {H, I}, TensorKind::Linear, E);
    add("up", pre + "experts.{e}.w3.weight", {I, H}, TensorKind::Linear, E);
    return;
  }
  const std::string pre = layerPre + "mlp.";
  const bool deepseek = c.arch == "deepseek_v2" || c.arch == "deepseek_v3";
  auto router = [&] {
    add("router", pre + "gate.weight", {E, H}, TensorKind::Router);
    if (m.correctionBias)
      add("correction_bias", pre + "gate.e_score_correction_bias", {E}, TensorKind::CorrectionBias);
  };
  // Qwen MoE blocks register the router before the experts; DeepSeek's register it after.
  if (!deepseek)
    router();
  swigluSpecs(s, l, "", ms, pre + "experts.{e}.", H, I, E);
  if (deepseek)
    router();
  if (m.sharedIntermediate > 0) {
    const bool qwen2 = c.arch == "qwen2_moe";
    swigluSpecs(s, l, "shared_", ms + "shared_",
                pre + (qwen2 ? "shared_expert." : "shared_experts."), H, m.sharedIntermediate, 0);
    if (m.sharedExpertGate)
      add("shared_expert_gate", pre + "shared_expert_gate.weight", {1, H}, TensorKind::Gate);
  }
}

} // namespace

std::vector<TensorSpec> tensorSpecs(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  Specs s(out);
  const int64_t V = c.vocabSize, H = c.hiddenSize;
  s.add(TensorSlot::Embed, -1, "", "embed_tokens", "model.embed_tokens.weight", {V, H},
        TensorKind::Embedding);
  for (int l = 0; l < c.numLayers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const std::string sym = "layers." + std::to_string(l) + ".";
    attentionSpecs(s, c, l, pre + "self_attn.", sym + "attn.");
    ffnSpecs(s, c, l, pre, sym);
    s.add(TensorSlot::InputNorm, l, "", sym + "input_norm", pre + "input_layernorm.weight", {H},
          TensorKind::Norm);
    s.add(TensorSlot::PostNorm, l, "", sym + "post_attention_norm",
          pre + "post_attention_layernorm.weight", {H}, TensorKind::Norm);
  }
  s.add(TensorSlot::FinalNorm, -1, "", "norm", "model.norm.weight", {H}, TensorKind::Norm);
  // Tied embeddings reuse the table (some tied checkpoints still carry lm_head.weight; unneeded).
  if (!c.tieEmbeddings)
    s.add(TensorSlot::LmHead, -1, "", "lm_head", "lm_head.weight", {V, H}, TensorKind::Linear);
  return out;
}

std::string expertTensorName(const std::string& pattern, int expert) {
  std::string name = pattern;
  size_t at = name.find("{e}");
  if (at != std::string::npos)
    name.replace(at, 3, std::to_string(expert));
  return name;
}

std::vector<CheckpointTensor> checkpointTensors(const ModelConfig& c) {
  std::vector<TensorSpec> specs = tensorSpecs(c);
  std::vector<CheckpointTensor> out;
  // The per-expert specs of one MoE block are consecutive; HF lists them expert by expert
  // (experts.0.gate, experts.0.up, experts.0.down, experts.1.gate, ...), so interleave each run.
  for (size_t i = 0; i < specs.size();) {
    if (specs[i].experts == 0) {
      out.push_back({specs[i].hfName, specs[i].shape, specs[i].kind});
      ++i;
      continue;
    }
    size_t j = i;
    while (j < specs.size() && specs[j].experts == specs[i].experts &&
           specs[j].layer == specs[i].layer)
      ++j;
    for (int e = 0; e < specs[i].experts; ++e)
      for (size_t k = i; k < j; ++k)
        out.push_back({expertTensorName(specs[k].hfName, e), specs[k].shape, specs[k].kind});
    i = j;
  }
  return out;
}

const char* tensorKindName(TensorKind k) {
  switch (k) {
  case TensorKind::Embedding:
    return "embedding";
  case TensorKind::Linear:
    return "linear";
  case TensorKind::Norm:
    return "norm";
  case TensorKind::Bias:
    return "bias";
  case TensorKind::Router:
    return "router";
  case TensorKind::CorrectionBias:
    return "correction_bias";
  case TensorKind::Gate:
    return "gate";
  }
  return "?";
}

} // namespace kt::hf
