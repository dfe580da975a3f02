// The LoRA flags of the kt-compile binary: --train lora with --lora-config / explicit flags,
// --adapter merging, and the errors a user meets (exit code and message).
#include "runtime/plan/PlanReader.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

using kt::testing_util::run;
using kt::testing_util::tempDir;

namespace {

const std::string kCompile = std::string(KT_BINARY_DIR) + "/tools/kt-compile/kt-compile";
std::string fixture(const std::string& m) {
  return std::string(KT_FIXTURES_DIR) + "/hf/" + m;
}

TEST(LoraCli, TrainWithPeftConfigWritesAValidTrainPlan) {
  std::string d = tempDir("kt_lora_cli_", "config");
  auto r = run(kCompile + " " + fixture("deepseek_v3") + " -o " + d +
               "/p.ktplan --train lora --lora-config " + fixture("deepseek_v3") +
               "/lora/adapter_init/adapter_config.json");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("train_step: 19 LoRA adapters"), std::string::npos) << r.output;
  kt::LoadedPlan p = kt::LoadedPlan::fromFile(d + "/p.ktplan");
  ASSERT_NE(p.entryPoint("train_step"), nullptr);
  EXPECT_EQ(p.root().adapters()->size(), 19u);
}

TEST(LoraCli, ExplicitFlagsOverrideTheConfig) {
  std::string d = tempDir("kt_lora_cli_", "override");
  auto r = run(kCompile + " " + fixture("qwen3_moe") + " -o " + d +
               "/p.ktplan --train lora --lora-config " + fixture("qwen3_moe") +
               "/lora/adapter_init/adapter_config.json --lora-targets o_proj --lora-r 4 "
               "--lora-alpha 4 --lora-target-parameters down_proj");
  ASSERT_EQ(r.code, 0) << r.output;
  kt::LoadedPlan p = kt::LoadedPlan::fromFile(d + "/p.ktplan");
  // o_proj of 3 layers + down_proj of the 2 MoE layers (layer 0 is dense in the fixture).
  ASSERT_EQ(p.root().adapters()->size(), 5u);
  for (const kt::plan::Adapter* a : *p.root().adapters()) {
    EXPECT_EQ(a->r(), 4) << a->name()->str();
    EXPECT_EQ(a->alpha(), 4.0) << a->name()->str();
  }
  EXPECT_EQ(p.root().training()->target_modules()->size(), 1u);
}

TEST(LoraCli, AdapterIsMerged) {
  std::string d = tempDir("kt_lora_cli_", "merge");
  auto r = run(kCompile + " " + fixture("llama") + " -o " + d + "/p.ktplan --adapter " +
               fixture("llama") + "/lora/adapter_final");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("merged 21 LoRA adapter(s)"), std::string::npos) << r.output;
  kt::LoadedPlan p = kt::LoadedPlan::fromFile(d + "/p.ktplan");
  bool merged = false;
  for (const kt::plan::WeightFile* f : *p.root().weight_files())
    merged |= f->path()->str() == d + "/p.ktplan.lora-merged";
  EXPECT_TRUE(merged) << "the plan reads the merged weights";
}

TEST(LoraCli, Errors) {
  std::string d = tempDir("kt_lora_cli_", "errors");
  const std::string base = kCompile + " " + fixture("llama") + " -o " + d + "/p.ktplan ";
  struct Case {
    std::string args, message;
    int code;
  } cases[] = {
      {"--lora-r 4", "--lora-r needs --train lora", 2},
      {"--train lora", "--train lora needs --lora-targets", 2},
      {"--train lora --lora-r 0 --lora-targets q_proj", "--lora-r must be positive", 2},
      {"--train lora --lora-alpha x --lora-targets q_proj", "--lora-alpha expects a positive", 2},
      {"--train lora --lora-targets q_proj,qkv", "target module 'qkv' matches no projection", 1},
      {"--train lora --lora-target-parameters gate_up_proj", "has no routed experts", 1},
      {"--train lora --lora-config " + d + "/none.json", "none.json", 1},
      {"--adapter " + fixture("deepseek_v2") + "/lora/adapter_final",
       "matches no projection of this model", 1},
  };
  for (const Case& c : cases) {
    auto r = run(base + c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
  }
}

} // namespace
