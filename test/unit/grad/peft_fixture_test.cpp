// Whole-model LoRA step against PEFT: the training ops composed into a full forward + backward over
// each fixture checkpoint (test/fixtures/hf/<arch>/lora), from PEFT's initial adapter; the step-0
// loss and the gradient of every LoRA parameter must match what PEFT + transformers computed
// (fixtures/README.md: relative error < 1e-4).
//
// The composition is test code (the runtime gets its own executor); tensor names and roles come
// from the importer's table (frontends/hf/HfTensors), hyper-parameters from its normalized config.
//
// PEFT adapters: nn.Linear targets carry lora_A [r, in] / lora_B [out, r]. Routed experts, stored
// by transformers 5 as fused 3-D parameters (gate_up_proj [E, 2I, H], down_proj [E, H, I]), are
// targeted through `target_parameters` (ParamWrapper; nested wrappers, `experts.base_layer` is the
// first): lora_A [E·r, in] with expert e's rows at e·r .. e·r + r - 1, lora_B [out, E·r] with
// expert e's column j at j·E + e (PEFT's einsum "o r e, e r i -> e o i"). The fused gate_up adapter
// is one adapter on [gate; up], so gate and up share A (and dA) and split B by rows.
#include "kernels/cpu/grad/Grad.h"

#include "frontends/hf/HfConfig.h"
#include "frontends/hf/HfTensors.h"
#include "runtime/io/MappedFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/ThreadPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

namespace kt::cpu::grad {
namespace {

const double kTol = 1e-4;

struct AdapterBuf {
  std::vector<float> A, B, dA, dB;
  std::string gradA, gradB; // names in reference.safetensors
  int r = 0;
};

struct ExpertAdapter { // per-expert views of a ParamWrapper adapter
  AdapterBuf* src = nullptr;
  int E = 0, r = 0;
  std::vector<std::vector<float>> B, dB; // [E][out, r] gathered columns
};

class Model {
public:
  explicit Model(const std::string& dir)
      : dir_(dir), cfg_(hf::parseConfig(dir)), weights_(dir + "/model.safetensors"),
        adapter_(dir + "/lora/adapter_init/adapter_model.safetensors"),
        ref_(dir + "/lora/reference.safetensors") {
    nlohmann::json ac =
        nlohmann::json::parse(readTextFile(dir + "/lora/adapter_init/adapter_config.json"));
    alpha_ = ac["lora_alpha"].get<double>();
    for (auto& [k, v] : ac["alpha_pattern"].items())
      alphaPattern_.push_back({std::regex(k), v.get<double>()});
    for (const hf::TensorSpec& s : hf::tensorSpecs(cfg_))
      specs_[{s.layer, s.role, int(s.slot)}] = s;
    layers_.resize(size_t(cfg_.numLayers));
    for (int l = 0; l < cfg_.numLayers; ++l)
      buildLayer(l);
  }

  const hf::ModelConfig& config() const { return cfg_; }
  std::vector<std::string> targets() const { return targets_; }

  // One training step's forward + backward; returns the loss. Adapter gradients land in dA/dB.
  double step(ThreadPool& pool, const std::vector<int32_t>& data, int64_t batch, int64_t L) {
    const int64_t T = batch * L, H = cfg_.hiddenSize;
    std::vector<float> x(size_t(T * H));
    MatrixView embed = view(name(-1, "", hf::TensorSlot::Embed));
    for (int64_t t = 0; t < T; ++t)
      embed.rowToF32(data[size_t(t)], x.data() + t * H);
    struct Saved {
      std::vector<float> xIn, h1, xMid, h2;
    };
    std::vector<Saved> saved(layers_.size());
    std::vector<float> tmp(x.size());
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& ly = layers_[l];
      Saved& s = saved[l];
      s.xIn = x;
      s.h1.resize(x.size());
      rmsNormForward(pool, x.data(), T, H, ly.inNorm, cfg_.rmsNormEps, s.h1.data());
      attention(pool, ly, s.h1.data(), batch, L, tmp.data());
      addForward(x.data(), tmp.data(), T * H, x.data());
      s.xMid = x;
      s.h2.resize(x.size());
      rmsNormForward(pool, x.data(), T, H, ly.postNorm, cfg_.rmsNormEps, s.h2.data());
      ffn(pool, ly, s.h2.data(), T, tmp.data());
      addForward(x.data(), tmp.data(), T * H, x.data());
    }
    std::vector<float> hN(x.size()), dhN(x.size()), dx(x.size()), d2(x.size());
    MatrixView finalNorm = view(name(-1, "", hf::TensorSlot::FinalNorm));
    rmsNormForward(pool, x.data(), T, H, finalNorm, cfg_.rmsNormEps, hN.data());
    MatrixView head =
        view(name(-1, "", cfg_.tieEmbeddings ? hf::TensorSlot::Embed : hf::TensorSlot::LmHead));
    LossResult loss = lmHeadLossBackward(pool, head, hN.data(), batch, L, data.data(), dhN.data());
    rmsNormBackward(pool, x.data(), T, H, finalNorm, cfg_.rmsNormEps, dhN.data(), dx.data());
    for (size_t l = layers_.size(); l-- > 0;) {
      Layer& ly = layers_[l];
      Saved& s = saved[l];
      // out = xMid + ffn(norm(xMid)); xMid = xIn + attn(norm(xIn)).
      ffnBackward(pool, ly, s.h2.data(), T, dx.data(), d2.data());
      rmsNormBackward(pool, s.xMid.data(), T, H, ly.postNorm, cfg_.rmsNormEps, d2.data(),
                      d2.data());
      for (size_t i = 0; i < dx.size(); ++i)
        dx[i] += d2[i];
      attentionBackward(pool, ly, s.h1.data(), batch, L, dx.data(), d2.data());
      rmsNormBackward(pool, s.xIn.data(), T, H, ly.inNorm, cfg_.rmsNormEps, d2.data(), d2.data());
      for (size_t i = 0; i < dx.size(); ++i)
        dx[i] += d2[i];
    }
    for (ExpertAdapter& ea : expertAdapters_)
      scatterExpertGrads(ea);
    return loss.loss;
  }

  // (name, ours, PEFT's) of every adapter gradient PEFT recorded.
  struct GradPair {
    std::string name;
    const std::vector<float>* ours;
    std::vector<float> ref;
  };
  std::vector<GradPair> gradients() const {
    std::vector<GradPair> out;
    for (const AdapterBuf& a : adapters_) {
      out.push_back({a.gradA, &a.dA, f32(ref_, a.gradA)});
      out.push_back({a.gradB, &a.dB, f32(ref_, a.gradB)});
    }
    return out;
  }
  size_t referenceGradCount() const {
    size_t n = 0;
    for (const auto& [k, t] : ref_.tensors())
      n += k.rfind("grad0.", 0) == 0;
    return n;
  }
  std::vector<float> reference(const std::string& n) const { return f32(ref_, n); }
  std::vector<int32_t> data() const {
    const TensorInfo* t = ref_.find("data");
    std::vector<int32_t> v(size_t(t->numel()));
    std::memcpy(v.data(), ref_.data(*t), v.size() * 4);
    return v;
  }

private:
  struct Layer {
    AttentionWeights gqa;
    MlaWeights mla;
    MatrixView inNorm, postNorm;
    bool moe = false;
    MlpWeights dense, shared;
    std::vector<MlpWeights> experts;
    MoeWeights moeW;
  };

  static std::vector<float> f32(const SafetensorsFile& f, const std::string& n) {
    const TensorInfo* t = f.find(n);
    if (!t)
      return {};
    std::vector<float> v(size_t(t->numel()));
    std::memcpy(v.data(), f.data(*t), v.size() * 4);
    return v;
  }

  std::string name(int layer, const std::string& role, hf::TensorSlot slot) const {
    auto it = specs_.find({layer, role, int(slot)});
    return it == specs_.end() ? std::string() : it->second.hfName;
  }
  const hf::TensorSpec* spec(int layer, const std::string& role, hf::TensorSlot slot) const {
    auto it = specs_.find({layer, role, int(slot)});
    return it == specs_.end() ? nullptr : &it->second;
  }

  MatrixView view(const std::string& n) const {
    if (n.empty())
      return {};
    const TensorInfo* t = weights_.find(n);
    if (!t)
      throw std::runtime_error("missing tensor " + n);
    MatrixView v;
    v.data = weights_.data(*t);
    v.dtype = t->dtype;
    v.rows = t->shape.size() == 2 ? t->shape[0] : 1;
    v.cols = t->shape.back();
    return v;
  }

  double alphaFor(const std::string& paramPath) const {
    for (const auto& [re, a] : alphaPattern_)
      if (std::regex_search(paramPath, re))
        return a;
    return alpha_;
  }

  // The adapter PEFT put on the nn.Linear whose weight is `weightName`, or null.
  const Lora* linearAdapter(const std::string& weightName) {
    if (weightName.empty())
      return nullptr;
    const std::string module =
        weightName.substr(0, weightName.size() - std::string(".weight").size());
    const std::string key = "base_model.model." + module;
    const TensorInfo* a = adapter_.find(key + ".lora_A.weight");
    if (!a)
      return nullptr;
    AdapterBuf& buf = adapters_.emplace_back();
    buf.A = f32(adapter_, key + ".lora_A.weight");
    buf.B = f32(adapter_, key + ".lora_B.weight");
    buf.r = int(a->shape[0]);
    buf.dA.assign(buf.A.size(), 0.f);
    buf.dB.assign(buf.B.size(), 0.f);
    buf.gradA = "grad0." + key + ".lora_A.default.weight";
    buf.gradB = "grad0." + key + ".lora_B.default.weight";
    const std::string target = module.substr(module.rfind('.') + 1);
    if (std::find(targets_.begin(), targets_.end(), target) == targets_.end())
      targets_.push_back(target);
    Lora l{buf.A.data(),  buf.B.data(), buf.r, float(alphaFor(module) / buf.r),
           buf.dA.data(), buf.dB.data()};
    return &loras_.emplace_back(l);
  }

  Projection proj(int l, const std::string& role, hf::TensorSlot slot,
                  const std::string& biasRole = "") {
    std::string n = name(l, role, slot);
    return {view(n), biasRole.empty() ? MatrixView{} : view(name(l, biasRole, slot)),
            linearAdapter(n)};
  }

  // PEFT's ParamWrapper adapters on the fused experts of layer l, split into per-expert adapters.
  void expertAdapters(int l, Layer& ly, int64_t H, int64_t I) {
    const int E = cfg_.moe.numExperts;
    const std::string pre = "base_model.model.model.layers." + std::to_string(l) + ".mlp.experts.";
    for (const std::string& key : {pre + "base_layer", pre.substr(0, pre.size() - 1)}) {
      const TensorInfo* a = adapter_.find(key + ".lora_A.weight");
      if (!a)
        continue;
      AdapterBuf& buf = adapters_.emplace_back();
      buf.A = f32(adapter_, key + ".lora_A.weight");
      buf.B = f32(adapter_, key + ".lora_B.weight");
      buf.dA.assign(buf.A.size(), 0.f);
      buf.dB.assign(buf.B.size(), 0.f);
      buf.gradA = "grad0." + key + ".lora_A.default.weight";
      buf.gradB = "grad0." + key + ".lora_B.default.weight";
      const int64_t in = a->shape[1], out = int64_t(buf.B.size()) / a->shape[0];
      buf.r = int(a->shape[0] / E);
      EXPECT_NE(H, I) << "gate_up and down adapters are told apart by their input width";
      const bool gateUp = in == H;
      const std::string param = "model.layers." + std::to_string(l) + ".mlp.experts." +
                                (gateUp ? "gate_up_proj" : "down_proj");
      const float scale = float(alphaFor(param) / buf.r);
      std::string target = gateUp ? "experts.gate_up_proj" : "experts.down_proj";
      if (std::find(targets_.begin(), targets_.end(), target) == targets_.end())
        targets_.push_back(target);
      ExpertAdapter& ea = expertAdapters_.emplace_back();
      ea.src = &buf;
      ea.E = E;
      ea.r = buf.r;
      ea.B.resize(size_t(E));
      ea.dB.resize(size_t(E));
      const int64_t cols = int64_t(E) * buf.r;
      for (int e = 0; e < E; ++e) {
        ea.B[size_t(e)].resize(size_t(out * buf.r));
        ea.dB[size_t(e)].assign(size_t(out * buf.r), 0.f);
        for (int64_t o = 0; o < out; ++o)
          for (int j = 0; j < buf.r; ++j)
            ea.B[size_t(e)][size_t(o * buf.r + j)] = buf.B[size_t(o * cols + j * E + e)];
      }
      for (int e = 0; e < E; ++e) {
        const float* Ae = buf.A.data() + int64_t(e) * buf.r * in;
        float* dAe = buf.dA.data() + int64_t(e) * buf.r * in;
        float* Be = ea.B[size_t(e)].data();
        float* dBe = ea.dB[size_t(e)].data();
        MlpWeights& m = ly.experts[size_t(e)];
        if (gateUp) { // rows 0..I-1 of the fused output are gate, I..2I-1 up
          m.gate.lora = &loras_.emplace_back(Lora{Ae, Be, buf.r, scale, dAe, dBe});
          m.up.lora =
              &loras_.emplace_back(Lora{Ae, Be + I * buf.r, buf.r, scale, dAe, dBe + I * buf.r});
        } else {
          m.down.lora = &loras_.emplace_back(Lora{Ae, Be, buf.r, scale, dAe, dBe});
        }
      }
    }
  }

  static void scatterExpertGrads(ExpertAdapter& ea) {
    AdapterBuf& buf = *ea.src;
    const int64_t cols = int64_t(ea.E) * ea.r, out = int64_t(buf.B.size()) / cols;
    for (int e = 0; e < ea.E; ++e)
      for (int64_t o = 0; o < out; ++o)
        for (int j = 0; j < ea.r; ++j)
          buf.dB[size_t(o * cols + j * ea.E + e)] = ea.dB[size_t(e)][size_t(o * ea.r + j)];
  }

  void buildLayer(int l) {
    Layer& ly = layers_[size_t(l)];
    using S = hf::TensorSlot;
    ly.inNorm = view(name(l, "", S::InputNorm));
    ly.postNorm = view(name(l, "", S::PostNorm));
    if (cfg_.mla) {
      ly.mla.q = proj(l, "q_proj", S::Attention);
      ly.mla.qA = proj(l, "q_a_proj", S::Attention);
      ly.mla.qANorm = view(name(l, "q_a_norm", S::Attention));
      ly.mla.qB = proj(l, "q_b_proj", S::Attention);
      ly.mla.kvA = proj(l, "kv_a_proj", S::Attention);
      ly.mla.kvANorm = view(name(l, "kv_a_norm", S::Attention));
      ly.mla.kvB = proj(l, "kv_b_proj", S::Attention);
      ly.mla.o = proj(l, "o_proj", S::Attention);
    } else {
      ly.gqa.q = proj(l, "q_proj", S::Attention, cfg_.attentionBias ? "q_bias" : "");
      ly.gqa.k = proj(l, "k_proj", S::Attention, cfg_.attentionBias ? "k_bias" : "");
      ly.gqa.v = proj(l, "v_proj", S::Attention, cfg_.attentionBias ? "v_bias" : "");
      ly.gqa.o = proj(l, "o_proj", S::Attention);
      ly.gqa.qNorm = view(name(l, "q_norm", S::Attention));
      ly.gqa.kNorm = view(name(l, "k_norm", S::Attention));
    }
    ly.moe = cfg_.layerIsMoe[size_t(l)];
    if (!ly.moe) {
      ly.dense = {proj(l, "gate", S::Ffn), proj(l, "up", S::Ffn), proj(l, "down", S::Ffn)};
      return;
    }
    const int E = cfg_.moe.numExperts;
    const hf::TensorSpec* g = spec(l, "gate", S::Ffn);
    const hf::TensorSpec* u = spec(l, "up", S::Ffn);
    const hf::TensorSpec* d = spec(l, "down", S::Ffn);
    for (int e = 0; e < E; ++e) {
      // Per-expert nn.Linear adapters (older PEFT/transformers) are picked up by name too.
      ly.experts.push_back({{view(hf::expertTensorName(g->hfName, e)),
                             {},
                             linearAdapter(hf::expertTensorName(g->hfName, e))},
                            {view(hf::expertTensorName(u->hfName, e)),
                             {},
                             linearAdapter(hf::expertTensorName(u->hfName, e))},
                            {view(hf::expertTensorName(d->hfName, e)),
                             {},
                             linearAdapter(hf::expertTensorName(d->hfName, e))}});
    }
    expertAdapters(l, ly, cfg_.hiddenSize, cfg_.moe.intermediate);
    ly.moeW.router = view(name(l, "router", S::Ffn));
    ly.moeW.correctionBias = view(name(l, "correction_bias", S::Ffn));
    ly.moeW.experts = ly.experts.data();
    if (spec(l, "shared_gate", S::Ffn)) {
      ly.shared = {proj(l, "shared_gate", S::Ffn), proj(l, "shared_up", S::Ffn),
                   proj(l, "shared_down", S::Ffn)};
      ly.moeW.shared = &ly.shared;
      ly.moeW.sharedExpertGate = view(name(l, "shared_expert_gate", S::Ffn));
    }
  }

  RopeParams rope() const {
    const hf::RopeConfig& c = cfg_.rope;
    RopeParams p;
    p.type = c.type == "linear"   ? RopeType::Linear
             : c.type == "yarn"   ? RopeType::Yarn
             : c.type == "llama3" ? RopeType::Llama3
                                  : RopeType::Default;
    p.dim = c.dim;
    p.theta = c.theta;
    p.factor = c.factor;
    p.originalMaxPosition = c.originalMaxPosition;
    p.betaFast = c.betaFast;
    p.betaSlow = c.betaSlow;
    p.lowFreqFactor = c.lowFreqFactor;
    p.highFreqFactor = c.highFreqFactor;
    p.attentionFactor = c.attentionFactor;
    p.interleaved = c.interleaved;
    return p;
  }
  AttentionParams gqaParams() const {
    AttentionParams p;
    p.numHeads = cfg_.numHeads;
    p.numKvHeads = cfg_.numKvHeads;
    p.headDim = cfg_.headDim;
    p.scale = cfg_.softmaxScale;
    p.rope = rope();
    p.normEps = cfg_.rmsNormEps;
    return p;
  }
  MlaParams mlaParams() const {
    const hf::MlaConfig& m = cfg_.mlaConfig;
    MlaParams p;
    p.numHeads = cfg_.numHeads;
    p.qLoraRank = m.qLoraRank;
    p.kvLoraRank = m.kvLoraRank;
    p.qkNopeHeadDim = m.qkNopeHeadDim;
    p.qkRopeHeadDim = m.qkRopeHeadDim;
    p.vHeadDim = m.vHeadDim;
    p.scale = cfg_.softmaxScale;
    p.rope = rope();
    p.normEps = cfg_.rmsNormEps;
    return p;
  }
  MoeRoutingParams routing() const {
    const hf::MoeConfig& m = cfg_.moe;
    MoeRoutingParams p;
    p.numExperts = m.numExperts;
    p.topK = m.expertsPerToken;
    p.scoring = m.scoring == "sigmoid" ? MoeScoring::Sigmoid : MoeScoring::Softmax;
    p.method = m.topkMethod == "group_limited_greedy" ? MoeTopk::GroupLimitedGreedy
               : m.topkMethod == "noaux_tc"           ? MoeTopk::NoauxTc
                                                      : MoeTopk::Greedy;
    p.nGroup = m.nGroup;
    p.topkGroup = m.topkGroup;
    p.normTopkProb = m.normTopkProb;
    p.routedScalingFactor = m.routedScalingFactor;
    return p;
  }

  void attention(ThreadPool& pool, const Layer& ly, const float* x, int64_t batch, int64_t L,
                 float* y) {
    if (cfg_.mla)
      return mlaForward(pool, mlaParams(), ly.mla, x, batch, L, y);
    gqaForward(pool, gqaParams(), ly.gqa, x, batch, L, y);
  }
  void attentionBackward(ThreadPool& pool, const Layer& ly, const float* x, int64_t batch,
                         int64_t L, const float* dy, float* dx) {
    if (cfg_.mla)
      return mlaBackward(pool, mlaParams(), ly.mla, x, batch, L, dy, dx);
    gqaBackward(pool, gqaParams(), ly.gqa, x, batch, L, dy, dx);
  }
  void ffn(ThreadPool& pool, const Layer& ly, const float* x, int64_t T, float* y) {
    if (ly.moe)
      return moeForward(pool, routing(), ly.moeW, x, T, y);
    mlpForward(pool, ly.dense, x, T, y);
  }
  void ffnBackward(ThreadPool& pool, const Layer& ly, const float* x, int64_t T, const float* dy,
                   float* dx) {
    if (ly.moe)
      return moeBackward(pool, routing(), ly.moeW, x, T, dy, dx);
    mlpBackward(pool, ly.dense, x, T, dy, dx);
  }

  std::string dir_;
  hf::ModelConfig cfg_;
  SafetensorsFile weights_, adapter_, ref_;
  double alpha_ = 1;
  std::vector<std::pair<std::regex, double>> alphaPattern_;
  std::map<std::tuple<int, std::string, int>, hf::TensorSpec> specs_;
  std::vector<Layer> layers_;
  std::deque<AdapterBuf> adapters_;
  std::deque<Lora> loras_;
  std::deque<ExpertAdapter> expertAdapters_;
  std::vector<std::string> targets_;
};

double relNormDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * double(a[i] - b[i]);
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

class PeftStep : public testing::TestWithParam<std::string> {};

TEST_P(PeftStep, LossAndEveryLoraGradientMatchPeft) {
  const std::string dir = std::string(KT_FIXTURES_DIR) + "/hf/" + GetParam();
  Model m(dir);
  ThreadPool pool(2);
  std::vector<int32_t> data = m.data();
  ASSERT_EQ(data.size(), 64u);
  const double loss = m.step(pool, data, 2, 32);
  const double want = m.reference("losses")[0];
  EXPECT_LT(std::fabs(loss - want) / want, kTol) << "loss " << loss << " vs PEFT " << want;

  std::string targets;
  for (const std::string& t : m.targets())
    targets += " " + t;
  std::vector<Model::GradPair> grads = m.gradients();
  EXPECT_EQ(grads.size(), m.referenceGradCount()) << "adapters found:" << targets;
  double worst = 0;
  std::string worstName;
  for (const Model::GradPair& g : grads) {
    ASSERT_EQ(g.ours->size(), g.ref.size()) << g.name;
    const double e = relNormDiff(*g.ours, g.ref);
    EXPECT_LT(e, kTol) << g.name;
    if (e > worst) {
      worst = e;
      worstName = g.name;
    }
  }
  std::printf("[ %s ] loss %.7f (PEFT %.7f); %zu LoRA gradients, worst relative error %.2e (%s); "
              "targets:%s\n",
              GetParam().c_str(), loss, want, grads.size(), worst, worstName.c_str(),
              targets.c_str());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PeftStep,
                         testing::Values("llama", "mixtral", "qwen3_moe", "deepseek_v2",
                                         "deepseek_v2_yarn", "deepseek_v3"));

} // namespace
} // namespace kt::cpu::grad
