// kt-compile --train lora --lora-config: for every fixture, compiling with PEFT's adapter_init
// config must give exactly the adapter set PEFT created (names, A/B shapes, r, alpha), and a
// train_step entry point that the runtime's validator (LoadedPlan) accepts and that has the shape
// docs/training.md promises: forward, loss, backward in reverse order with dx pruned below the
// lowest adapter, adamw last.
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "frontends/hf/PeftAdapter.h"
#include "runtime/io/Safetensors.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/plan/PlanReader.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

using namespace kt;

namespace {

const std::vector<std::string> kFixtures = {"llama",       "mixtral",          "qwen3_moe",
                                            "deepseek_v2", "deepseek_v2_yarn", "deepseek_v3"};

std::string fixture(const std::string& m) {
  return std::string(KT_FIXTURES_DIR) + "/hf/" + m;
}

compiler::CompileOptions trainOptions(const hf::PeftConfig& c) {
  compiler::CompileOptions opt;
  opt.train = "lora";
  compiler::applyLoraConfig(c, opt);
  return opt;
}

// FlatBuffers leaves an empty vector out: a step with no outputs has outputs() == nullptr.
template <typename V> size_t count(const V* v) {
  return v ? v->size() : 0;
}

// A model op and its backward op share kind family and weights (unique per layer).
std::string forwardKey(plan::OpKind kind, const plan::Step* s) {
  std::string k = std::to_string(int(kind));
  for (int32_t w : *s->weights())
    k += "," + std::to_string(w);
  return k;
}

bool isBackward(plan::OpKind k) {
  return k == plan::OpKind::RmsNormGrad || k == plan::OpKind::LinearGrad ||
         k == plan::OpKind::AttentionGrad || k == plan::OpKind::MlaAttentionGrad ||
         k == plan::OpKind::MoeGrad || k == plan::OpKind::MlpGrad;
}

class TrainPlan : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    dir_ = fixture(GetParam());
    config_ = hf::readPeftConfig(dir_ + "/lora/adapter_init/adapter_config.json");
    hf::ModelDesc desc = hf::describeModel(dir_);
    plan::PlanT p;
    compiler::CompileStats stats;
    compiler::CompileOptions opt = trainOptions(config_);
    opt.sidecarPath = testing::TempDir() + "/" + GetParam() + ".train.ktplan.weights";
    ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
    path_ = testing::TempDir() + "/" + GetParam() + ".train.ktplan";
    compiler::writePlanFile(p, path_);
    plan_ = std::make_unique<LoadedPlan>(LoadedPlan::fromFile(path_)); // validates
  }

  const plan::Plan& root() const { return plan_->root(); }

  std::string dir_, path_;
  hf::PeftConfig config_;
  std::unique_ptr<LoadedPlan> plan_;
};

TEST_P(TrainPlan, AdaptersAreExactlyPeftsWithTheirShapes) {
  SafetensorsFile init(dir_ + "/lora/adapter_init/adapter_model.safetensors");
  std::map<std::string, std::vector<int64_t>> want, got;
  for (const auto& [name, t] : init.tensors())
    want[name] = t.shape;
  ASSERT_NE(root().adapters(), nullptr);
  for (const plan::Adapter* a : *root().adapters()) {
    const int64_t cols = a->layout() == plan::AdapterLayout::ExpertsFused
                             ? int64_t(a->num_experts()) * a->r()
                             : int64_t(a->r());
    got[a->name()->str() + ".lora_A.weight"] = {cols, a->in_features()};
    got[a->name()->str() + ".lora_B.weight"] = {a->out_features(), cols};
    int64_t rows = 0;
    for (const plan::AdapterTarget* t : *a->targets()) {
      EXPECT_EQ(t->row_offset(), rows) << a->name()->str();
      rows += t->rows();
      const plan::Weight* w = root().weights()->Get(t->weight());
      EXPECT_EQ(w->shape()->Get(w->shape()->size() - 2), t->rows()) << w->name()->str();
      EXPECT_EQ(w->shape()->Get(w->shape()->size() - 1), a->in_features()) << w->name()->str();
    }
    EXPECT_EQ(rows, a->out_features()) << a->name()->str();
    // PEFT's rank/alpha patterns: the fused gate_up adapters of the fixtures have r=16, alpha=32.
    const bool gateUp =
        a->name()->str().size() > 11 &&
        a->name()->str().compare(a->name()->str().size() - 11, 11, ".base_layer") == 0;
    EXPECT_EQ(a->r(), gateUp ? 16 : config_.r) << a->name()->str();
    EXPECT_DOUBLE_EQ(a->alpha(), gateUp ? 32.0 : config_.alpha) << a->name()->str();
  }
  EXPECT_EQ(got, want);
  ASSERT_NE(root().training(), nullptr);
  EXPECT_EQ(root().training()->method()->str(), "lora");
  EXPECT_EQ(root().training()->r(), config_.r);
  EXPECT_GT(root().training()->saved_activation_bytes_per_token(), 0);
}

TEST_P(TrainPlan, TrainStepIsForwardLossReverseBackwardAdamw) {
  const plan::EntryPoint* ep = plan_->entryPoint("train_step");
  ASSERT_NE(ep, nullptr);
  auto bufferName = [&](uint32_t b) { return root().buffers()->Get(b)->name()->str(); };
  ASSERT_EQ(ep->inputs()->size(), 3u);
  EXPECT_EQ(bufferName(ep->inputs()->Get(0)), "ids");
  EXPECT_EQ(bufferName(ep->inputs()->Get(1)), "positions");
  EXPECT_EQ(bufferName(ep->inputs()->Get(2)), "labels");
  ASSERT_EQ(ep->outputs()->size(), 1u);
  const plan::Buffer* loss = root().buffers()->Get(ep->outputs()->Get(0));
  EXPECT_EQ(loss->name()->str(), "loss");
  EXPECT_EQ(loss->dtype(), plan::DType::F32);
  ASSERT_EQ(loss->shape()->size(), 1u);
  EXPECT_EQ(loss->shape()->Get(0), 2);

  const auto& steps = *ep->steps();
  ASSERT_GT(steps.size(), 3u);
  EXPECT_EQ(steps.Get(steps.size() - 1)->op(), plan::OpKind::AdamW);
  int lossAt = -1;
  std::vector<int> fwdLayers, bwdLayers; // layer of each attention step, forward and backward
  for (size_t i = 0; i < steps.size(); ++i) {
    const plan::Step* s = steps.Get(uint32_t(i));
    if (s->op() == plan::OpKind::LmHead)
      ADD_FAILURE() << "train_step must not compute full logits";
    if (s->op() == plan::OpKind::CrossEntropyLoss) {
      EXPECT_EQ(lossAt, -1) << "one loss";
      lossAt = int(i);
      EXPECT_EQ(s->outputs()->Get(1), ep->outputs()->Get(0)) << "the loss step writes 'loss'";
    }
    if (isBackward(s->op())) {
      EXPECT_GT(lossAt, -1) << "step " << i << " " << s->name()->str() << " before the loss";
    }
    if (s->op() == plan::OpKind::Attention || s->op() == plan::OpKind::MlaAttention)
      fwdLayers.push_back(s->layer());
    if (s->op() == plan::OpKind::AttentionGrad || s->op() == plan::OpKind::MlaAttentionGrad) {
      bwdLayers.push_back(s->layer());
      // Every fixture adapts layer 0's attention and freezes the embedding: no dx below it.
      if (s->layer() == 0)
        EXPECT_EQ(count(s->outputs()), 0u) << "layer 0 attention's dx is pruned";
      else
        EXPECT_EQ(count(s->outputs()), 1u);
    }
    if (count(s->adapters()) > 0) {
      EXPECT_EQ(s->adapters()->size(), s->weights()->size()) << s->name()->str();
      EXPECT_TRUE(int(i) < lossAt || isBackward(s->op()) || lossAt < 0) << s->name()->str();
    }
  }
  EXPECT_GT(lossAt, 0);
  std::vector<int> reversed(fwdLayers.rbegin(), fwdLayers.rend());
  EXPECT_EQ(bwdLayers, reversed) << "attention backward runs in reverse layer order";
  // No rms_norm_grad below layer 0's attention (its gradient would only feed the frozen embedding).
  const plan::Step* lastGrad = steps.Get(steps.size() - 2);
  EXPECT_TRUE(lastGrad->op() == plan::OpKind::AttentionGrad ||
              lastGrad->op() == plan::OpKind::MlaAttentionGrad)
      << "last backward step is " << lastGrad->name()->str();
}

// Each backward step repeats its forward step's weights, adapters, attrs kind, layer and device.
TEST_P(TrainPlan, BackwardStepsRepeatTheirForwardStep) {
  const auto& steps = *plan_->entryPoint("train_step")->steps();
  std::map<std::string, const plan::Step*> forward; // forwardKey -> step
  std::map<plan::OpKind, plan::OpKind> gradOf = {
      {plan::OpKind::AttentionGrad, plan::OpKind::Attention},
      {plan::OpKind::MlaAttentionGrad, plan::OpKind::MlaAttention},
      {plan::OpKind::MoeGrad, plan::OpKind::Moe},
      {plan::OpKind::MlpGrad, plan::OpKind::Mlp}};
  int checked = 0;
  for (const plan::Step* s : steps) {
    if (gradOf.count(s->op()) == 0) {
      if (s->weights())
        forward[forwardKey(s->op(), s)] = s;
      continue;
    }
    auto it = forward.find(forwardKey(gradOf[s->op()], s));
    ASSERT_NE(it, forward.end()) << s->name()->str();
    const plan::Step* f = it->second;
    EXPECT_EQ(s->device(), f->device());
    EXPECT_EQ(s->layer(), f->layer());
    EXPECT_EQ(s->attrs_type(), f->attrs_type());
    ASSERT_EQ(s->weights()->size(), f->weights()->size());
    for (uint32_t i = 0; i < s->weights()->size(); ++i)
      EXPECT_EQ(s->weights()->Get(i), f->weights()->Get(i));
    ASSERT_EQ(count(s->adapters()), count(f->adapters()));
    for (uint32_t i = 0; i < count(s->adapters()); ++i)
      EXPECT_EQ(s->adapters()->Get(i), f->adapters()->Get(i));
    EXPECT_EQ(s->inputs()->Get(0), f->inputs()->Get(0)) << "the saved input x";
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

// The saved forward inputs must still hold their values when the backward reads them: no step
// between the producer and the backward consumer may write the buffer.
TEST_P(TrainPlan, ForwardBuffersLiveUntilTheirBackwardUse) {
  const auto& steps = *plan_->entryPoint("train_step")->steps();
  std::map<uint32_t, size_t> lastWriter;
  std::map<std::string, size_t> forwardAt; // forwardKey -> step index
  std::map<plan::OpKind, plan::OpKind> gradOf = {
      {plan::OpKind::AttentionGrad, plan::OpKind::Attention},
      {plan::OpKind::MlaAttentionGrad, plan::OpKind::MlaAttention},
      {plan::OpKind::MoeGrad, plan::OpKind::Moe},
      {plan::OpKind::MlpGrad, plan::OpKind::Mlp}};
  for (size_t i = 0; i < steps.size(); ++i) {
    const plan::Step* s = steps.Get(uint32_t(i));
    if (gradOf.count(s->op())) {
      size_t f = forwardAt.at(forwardKey(gradOf[s->op()], s));
      uint32_t x = s->inputs()->Get(0);
      ASSERT_EQ(x, steps.Get(uint32_t(f))->inputs()->Get(0));
      EXPECT_LT(lastWriter[x], f) << s->name()->str() << ": saved input overwritten at step "
                                  << lastWriter[x];
    } else if (s->weights()) {
      forwardAt[forwardKey(s->op(), s)] = i;
    }
    if (s->outputs())
      for (uint32_t o : *s->outputs())
        lastWriter[o] = i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainPlan, testing::ValuesIn(kFixtures));

std::string compileError(const std::string& model, compiler::CompileOptions opt) {
  hf::ModelDesc desc = hf::describeModel(fixture(model));
  plan::PlanT p;
  compiler::CompileStats stats;
  opt.sidecarPath = testing::TempDir() + "/err.ktplan.weights";
  testing::internal::CaptureStderr();
  bool ok = compiler::compileModel(desc, opt, &p, &stats);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(ok);
  return err;
}

TEST(TrainPlanErrors, UnknownTargetModuleIsNamedWithTheCandidates) {
  compiler::CompileOptions opt;
  opt.train = "lora";
  opt.loraTargetModules = {"q_proj", "qkv_proj"};
  std::string err = compileError("llama", opt);
  EXPECT_NE(err.find("target module 'qkv_proj' matches no projection"), std::string::npos) << err;
  EXPECT_NE(err.find("o_proj"), std::string::npos) << "lists the model's projections: " << err;
}

TEST(TrainPlanErrors, ExpertParametersOnADenseModel) {
  compiler::CompileOptions opt;
  opt.train = "lora";
  opt.loraTargetParameters = {"gate_up_proj"};
  std::string err = compileError("llama", opt);
  EXPECT_NE(err.find("this model has no routed experts"), std::string::npos) << err;
}

TEST(TrainPlanErrors, UnknownMethod) {
  compiler::CompileOptions opt;
  opt.train = "qlora-magic";
  opt.loraTargetModules = {"q_proj"};
  EXPECT_NE(compileError("llama", opt).find("only lora"), std::string::npos);
}

// Dense MLP and shared-expert projections are PEFT target_modules too (gate_proj, ...), and only
// routed experts go through target_parameters.
TEST(TrainPlanTargets, GateProjHitsDenseMlpAndSharedExpertsNotRoutedExperts) {
  hf::ModelDesc desc = hf::describeModel(fixture("deepseek_v2"));
  compiler::CompileOptions opt;
  opt.train = "lora";
  opt.loraTargetModules = {"gate_proj"};
  opt.sidecarPath = testing::TempDir() + "/gp.ktplan.weights";
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  std::set<std::string> names;
  for (const auto& a : p.adapters) {
    names.insert(a->name);
    EXPECT_EQ(a->layout, plan::AdapterLayout::Linear);
  }
  EXPECT_EQ(names, (std::set<std::string>{
                       "base_model.model.model.layers.0.mlp.gate_proj",
                       "base_model.model.model.layers.1.mlp.shared_experts.gate_proj",
                       "base_model.model.model.layers.2.mlp.shared_experts.gate_proj"}));
  // Adapters only on layers >= 0's MLP: attention backward of layer 0 is not needed at all.
  const plan::EntryPointT* train = nullptr;
  for (const auto& ep : p.entry_points)
    if (ep->name == "train_step")
      train = ep.get();
  ASSERT_NE(train, nullptr);
  int attnGrads = 0;
  for (const auto& s : train->steps)
    attnGrads += s->op == plan::OpKind::MlaAttentionGrad && s->layer == 0;
  EXPECT_EQ(attnGrads, 0) << "nothing below layer 0's MLP is adapted";
}

} // namespace
