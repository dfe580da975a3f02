// kt-compile --adapter DIR: PEFT's trained adapter (fixtures hf/<arch>/lora/adapter_final) merged
// into the weights at compile time must reproduce the logits PEFT computed with it
// (lora/reference.safetensors `final_logits` [2, 32, V] for input `data` [2, 32]; fixtures
// README: max |diff| < 1e-3). Covers nn.Linear adapters of every attention kind and MLP, PEFT's
// fused routed-expert layout (qwen3_moe, deepseek_v2/v3) and rank/alpha patterns.
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "frontends/hf/PeftAdapter.h"
#include "runtime/generate/Generator.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/Error.h"
#include "test/unit/common/FixtureTensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

using namespace kt;

namespace {

using testing_util::fixture;
using testing_util::tensor;

class AdapterMerge : public testing::TestWithParam<std::string> {};

TEST_P(AdapterMerge, MergedAdapterReproducesPeftFinalLogits) {
  const std::string dir = fixture(GetParam());
  hf::ModelDesc desc = hf::describeModel(dir);
  const std::string plan = testing::TempDir() + "/" + GetParam() + ".merged.ktplan";
  hf::MergeStats m = hf::mergePeftAdapter(desc, dir + "/lora/adapter_final", plan + ".lora-merged");
  EXPECT_GT(m.adapters, 0);
  compiler::CompileOptions opt;
  opt.sidecarPath = plan + ".weights";
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  compiler::writePlanFile(p, plan);

  SafetensorsFile ref(dir + "/lora/reference.safetensors");
  std::vector<int32_t> data = tensor<int32_t>(ref, "data");
  std::vector<float> want = tensor<float>(ref, "final_logits");
  const TensorInfo* shape = ref.find("data");
  ASSERT_NE(shape, nullptr);
  const size_t B = size_t(shape->shape[0]), L = size_t(shape->shape[1]);
  std::vector<std::vector<int32_t>> seqs;
  for (size_t b = 0; b < B; ++b)
    seqs.emplace_back(data.begin() + std::ptrdiff_t(b * L),
                      data.begin() + std::ptrdiff_t((b + 1) * L));

  Model model(plan, 2);
  auto got = scoreSequences(model, seqs);
  const size_t V = size_t(model.info().vocab_size());
  ASSERT_EQ(want.size(), B * L * V);
  double worst = 0, base = 0;
  for (size_t b = 0; b < B; ++b) {
    ASSERT_EQ(got[b].size(), L * V);
    for (size_t i = 0; i < L * V; ++i)
      worst = std::max(worst, double(std::fabs(got[b][i] - want[b * L * V + i])));
  }
  EXPECT_LT(worst, 1e-3) << GetParam() << ": max |logit diff| with the merged adapter";

  // The merge must matter: the base model's logits are far from PEFT's tuned ones.
  hf::ModelDesc plain = hf::describeModel(dir);
  plan::PlanT q;
  opt.sidecarPath = plan + ".base.weights";
  ASSERT_TRUE(compiler::compileModel(plain, opt, &q, &stats));
  compiler::writePlanFile(q, plan + ".base");
  Model baseModel(plan + ".base", 2);
  auto baseLogits = scoreSequences(baseModel, seqs);
  for (size_t i = 0; i < L * V; ++i)
    base = std::max(base, double(std::fabs(baseLogits[0][i] - want[i])));
  EXPECT_GT(base, 100 * worst) << "the unmerged model is as close: the test proves nothing";
  std::printf("[ merged   ] %s: %d adapters, max |logit - PEFT| %.2e (base model: %.2e)\n",
              GetParam().c_str(), m.adapters, worst, base);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterMerge,
                         testing::Values("llama", "mixtral", "qwen3_moe", "deepseek_v2",
                                         "deepseek_v2_yarn", "deepseek_v3"));

TEST(AdapterMergeErrors, AdapterForAnotherModelIsRefusedNamingTheModule) {
  // deepseek_v2's adapter (fused experts, MLA projections) does not fit llama.
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  try {
    hf::mergePeftAdapter(desc, fixture("deepseek_v2") + "/lora/adapter_final",
                         testing::TempDir() + "/wrong.lora-merged");
    FAIL() << "merged an adapter of another architecture";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kv_a_proj_with_mqa"), std::string::npos) << e.what();
  }
}

TEST(AdapterMergeErrors, MissingConfigNamesTheFile) {
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  try {
    hf::mergePeftAdapter(desc, testing::TempDir(), testing::TempDir() + "/x.lora-merged");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos) << e.what();
  }
}

TEST(PeftConfigReader, ReadsTheLoraFieldsOfTheFixtures) {
  hf::PeftConfig c =
      hf::readPeftConfig(fixture("deepseek_v3") + "/lora/adapter_init/adapter_config.json");
  EXPECT_EQ(c.r, 8);
  EXPECT_EQ(c.alpha, 16);
  EXPECT_EQ(c.targetParameters, (std::vector<std::string>{"gate_up_proj", "down_proj"}));
  ASSERT_EQ(c.rankPattern.size(), 1u);
  EXPECT_EQ(c.rankPattern[0].second, 16);
  ASSERT_EQ(c.alphaPattern.size(), 1u);
  EXPECT_EQ(c.alphaPattern[0].second, 32);
  EXPECT_EQ(c.targetModules.size(), 5u);
}

TEST(PeftConfigReader, FusedExpertNamesFollowPeftNesting) {
  using P = std::vector<std::pair<std::string, std::string>>;
  const std::string e = "model.layers.1.mlp.experts";
  EXPECT_EQ(hf::fusedExpertAdapterNames(e, {"gate_up_proj", "down_proj"}),
            (P{{"gate_up_proj", e + ".base_layer"}, {"down_proj", e}}));
  EXPECT_EQ(hf::fusedExpertAdapterNames(e, {"down_proj"}), (P{{"down_proj", e}}));
  EXPECT_EQ(hf::fusedExpertAdapterNames(e, {"q_proj"}), P{});
}

} // namespace

namespace {

std::string writeConfig(const std::string& name, const std::string& json) {
  std::string path = testing::TempDir() + "/" + name + ".json";
  std::ofstream(path) << json;
  return path;
}

TEST(PeftConfigReader, RefusesSettingsThatChangeTheAdapterSet) {
  for (const char* field :
       {R"("layers_to_transform": [0, 1])", R"("exclude_modules": ["o_proj"])", R"("bias": "all")",
        R"("use_dora": true)", R"("target_modules": ".*q_proj")"}) {
    std::string path = writeConfig(
        "bad", std::string(R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, )") + field + "}");
    try {
      kt::hf::readPeftConfig(path);
      ADD_FAILURE() << "accepted " << field;
    } catch (const kt::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(PeftConfigReader, DropoutIsAcceptedWithAWarning) {
  std::string path = writeConfig(
      "dropout", R"({"r": 4, "lora_alpha": 8, "lora_dropout": 0.05, "target_modules": ["q_proj"],
                    "layers_to_transform": null, "exclude_modules": null, "bias": "none"})");
  kt::hf::PeftConfig c = kt::hf::readPeftConfig(path);
  EXPECT_EQ(c.r, 4);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("lora_dropout"), std::string::npos);
}

} // namespace
