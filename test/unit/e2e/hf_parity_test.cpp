// End-to-end parity with Hugging Face transformers: every fixture checkpoint is compiled to a plan
// and run by the runtime; logits, hidden states and greedy decoding must match the references
// that transformers produced (test/fixtures/hf/*/reference.safetensors).
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "runtime/generate/Generator.h"
#include "runtime/io/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

using namespace kt;

namespace {

const double kTol = 1e-3; // fixtures/README.md: logits max |diff| < 1e-3

struct Reference {
  SafetensorsFile file;
  explicit Reference(const std::string& path) : file(path) {}
  std::vector<float> f32(const std::string& name) const {
    const TensorInfo* t = file.find(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t)
      return {};
    std::vector<float> v(size_t(t->numel()));
    std::memcpy(v.data(), file.data(*t), v.size() * 4);
    return v;
  }
  std::vector<int32_t> i32(const std::string& name) const {
    const TensorInfo* t = file.find(name);
    EXPECT_NE(t, nullptr) << name;
    if (!t)
      return {};
    std::vector<int32_t> v(size_t(t->numel()));
    std::memcpy(v.data(), file.data(*t), v.size() * 4);
    return v;
  }
  bool has(const std::string& name) const { return file.find(name) != nullptr; }
};

double maxAbsDiff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

class HfParity : public testing::TestWithParam<std::string> {
protected:
  void SetUp() override {
    dir_ = std::string(KT_FIXTURES_DIR) + "/hf/" + GetParam();
    ref_ = std::make_unique<Reference>(dir_ + "/reference.safetensors");
    hf::ModelDesc desc = hf::describeModel(dir_);
    numLayers_ = desc.config.numLayers;
    plan::PlanT p;
    compiler::CompileOptions opt;
    compiler::CompileStats stats;
    ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
    planPath_ = testing::TempDir() + "/" + GetParam() + ".ktplan";
    compiler::writePlanFile(p, planPath_);
    model_ = std::make_unique<Model>(planPath_, 2);
  }

  std::string dir_, planPath_;
  int numLayers_ = 0;
  std::unique_ptr<Reference> ref_;
  std::unique_ptr<Model> model_;
};

TEST_P(HfParity, PromptLogitsEachAlone) {
  const int64_t vocab = model_->info().vocab_size();
  for (int p = 0; p < 2; ++p) {
    std::string k = "p" + std::to_string(p);
    std::vector<int32_t> ids = ref_->i32(k + ".input_ids");
    std::vector<float> want = ref_->f32(k + ".logits");
    auto got = scoreSequences(*model_, {ids});
    ASSERT_EQ(got[0].size(), ids.size() * size_t(vocab));
    EXPECT_LT(maxAbsDiff(got[0].data(), want.data(), want.size()), kTol) << k;
  }
}

TEST_P(HfParity, PromptLogitsBatched) {
  std::vector<std::vector<int32_t>> seqs = {ref_->i32("p0.input_ids"), ref_->i32("p1.input_ids")};
  auto got = scoreSequences(*model_, seqs);
  for (int p = 0; p < 2; ++p) {
    std::vector<float> want = ref_->f32("p" + std::to_string(p) + ".logits");
    ASSERT_EQ(got[size_t(p)].size(), want.size());
    EXPECT_LT(maxAbsDiff(got[size_t(p)].data(), want.data(), want.size()), kTol)
        << "p" << p << " in a batch of 2";
  }
}

TEST_P(HfParity, HiddenStatesPerLayer) {
  std::vector<int32_t> ids = ref_->i32("p0.input_ids");
  std::map<std::string, std::vector<float>> taps;
  scoreSequences(*model_, {ids},
                 [&](const std::string& name, int, const float* rows, int64_t n, int64_t cols) {
                   taps[name].assign(rows, rows + n * cols);
                 });
  for (int l = 0; l <= numLayers_; ++l) {
    std::string name = "hidden." + std::to_string(l);
    ASSERT_TRUE(taps.count(name)) << name;
    std::vector<float> want = ref_->f32("p0." + name);
    ASSERT_EQ(taps[name].size(), want.size()) << name;
    EXPECT_LT(maxAbsDiff(taps[name].data(), want.data(), want.size()), kTol) << name;
  }
}

TEST_P(HfParity, GreedyDecodingWithKvCache) {
  const int64_t vocab = model_->info().vocab_size();
  GenerateRequest req;
  req.prompts = {ref_->i32("p0.input_ids"), ref_->i32("p1.input_ids")};
  req.maxNewTokens = 16;
  std::vector<std::vector<std::vector<float>>> stepLogits(2);
  GenerateCallbacks cb;
  cb.onLogits = [&](int seq, const float* row, int64_t n) {
    stepLogits[size_t(seq)].emplace_back(row, row + n);
  };
  GenerateResult r = generate(*model_, req, cb);
  for (int p = 0; p < 2; ++p) {
    std::string k = "p" + std::to_string(p);
    std::vector<int32_t> greedy = ref_->i32(k + ".greedy_ids");
    std::vector<float> logits = ref_->f32(k + ".greedy_logits");
    const size_t T = req.prompts[size_t(p)].size();
    std::vector<int32_t> want(greedy.begin() + std::ptrdiff_t(T), greedy.end());
    EXPECT_EQ(r.newIds[size_t(p)], want) << k;
    ASSERT_EQ(stepLogits[size_t(p)].size(), want.size());
    for (size_t s = 0; s < want.size(); ++s)
      EXPECT_LT(maxAbsDiff(stepLogits[size_t(p)][s].data(),
                           logits.data() + (T - 1 + s) * size_t(vocab), size_t(vocab)),
                kTol)
          << k << " decode step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParity,
                         testing::Values("llama", "mixtral", "qwen3_moe", "deepseek_v2",
                                         "deepseek_v2_yarn", "deepseek_v3"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

} // namespace
