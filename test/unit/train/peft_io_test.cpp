// Adapters in PEFT's format: initialisation like PEFT, the fused-expert B layout, save → load round
// trips of adapters and optimizer state, and errors for files that do not fit the plan.
#include "runtime/io/MappedFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/train/AdapterSet.h"
#include "runtime/train/PeftIO.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

namespace kt::train {
namespace {

// A plan that holds only adapters: a Linear one (q_proj, r 2, [3, 5]) and PEFT's fused gate_up
// adapter on 3 experts (r 4, in 4, out 2·3: gate rows 0..2, up rows 3..5).
class TinyPlan {
public:
  TinyPlan() {
    plan::PlanT p;
    auto lin = std::make_unique<plan::AdapterT>();
    lin->name = "base_model.model.model.layers.0.self_attn.q_proj";
    lin->layout = plan::AdapterLayout::Linear;
    lin->r = 2;
    lin->alpha = 16;
    lin->in_features = 5;
    lin->out_features = 3;
    auto t = std::make_unique<plan::AdapterTargetT>();
    t->weight = 0;
    t->rows = 3;
    lin->targets.push_back(std::move(t));
    p.adapters.push_back(std::move(lin));
    auto ex = std::make_unique<plan::AdapterT>();
    ex->name = "base_model.model.model.layers.1.mlp.experts.base_layer";
    ex->layout = plan::AdapterLayout::ExpertsFused;
    ex->r = 4;
    ex->alpha = 32;
    ex->in_features = 4;
    ex->out_features = 6;
    ex->num_experts = 3;
    for (int k = 0; k < 2; ++k) {
      auto tt = std::make_unique<plan::AdapterTargetT>();
      tt->weight = uint32_t(1 + k);
      tt->row_offset = 3 * k;
      tt->rows = 3;
      ex->targets.push_back(std::move(tt));
    }
    p.adapters.push_back(std::move(ex));
    fb_.Finish(plan::Plan::Pack(fb_, &p));
  }
  const plan::Plan& root() const { return *plan::GetPlan(fb_.GetBufferPointer()); }

private:
  flatbuffers::FlatBufferBuilder fb_;
};

PeftConfigInfo info() {
  PeftConfigInfo i;
  i.r = 2;
  i.alpha = 16;
  i.targetModules = {"q_proj"};
  i.targetParameters = {"gate_up_proj"};
  i.baseModel = "/models/tiny";
  return i;
}

void randomize(AdapterSet& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  for (size_t i = 0; i < s.size(); ++i)
    for (std::vector<float>* v : {&s[i].A, &s[i].B, &s[i].mA, &s[i].vA, &s[i].mB, &s[i].vB})
      for (float& x : *v)
        x = nd(rng);
}

TEST(AdapterSet, ShapesComeFromThePlan) {
  TinyPlan p;
  AdapterSet s(p.root());
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].A.size(), 2u * 5);
  EXPECT_EQ(s[0].B.size(), 3u * 2);
  EXPECT_EQ(s[1].A.size(), 3u * 4 * 4); // [E·r, in]
  EXPECT_EQ(s[1].B.size(), 6u * 3 * 4); // [out, E·r]
  EXPECT_DOUBLE_EQ(s[1].scale(), 8.0);
  EXPECT_EQ(s.numParameters(), 10 + 6 + 48 + 72);
}

TEST(AdapterSet, PeftInitIsKaimingUniformAWithZeroB) {
  TinyPlan p;
  AdapterSet s(p.root()), same(p.root()), other(p.root());
  s.initPeft(5);
  same.initPeft(5);
  other.initPeft(6);
  for (size_t i = 0; i < s.size(); ++i) {
    const double bound = 1.0 / std::sqrt(double(s[i].in));
    double maxAbs = 0;
    for (float a : s[i].A)
      maxAbs = std::max(maxAbs, double(std::fabs(a)));
    EXPECT_LE(maxAbs, bound);
    EXPECT_GT(maxAbs, 0.5 * bound); // spread over the interval, not a constant
    for (float b : s[i].B)
      EXPECT_EQ(b, 0.f);
    EXPECT_EQ(s[i].A, same[i].A);
    EXPECT_NE(s[i].A, other[i].A);
  }
}

TEST(AdapterSet, FusedExpertBIsColumnJTimesEPlusE) {
  TinyPlan p;
  AdapterSet s(p.root());
  AdapterState& a = s[1];
  // Expert-major internal value v(e, o, j) = 100e + 10o + j.
  for (int e = 0; e < 3; ++e)
    for (int o = 0; o < 6; ++o)
      for (int j = 0; j < 4; ++j)
        a.b(e)[o * 4 + j] = float(100 * e + 10 * o + j);
  std::vector<float> peft = s.peftB(a, a.B);
  const int E = 3, cols = 12;
  EXPECT_EQ(peft[size_t(5 * cols + 3 * E + 2)], 253.f); // o 5, j 3, e 2
  EXPECT_EQ(peft[size_t(1 * cols + 0 * E + 1)], 110.f); // o 1, j 0, e 1
  std::vector<float> back(a.B.size());
  s.setPeftB(a, back, peft.data());
  EXPECT_EQ(back, a.B);
}

TEST(PeftIO, SaveThenLoadRoundTripsAdapterAndOptimizerState) {
  TinyPlan p;
  AdapterSet s(p.root()), t(p.root());
  randomize(s, 1);
  const std::string dir = testing_util::tempDir("kt_peft_io_", "roundtrip");
  savePeftAdapter(dir, s, info());
  saveOptimizerState(dir + "/optimizer.safetensors", s);
  loadPeftAdapter(dir, t);
  loadOptimizerState(dir + "/optimizer.safetensors", t);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].A, t[i].A);
    EXPECT_EQ(s[i].B, t[i].B);
    EXPECT_EQ(s[i].mA, t[i].mA);
    EXPECT_EQ(s[i].vB, t[i].vB);
  }
  // PEFT's names and shapes.
  SafetensorsFile f(dir + "/adapter_model.safetensors");
  const TensorInfo* b =
      f.find("base_model.model.model.layers.1.mlp.experts.base_layer.lora_B.weight");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{6, 12}));
  EXPECT_EQ(b->dtype, DType::F32);
  ASSERT_TRUE(f.find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_EQ(f.tensors().size(), 4u);
  auto cfg = nlohmann::json::parse(readTextFile(dir + "/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 2);
  EXPECT_EQ(cfg["lora_alpha"], 16.0);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q_proj"}));
  EXPECT_EQ(cfg["target_parameters"], nlohmann::json({"gate_up_proj"}));
  EXPECT_EQ(cfg["base_model_name_or_path"], "/models/tiny");
  // The expert adapter's own rank and alpha.
  EXPECT_EQ(cfg["rank_pattern"]["model\\.layers\\.1\\.mlp\\.experts\\.gate_up_proj"], 4);
  EXPECT_EQ(cfg["alpha_pattern"]["model\\.layers\\.1\\.mlp\\.experts\\.gate_up_proj"], 32.0);
}

TEST(PeftIO, LoadRejectsFilesThatDoNotFitThePlan) {
  TinyPlan p;
  AdapterSet s(p.root());
  randomize(s, 2);
  const std::string dir = testing_util::tempDir("kt_peft_io_", "bad");
  savePeftAdapter(dir, s, info());
  const std::string model = dir + "/adapter_model.safetensors";
  std::vector<float> z(200, 0.f);
  const std::string q = "base_model.model.model.layers.0.self_attn.q_proj";
  const std::string e = "base_model.model.model.layers.1.mlp.experts.base_layer";
  auto expectLoadError = [&](const std::string& needle) {
    AdapterSet t(p.root());
    try {
      loadPeftAdapter(dir, t);
      ADD_FAILURE() << "loaded; expected an error with '" << needle << "'";
    } catch (const std::exception& ex) {
      EXPECT_NE(std::string(ex.what()).find(needle), std::string::npos) << ex.what();
    }
  };
  // Wrong rank.
  writeSafetensors(model, {{q + ".lora_A.weight", DType::F32, {4, 5}, z.data()},
                           {q + ".lora_B.weight", DType::F32, {3, 4}, z.data()},
                           {e + ".lora_A.weight", DType::F32, {12, 4}, z.data()},
                           {e + ".lora_B.weight", DType::F32, {6, 12}, z.data()}});
  expectLoadError(q + ".lora_A.weight is [4, 5], the plan's adapter is [2, 5]");
  // A module the plan has no adapter for.
  writeSafetensors(model,
                   {{q + ".lora_A.weight", DType::F32, {2, 5}, z.data()},
                    {q + ".lora_B.weight", DType::F32, {3, 2}, z.data()},
                    {e + ".lora_A.weight", DType::F32, {12, 4}, z.data()},
                    {e + ".lora_B.weight", DType::F32, {6, 12}, z.data()},
                    {"base_model.model.lm_head.lora_A.weight", DType::F32, {2, 5}, z.data()}});
  expectLoadError("lm_head.lora_A.weight belongs to no adapter of the plan");
  // A missing one.
  writeSafetensors(model, {{q + ".lora_A.weight", DType::F32, {2, 5}, z.data()},
                           {q + ".lora_B.weight", DType::F32, {3, 2}, z.data()}});
  expectLoadError("missing tensor " + e + ".lora_A.weight");
  // No config.
  std::filesystem::remove(dir + "/adapter_config.json");
  expectLoadError("not a PEFT adapter");
}

} // namespace
} // namespace kt::train
