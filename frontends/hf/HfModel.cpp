#include "frontends/hf/HfModel.h"

#include "frontends/hf/HfCheckpoint.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <climits>
#include <cstdlib>
#include <fstream>

namespace kt::hf {

namespace {

class Builder {
public:
  Builder(const HfCheckpoint& ckpt, ModelDesc& m) : ckpt_(ckpt), m_(m) {}

  int add(const std::string& symbol, const std::string& hfName, const std::vector<int64_t>& shape) {
    TensorRef t = ckpt_.require(hfName, shape);
    WeightDesc w{symbol, hfName, t.info->dtype, shape, {{t.file, t.info->offset, t.info->size}}};
    m_.weights.push_back(std::move(w));
    return int(m_.weights.size() - 1);
  }

  // One weight [experts, ...shape] whose slices are the per-expert tensors, left where they are.
  int addStacked(const std::string& symbol, const std::string& pattern, int experts, const std::vector<int64_t>& shape) {
    WeightDesc w;
    w.symbol = symbol;
    w.hfName = pattern;
    w.shape = shape;
    w.shape.insert(w.shape.begin(), experts);
    for (int e = 0; e < experts; ++e) {
      std::string name = pattern;
      name.replace(name.find("{e}"), 3, std::to_string(e));
      TensorRef t = ckpt_.require(name, shape);
      if (e == 0) w.dtype = t.info->dtype;
      else if (t.info->dtype != w.dtype)
        throw Error(ckpt_.files()[size_t(t.file)]->path() + ": tensor '" + name + "' is " + dtypeName(t.info->dtype) +
                    " but expert 0 is " + dtypeName(w.dtype));
      w.segments.push_back({t.file, t.info->offset, t.info->size});
    }
    m_.weights.push_back(std::move(w));
    return int(m_.weights.size() - 1);
  }

private:
  const HfCheckpoint& ckpt_;
  ModelDesc& m_;
};

std::string absolutePath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

void describeAttention(Builder& b, const ModelConfig& c, LayerDesc& L, const std::string& pre, const std::string& sym) {
  const int64_t H = c.hiddenSize;
  const int nh = c.numHeads;
  if (c.mla) {
    const MlaConfig& m = c.mlaConfig;
    const int64_t qhd = m.qkNopeHeadDim + m.qkRopeHeadDim;
    if (m.qLoraRank > 0) {
      L.attention["q_a_proj"] = b.add(sym + "q_a_proj", pre + "q_a_proj.weight", {m.qLoraRank, H});
      L.attention["q_a_norm"] = b.add(sym + "q_a_norm", pre + "q_a_layernorm.weight", {m.qLoraRank});
      L.attention["q_b_proj"] = b.add(sym + "q_b_proj", pre + "q_b_proj.weight", {nh * qhd, m.qLoraRank});
    } else {
      L.attention["q_proj"] = b.add(sym + "q_proj", pre + "q_proj.weight", {nh * qhd, H});
    }
    L.attention["kv_a_proj"] = b.add(sym + "kv_a_proj", pre + "kv_a_proj_with_mqa.weight", {m.kvLoraRank + m.qkRopeHeadDim, H});
    L.attention["kv_a_norm"] = b.add(sym + "kv_a_norm", pre + "kv_a_layernorm.weight", {m.kvLoraRank});
    L.attention["kv_b_proj"] = b.add(sym + "kv_b_proj", pre + "kv_b_proj.weight", {int64_t(nh) * (m.qkNopeHeadDim + m.vHeadDim), m.kvLoraRank});
    L.attention["o_proj"] = b.add(sym + "o_proj", pre + "o_proj.weight", {H, int64_t(nh) * m.vHeadDim});
    return;
  }
  const int64_t hd = c.headDim, q = nh * hd, kv = int64_t(c.numKvHeads) * hd;
  L.attention["q_proj"] = b.add(sym + "q_proj", pre + "q_proj.weight", {q, H});
  L.attention["k_proj"] = b.add(sym + "k_proj", pre + "k_proj.weight", {kv, H});
  L.attention["v_proj"] = b.add(sym + "v_proj", pre + "v_proj.weight", {kv, H});
  L.attention["o_proj"] = b.add(sym + "o_proj", pre + "o_proj.weight", {H, q});
  if (c.attentionBias) {
    L.attention["q_bias"] = b.add(sym + "q_bias", pre + "q_proj.bias", {q});
    L.attention["k_bias"] = b.add(sym + "k_bias", pre + "k_proj.bias", {kv});
    L.attention["v_bias"] = b.add(sym + "v_bias", pre + "v_proj.bias", {kv});
  }
  if (c.qkNorm) {
    L.attention["q_norm"] = b.add(sym + "q_norm", pre + "q_norm.weight", {hd});
    L.attention["k_norm"] = b.add(sym + "k_norm", pre + "k_norm.weight", {hd});
  }
}

void describeFfn(Builder& b, const ModelConfig& c, LayerDesc& L, const std::string& layerPre, const std::string& sym) {
  const int64_t H = c.hiddenSize;
  if (!L.moe) {
    const std::string pre = layerPre + "mlp.";
    const int64_t I = c.intermediateSize;
    L.ffn["gate"] = b.add(sym + "mlp.gate", pre + "gate_proj.weight", {I, H});
    L.ffn["up"] = b.add(sym + "mlp.up", pre + "up_proj.weight", {I, H});
    L.ffn["down"] = b.add(sym + "mlp.down", pre + "down_proj.weight", {H, I});
    return;
  }
  const MoeConfig& m = c.moe;
  const int E = m.numExperts;
  const int64_t I = m.intermediate;
  const std::string s = sym + "moe.";
  if (c.arch == "mixtral") {
    const std::string pre = layerPre + "block_sparse_moe.";
    L.ffn["router"] = b.add(s + "router", pre + "gate.weight", {E, H});
    L.ffn["gate"] = b.addStacked(s + "gate", pre + "experts.{e}.w1.weight", E, {I, H});
    L.ffn["up"] = b.addStacked(s + "up", pre + "experts.{e}.w3.weight", E, {I, H});
    L.ffn["down"] = b.addStacked(s + "down", pre + "experts.{e}.w2.weight", E, {H, I});
    return;
  }
  const std::string pre = layerPre + "mlp.";
  L.ffn["router"] = b.add(s + "router", pre + "gate.weight", {E, H});
  if (m.correctionBias) L.ffn["correction_bias"] = b.add(s + "correction_bias", pre + "gate.e_score_correction_bias", {E});
  L.ffn["gate"] = b.addStacked(s + "gate", pre + "experts.{e}.gate_proj.weight", E, {I, H});
  L.ffn["up"] = b.addStacked(s + "up", pre + "experts.{e}.up_proj.weight", E, {I, H});
  L.ffn["down"] = b.addStacked(s + "down", pre + "experts.{e}.down_proj.weight", E, {H, I});
  if (m.sharedIntermediate > 0) {
    const std::string sp = pre + (c.arch == "qwen2_moe" ? "shared_expert." : "shared_experts.");
    const int64_t S = m.sharedIntermediate;
    L.ffn["shared_gate"] = b.add(s + "shared_gate", sp + "gate_proj.weight", {S, H});
    L.ffn["shared_up"] = b.add(s + "shared_up", sp + "up_proj.weight", {S, H});
    L.ffn["shared_down"] = b.add(s + "shared_down", sp + "down_proj.weight", {H, S});
    if (m.sharedExpertGate) L.ffn["shared_expert_gate"] = b.add(s + "shared_expert_gate", pre + "shared_expert_gate.weight", {1, H});
  }
}

} // namespace

ModelDesc describeModel(const std::string& dir) {
  ModelDesc m;
  m.dir = absolutePath(dir);
  m.config = parseConfig(dir);
  const ModelConfig& c = m.config;
  HfCheckpoint ckpt(dir);
  for (const auto& f : ckpt.files()) {
    m.files.push_back(absolutePath(f->path()));
    m.fileSizes.push_back(f->fileSize());
  }
  Builder b(ckpt, m);
  const int64_t V = c.vocabSize, H = c.hiddenSize;
  m.embed = b.add("embed_tokens", "model.embed_tokens.weight", {V, H});
  for (int l = 0; l < c.numLayers; ++l) {
    LayerDesc L;
    L.index = l;
    L.moe = c.layerIsMoe[size_t(l)];
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const std::string sym = "layers." + std::to_string(l) + ".";
    L.inputNorm = b.add(sym + "input_norm", pre + "input_layernorm.weight", {H});
    L.postNorm = b.add(sym + "post_attention_norm", pre + "post_attention_layernorm.weight", {H});
    describeAttention(b, c, L, pre + "self_attn.", sym + "attn.");
    describeFfn(b, c, L, pre, sym);
    m.layers.push_back(std::move(L));
  }
  m.finalNorm = b.add("norm", "model.norm.weight", {H});
  // Tied embeddings reuse the table; some tied checkpoints still carry a copy of lm_head.weight.
  m.lmHead = c.tieEmbeddings ? m.embed : b.add("lm_head", "lm_head.weight", {V, H});

  if (std::ifstream(dir + "/tokenizer.json").good()) {
    m.tokenizerJson = readTextFile(dir + "/tokenizer.json");
    if (std::ifstream(dir + "/tokenizer_config.json").good()) m.tokenizerConfigJson = readTextFile(dir + "/tokenizer_config.json");
  }
  return m;
}

} // namespace kt::hf
