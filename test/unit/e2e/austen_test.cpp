// The bundled demo model (examples/austen-moe, a trained DeepSeek-V2-style MoE in bf16): greedy
// decoding in f32 must reproduce the continuations transformers produced (reference.json).
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "runtime/generate/Generator.h"
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/generate/Session.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

using namespace kt;

TEST(AustenMoe, GreedyContinuationsMatchTransformers) {
  const std::string dir = std::string(KT_EXAMPLES_DIR) + "/austen-moe";
  nlohmann::json ref;
  std::ifstream(dir + "/reference.json") >> ref;
  ASSERT_EQ(ref["greedy"].size(), 3u);

  hf::ModelDesc desc = hf::describeModel(dir);
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, compiler::CompileOptions(), &p, &stats));
  std::string planPath = testing::TempDir() + "/austen.ktplan";
  compiler::writePlanFile(p, planPath);
  Model model(planPath, 2);

  GenerateRequest req;
  std::vector<std::vector<int32_t>> want;
  std::vector<std::vector<int32_t>> top5;
  for (const auto& g : ref["greedy"]) {
    std::vector<int32_t> prompt = g["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> all = g["greedy_ids"].get<std::vector<int32_t>>();
    req.prompts.push_back(prompt);
    want.emplace_back(all.begin() + std::ptrdiff_t(prompt.size()), all.end());
    top5.push_back(g["last_logits_top5"].get<std::vector<int32_t>>());
  }
  req.maxNewTokens = int(want[0].size());
  for (const auto& w : want)
    req.maxNewTokens = std::max(req.maxNewTokens, int(w.size()));
  // Greedy with no stop rule, as the reference was produced; all three prompts in one batch.
  GenerateResult r = generate(model, req);
  for (size_t i = 0; i < 3; ++i) {
    std::vector<int32_t> got(r.newIds[i].begin(),
                             r.newIds[i].begin() + std::ptrdiff_t(want[i].size()));
    EXPECT_EQ(got, want[i]) << "prompt " << i << ": " << ref["greedy"][i]["prompt"];
  }
  // One forward pass over each full greedy sequence: its last row ranks the reference's top five.
  std::vector<std::vector<int32_t>> full;
  for (const auto& g : ref["greedy"])
    full.push_back(g["greedy_ids"].get<std::vector<int32_t>>());
  auto logits = scoreSequences(model, full);
  const int64_t vocab = model.info().vocab_size();
  for (size_t i = 0; i < 3; ++i) {
    const float* row = logits[i].data() + (int64_t(full[i].size()) - 1) * vocab;
    std::vector<int32_t> idx(static_cast<size_t>(vocab));
    for (size_t j = 0; j < idx.size(); ++j)
      idx[j] = int32_t(j);
    std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    EXPECT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + 5), top5[i]) << "prompt " << i;
  }
}

// Text in, text out: the embedded tokenizer gives the reference prompt ids, the decoded greedy
// sequence is the reference text, and the session API (used by run/chat) generates the same tokens
// and reuses the KV cache of a previous turn.
TEST(AustenMoe, TextPathMatchesReference) {
  const std::string dir = std::string(KT_EXAMPLES_DIR) + "/austen-moe";
  nlohmann::json ref;
  std::ifstream(dir + "/reference.json") >> ref;
  hf::ModelDesc desc = hf::describeModel(dir);
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, compiler::CompileOptions(), &p, &stats));
  p.tokenizer = std::make_unique<plan::TokenizerBlobT>();
  p.tokenizer->tokenizer_json = desc.tokenizerJson;
  p.tokenizer->tokenizer_config_json = desc.tokenizerConfigJson;
  std::string planPath = testing::TempDir() + "/austen_text.ktplan";
  compiler::writePlanFile(p, planPath);
  Model model(planPath, 2);
  auto tok = planTokenizer(model.plan());

  for (const auto& g : ref["greedy"]) {
    std::vector<int32_t> promptIds = g["prompt_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> all = g["greedy_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(g["prompt"].get<std::string>(), true), promptIds);
    EXPECT_EQ(tok->decode(all, true), g["text"].get<std::string>());

    Session session(model);
    Sampler greedy(SamplerConfig{});
    SessionLimits limits;
    limits.maxNewTokens = int(all.size() - promptIds.size());
    std::vector<int32_t> got;
    TurnStats st = session.generate(promptIds, limits, greedy, [&](int32_t id) {
      got.push_back(id);
      return true;
    });
    EXPECT_EQ(got, std::vector<int32_t>(all.begin() + std::ptrdiff_t(promptIds.size()), all.end()));
    EXPECT_EQ(st.reusedTokens, 0);
    // A follow-up request that extends the conversation reuses everything but the last token.
    std::vector<int32_t> next = all;
    next.push_back(all.back());
    std::vector<int32_t> more;
    limits.maxNewTokens = 2;
    st = session.generate(next, limits, greedy, [&](int32_t id) {
      more.push_back(id);
      return true;
    });
    EXPECT_EQ(st.reusedTokens, int64_t(all.size()) - 1);
    EXPECT_EQ(more.size(), 2u);
  }
}
