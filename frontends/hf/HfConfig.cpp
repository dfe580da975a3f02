#include "frontends/hf/HfConfig.h"

#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace kt::hf {

using nlohmann::json;

const std::vector<std::string>& supportedArchitectures() {
  static const std::vector<std::string> archs = {"llama",     "mixtral",     "qwen2_moe",
                                                 "qwen3_moe", "deepseek_v2", "deepseek_v3"};
  return archs;
}

namespace {

class Fields {
public:
  Fields(const json& j, const std::string& origin) : j_(j), origin_(origin) {}

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    throw Error(origin_ + ": field '" + field + "' " + why);
  }
  bool has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }
  int64_t integer(const std::string& k) const {
    if (!has(k))
      fail(k, "is missing");
    if (!j_[k].is_number_integer())
      fail(k, "must be an integer, got " + j_[k].dump());
    return j_[k].get<int64_t>();
  }
  int64_t integer(const std::string& k, int64_t dflt) const { return has(k) ? integer(k) : dflt; }
  int64_t positive(const std::string& k) const {
    int64_t v = integer(k);
    if (v <= 0)
      fail(k, "must be positive, got " + std::to_string(v));
    return v;
  }
  double number(const std::string& k, double dflt) const {
    if (!has(k))
      return dflt;
    if (!j_[k].is_number())
      fail(k, "must be a number, got " + j_[k].dump());
    return j_[k].get<double>();
  }
  bool boolean(const std::string& k, bool dflt) const {
    if (!has(k))
      return dflt;
    if (!j_[k].is_boolean())
      fail(k, "must be true or false, got " + j_[k].dump());
    return j_[k].get<bool>();
  }
  std::string string(const std::string& k, const std::string& dflt) const {
    if (!has(k))
      return dflt;
    if (!j_[k].is_string())
      fail(k, "must be a string, got " + j_[k].dump());
    return j_[k].get<std::string>();
  }
  const json& raw(const std::string& k) const { return j_[k]; }

private:
  const json& j_;
  std::string origin_;
};

// YaRN's attention temperature: 0.1 * m * ln(scale) + 1.
double yarnMscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

RopeConfig parseRope(const Fields& f, const json& root, const std::string& origin, int dim,
                     int64_t maxPosition) {
  RopeConfig r;
  r.dim = dim;
  r.theta = f.number("rope_theta", 10000.0);
  // transformers 5 writes `rope_parameters` (theta inside); hub checkpoints carry `rope_scaling`.
  const json* params = nullptr;
  std::string key;
  for (const char* k : {"rope_parameters", "rope_scaling"})
    if (root.contains(k) && root[k].is_object()) {
      params = &root[k];
      key = k;
      break;
    }
  if (!params) {
    for (const char* k : {"rope_parameters", "rope_scaling"})
      if (root.contains(k) && !root[k].is_null())
        throw Error(origin + ": field '" + k + "' must be an object");
    return r;
  }
  Fields p(*params, origin + ": " + key);
  r.theta = p.number("rope_theta", r.theta);
  r.type = p.string("rope_type", p.string("type", "default"));
  if (r.type == "default")
    return r;
  r.factor = p.number("factor", 1.0);
  if (r.type == "linear")
    return r;
  if (r.type == "llama3") {
    r.lowFreqFactor = p.number("low_freq_factor", 1.0);
    r.highFreqFactor = p.number("high_freq_factor", 4.0);
    r.originalMaxPosition = p.integer("original_max_position_embeddings");
    return r;
  }
  if (r.type != "yarn")
    p.fail("rope_type", "'" + r.type + "' is not supported (default, linear, llama3, yarn)");
  r.originalMaxPosition = p.integer("original_max_position_embeddings", maxPosition);
  // As transformers: when the original context is given, the ratio to max_position_embeddings is
  // the scaling factor (DeepSeek-V3 style configs).
  if (p.has("original_max_position_embeddings") && maxPosition > 0)
    r.factor = double(maxPosition) / double(r.originalMaxPosition);
  r.betaFast = p.number("beta_fast", 32.0);
  r.betaSlow = p.number("beta_slow", 1.0);
  r.mscale = p.number("mscale", 0.0);
  r.mscaleAllDim = p.number("mscale_all_dim", 0.0);
  if (p.has("attention_factor")) {
    r.attentionFactor = p.number("attention_factor", 1.0);
  } else if (r.mscale != 0.0 && r.mscaleAllDim != 0.0) {
    r.attentionFactor = yarnMscale(r.factor, r.mscale) / yarnMscale(r.factor, r.mscaleAllDim);
  } else {
    r.attentionFactor = yarnMscale(r.factor, 1.0);
  }
  return r;
}

std::vector<int> parseTokenIds(const Fields& f, const std::string& key) {
  std::vector<int> ids;
  if (!f.has(key))
    return ids;
  const json& v = f.raw(key);
  if (v.is_number_integer()) {
    ids.push_back(v.get<int>());
  } else if (v.is_array()) {
    for (const auto& x : v) {
      if (!x.is_number_integer())
        f.fail(key, "must hold integers");
      ids.push_back(x.get<int>());
    }
  } else {
    f.fail(key, "must be an integer or a list of integers");
  }
  return ids;
}

} // namespace

ModelConfig parseConfigText(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions to get the position of the syntax error.
    try {
      const json again = json::parse(text); // throws here, with the position
      (void)again;
    } catch (const json::parse_error& e) {
      throw Error(origin + ": malformed JSON: " + e.what());
    }
    throw Error(origin + ": malformed JSON");
  }
  if (!j.is_object())
    throw Error(origin + ": expected a JSON object");
  Fields f(j, origin);
  ModelConfig c;
  c.path = origin;
  c.arch = f.string("model_type", "");
  const auto& archs = supportedArchitectures();
  if (std::find(archs.begin(), archs.end(), c.arch) == archs.end()) {
    std::string list;
    for (const auto& a : archs)
      list += (list.empty() ? "" : ", ") + a;
    if (c.arch.empty())
      f.fail("model_type", "is missing (supported: " + list + ")");
    f.fail("model_type",
           "'" + c.arch + "' is not a supported architecture (supported: " + list + ")");
  }
  c.vocabSize = f.positive("vocab_size");
  c.hiddenSize = f.positive("hidden_size");
  c.numLayers = int(f.positive("num_hidden_layers"));
  c.numHeads = int(f.positive("num_attention_heads"));
  c.numKvHeads = int(f.integer("num_key_value_heads", c.numHeads));
  if (c.numKvHeads <= 0 || c.numHeads % c.numKvHeads)
    f.fail("num_key_value_heads",
           "must divide num_attention_heads (" + std::to_string(c.numHeads) + ")");
  c.intermediateSize = f.integer("intermediate_size", 0);
  c.maxPosition = f.integer("max_position_embeddings", 4096);
  c.rmsNormEps = f.number("rms_norm_eps", 1e-6);
  c.tieEmbeddings = f.boolean("tie_word_embeddings", false);
  c.headDim = int(f.integer("head_dim", c.hiddenSize / c.numHeads));
  c.bosId = f.has("bos_token_id") ? int(f.integer("bos_token_id")) : -1;
  c.eosIds = parseTokenIds(f, "eos_token_id");
  std::string act = f.string("hidden_act", "silu");
  if (act != "silu")
    f.fail("hidden_act", "'" + act + "' is not supported (silu)");

  const bool deepseek = c.arch == "deepseek_v2" || c.arch == "deepseek_v3";
  int ropeDim = c.headDim;
  if (deepseek) {
    c.mla = true;
    MlaConfig& m = c.mlaConfig;
    m.qLoraRank = int(f.integer("q_lora_rank", 0));
    m.kvLoraRank = int(f.positive("kv_lora_rank"));
    m.qkNopeHeadDim = int(f.positive("qk_nope_head_dim"));
    m.qkRopeHeadDim = int(f.positive("qk_rope_head_dim"));
    m.vHeadDim = int(f.positive("v_head_dim"));
    if (m.qLoraRank < 0)
      f.fail("q_lora_rank", "must be null or positive");
    ropeDim = m.qkRopeHeadDim;
  }
  c.rope = parseRope(f, j, origin, ropeDim, c.maxPosition);
  if (c.rope.dim % 2)
    f.fail(deepseek ? "qk_rope_head_dim" : "head_dim", "must be even for rotary embeddings");
  // DeepSeek-V2 rotates interleaved pairs (complex form); V3 does when rope_interleave (default
  // true).
  c.rope.interleaved =
      c.arch == "deepseek_v2" || (c.arch == "deepseek_v3" && f.boolean("rope_interleave", true));

  const int qkHeadDim =
      deepseek ? c.mlaConfig.qkNopeHeadDim + c.mlaConfig.qkRopeHeadDim : c.headDim;
  c.softmaxScale = 1.0 / std::sqrt(double(qkHeadDim));
  if (deepseek && c.rope.type == "yarn" && c.rope.mscaleAllDim != 0.0) {
    double m = yarnMscale(c.rope.factor, c.rope.mscaleAllDim);
    c.softmaxScale *= m * m;
  }

  c.layerIsMoe.assign(size_t(c.numLayers), false);
  MoeConfig& moe = c.moe;
  if (c.arch == "llama") {
    c.attentionBias = f.boolean("attention_bias", false);
    if (f.boolean("mlp_bias", false))
      f.fail("mlp_bias", "true is not supported");
  } else if (c.arch == "mixtral") {
    moe.numExperts = int(f.positive("num_local_experts"));
    moe.expertsPerToken = int(f.positive("num_experts_per_tok"));
    moe.intermediate = c.intermediateSize;
    moe.normTopkProb = true; // Mixtral always renormalizes its top-k softmax weights
    std::fill(c.layerIsMoe.begin(), c.layerIsMoe.end(), true);
  } else if (c.arch == "qwen2_moe" || c.arch == "qwen3_moe") {
    // transformers renamed num_experts to num_local_experts; accept either.
    moe.numExperts =
        int(f.has("num_experts") ? f.positive("num_experts") : f.positive("num_local_experts"));
    moe.expertsPerToken = int(f.positive("num_experts_per_tok"));
    moe.intermediate = f.positive("moe_intermediate_size");
    moe.normTopkProb = f.boolean("norm_topk_prob", c.arch == "qwen3_moe");
    c.qkNorm = c.arch == "qwen3_moe";
    c.attentionBias =
        c.arch == "qwen2_moe" ? f.boolean("qkv_bias", true) : f.boolean("attention_bias", false);
    if (c.arch == "qwen2_moe") {
      moe.sharedIntermediate = f.integer("shared_expert_intermediate_size", 0);
      moe.sharedExpertGate = moe.sharedIntermediate > 0;
    }
    int step = int(f.integer("decoder_sparse_step", 1));
    if (step <= 0)
      f.fail("decoder_sparse_step", "must be positive");
    std::vector<int> mlpOnly;
    if (f.has("mlp_only_layers")) {
      if (!f.raw("mlp_only_layers").is_array())
        f.fail("mlp_only_layers", "must be a list of layer indices");
      for (const auto& x : f.raw("mlp_only_layers")) {
        if (!x.is_number_integer())
          f.fail("mlp_only_layers", "must hold integers");
        mlpOnly.push_back(x.get<int>());
      }
    }
    for (int l = 0; l < c.numLayers; ++l)
      c.layerIsMoe[size_t(l)] = std::find(mlpOnly.begin(), mlpOnly.end(), l) == mlpOnly.end() &&
                                moe.numExperts > 0 && (l + 1) % step == 0;
  } else { // deepseek_v2 / deepseek_v3
    moe.numExperts = int(f.integer("n_routed_experts", 0));
    if (moe.numExperts > 0) {
      moe.expertsPerToken = int(f.positive("num_experts_per_tok"));
      moe.intermediate = f.positive("moe_intermediate_size");
      moe.sharedIntermediate = f.integer("n_shared_experts", 0) * moe.intermediate;
      moe.normTopkProb = f.boolean("norm_topk_prob", false);
      moe.routedScalingFactor = f.number("routed_scaling_factor", 1.0);
      moe.nGroup = int(f.integer("n_group", 1));
      moe.topkGroup = int(f.integer("topk_group", 1));
      if (c.arch == "deepseek_v3") {
        moe.scoring = f.string("scoring_func", "sigmoid");
        moe.topkMethod = f.string("topk_method", "noaux_tc");
        moe.correctionBias = moe.topkMethod == "noaux_tc";
      } else {
        moe.scoring = f.string("scoring_func", "softmax");
        moe.topkMethod = f.string("topk_method", "greedy");
      }
      if (moe.scoring != "softmax" && moe.scoring != "sigmoid")
        f.fail("scoring_func", "must be softmax or sigmoid");
      if (moe.topkMethod != "greedy" && moe.topkMethod != "group_limited_greedy" &&
          moe.topkMethod != "noaux_tc")
        f.fail("topk_method", "'" + moe.topkMethod +
                                  "' is not supported (greedy, group_limited_greedy, noaux_tc)");
      if (moe.nGroup <= 0 || moe.numExperts % moe.nGroup)
        f.fail("n_group", "must divide n_routed_experts");
      if (moe.topkGroup <= 0 || moe.topkGroup > moe.nGroup)
        f.fail("topk_group", "must be in 1..n_group");
      // Plain greedy top-k ignores groups (some configs still carry n_group/topk_group).
      if (moe.topkMethod == "greedy")
        moe.nGroup = moe.topkGroup = 1;
      int firstDense = int(f.integer("first_k_dense_replace", 0));
      int freq = int(f.integer("moe_layer_freq", 1));
      if (freq <= 0)
        f.fail("moe_layer_freq", "must be positive");
      for (int l = 0; l < c.numLayers; ++l)
        c.layerIsMoe[size_t(l)] = l >= firstDense && l % freq == 0;
    }
  }
  if (moe.numExperts > 0 && (moe.expertsPerToken > moe.numExperts))
    f.fail("num_experts_per_tok",
           "exceeds the number of experts (" + std::to_string(moe.numExperts) + ")");
  bool anyDense = std::find(c.layerIsMoe.begin(), c.layerIsMoe.end(), false) != c.layerIsMoe.end();
  if (anyDense && c.intermediateSize <= 0)
    f.fail("intermediate_size", "must be positive (dense layers need it)");
  return c;
}

ModelConfig parseConfig(const std::string& dir) {
  std::string path = dir + "/config.json";
  return parseConfigText(readTextFile(path), path);
}

} // namespace kt::hf
