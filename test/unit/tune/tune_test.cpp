// kt-tune end to end: the expert-stats file it writes (shape, sums, and counts equal to an
// independent recount through a different execution path), kt-compile accepting that file, the
// candidate table and report, bad input, and the plan's MoeAttrs.layer that names the route taps.
#include "runtime/exec/Model.h"
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/io/MappedFile.h"
#include "runtime/plan/PlanReader.h"

#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

namespace fs = std::filesystem;
using namespace kt;
using testing_util::expectError;
using testing_util::Result;
using testing_util::run;

namespace {

const std::string kTune = testing_util::tool("kt-tune");
using testing_util::kCompile;
const std::string kFixtures = KT_FIXTURES_DIR;
// A trained DeepSeek-V2-architecture model with a tokenizer (fixtures README, ../models): real
// text gives it skewed, meaningful routing. Layers 1-3 are MoE (16 routed experts, top-4).
const std::string kAusten = kFixtures + "/../models/austen-moe-11m";
const std::string kCorpus = kFixtures + "/../corpus/mobydick.txt";
const std::string kThisVm = std::string(KT_EXAMPLES_DIR) + "/hw/this-vm.json";

// Calibration settings shared by kt-tune and the recount.
constexpr int kWindow = 64, kMaxTokens = 200;

std::string tempDir(const std::string& name) {
  return testing_util::tempDir("kt_tune_", name);
}

// The first `bytes` of the corpus, cut at a line end: a small calibration text.
std::string calibrationText(const std::string& dir, size_t bytes) {
  std::string text = readTextFile(kCorpus).substr(0, bytes);
  text = text.substr(0, text.rfind('\n') + 1);
  std::string path = dir + "/calib.txt";
  std::ofstream(path) << text;
  return path;
}

nlohmann::json readJson(const std::string& path) {
  nlohmann::json j;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  in >> j;
  return j;
}

// Expert counts of the calibration text recomputed without kt-tune: the test's own plan, its own
// windowing, and the decode entry point (one token per step, the KV cache, T = 1 MoE steps)
// instead of kt-tune's prefill; counts come from the route taps of each decode step.
std::map<int, std::vector<int64_t>> recount(const std::string& planPath,
                                            const std::string& textPath, int64_t* tokens) {
  Model model(planPath, 2, "off");
  auto tok = planTokenizer(model.plan());
  std::vector<int32_t> ids = tok->encode(readTextFile(textPath), false);
  if (ids.size() > size_t(kMaxTokens))
    ids.resize(size_t(kMaxTokens));
  const int32_t bos = tok->bosId();
  std::map<int, std::vector<int64_t>> counts;
  std::function<void(const std::string&, const Activation&)> sink = [&](const std::string& name,
                                                                        const Activation& a) {
    if (name.rfind("route.", 0) != 0)
      return;
    auto& c = counts[std::stoi(name.substr(6))];
    c.resize(16, 0);
    ASSERT_EQ(a.rows, 1); // decode: one token per step
    ASSERT_EQ(a.cols, 4);
    std::set<int32_t> distinct(a.i.begin(), a.i.end());
    EXPECT_EQ(distinct.size(), 4u) << "a token chose one expert twice in " << name;
    for (int32_t e : a.i)
      ++c.at(size_t(e));
  };
  *tokens = 0;
  const size_t body = size_t(bos >= 0 ? kWindow - 1 : kWindow);
  for (size_t start = 0; start < ids.size(); start += body) {
    std::vector<int32_t> window;
    if (bos >= 0)
      window.push_back(bos);
    window.insert(window.end(), ids.begin() + long(start),
                  ids.begin() + long(std::min(ids.size(), start + body)));
    KvCache kv(model.plan().root(), 1);
    for (size_t p = 0; p < window.size(); ++p) {
      Batch b;
      b.ids = {window[p]};
      b.positions = {int32_t(p)};
      b.chunks.push_back({0, 0, 1, int64_t(p)});
      model.executor().run("decode", b, kv, &sink);
      ++*tokens;
    }
  }
  return counts;
}

class TuneTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!fs::exists(kAusten + "/model.safetensors"))
      GTEST_SKIP() << "no " << kAusten;
  }
};

TEST_F(TuneTest, StatsMatchAnIndependentRecountAndFeedKtCompile) {
  const std::string d = tempDir("stats");
  const std::string text = calibrationText(d, 4000);
  const std::string stats = d + "/stats.json";
  Result r =
      run(kTune + " " + kAusten + " --calib " + text + " --calib-len " + std::to_string(kWindow) +
          " --max-tokens " + std::to_string(kMaxTokens) + " --threads 2 --stats-out " + stats);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("expert heat over"), std::string::npos) << r.output;

  nlohmann::json j = readJson(stats);
  const int64_t tokens = j.at("tokens").get<int64_t>();
  // 200 text tokens in windows of 63 + BOS: 4 windows, 204 routed tokens.
  EXPECT_EQ(tokens, kMaxTokens + 4);
  ASSERT_EQ(j.at("layers").size(), 3u) << j.dump();
  std::map<int, std::vector<int64_t>> got;
  for (auto it = j["layers"].begin(); it != j["layers"].end(); ++it) {
    std::vector<int64_t> c = it.value().get<std::vector<int64_t>>();
    ASSERT_EQ(c.size(), 16u) << "layer " << it.key();
    int64_t sum = 0;
    for (int64_t v : c)
      sum += v;
    EXPECT_EQ(sum, tokens * 4) << "layer " << it.key() << ": every token picks 4 experts";
    got[std::stoi(it.key())] = c;
  }
  EXPECT_EQ(got.count(1) + got.count(2) + got.count(3), 3u) << "MoE layers are 1, 2, 3";
  // Per layer, one window's busiest quarter (4 of 16 experts): at least its quarter of the
  // choices, and on average at least the whole set's busiest quarter takes (each window's
  // busiest experts take at least what the set's busiest take of that window).
  ASSERT_TRUE(j.contains("window_busiest_quarter")) << j.dump();
  for (const auto& [layer, c] : got) {
    std::vector<int64_t> sorted = c;
    std::sort(sorted.begin(), sorted.end(), std::greater<int64_t>());
    const double whole = double(sorted[0] + sorted[1] + sorted[2] + sorted[3]) / double(tokens * 4);
    const double window = j["window_busiest_quarter"].at(std::to_string(layer)).get<double>();
    EXPECT_GE(window, 0.25) << "layer " << layer;
    EXPECT_LE(window, 1.0) << "layer " << layer;
    EXPECT_GE(window, whole - 0.02) << "layer " << layer; // the last window is shorter
  }

  // The recount runs its own plan (kt-compile), so a kt-tune that counted the wrong windows,
  // layers or experts fails here.
  const std::string plan = d + "/austen.ktplan";
  r = run(kCompile + " " + kAusten + " -o " + plan);
  ASSERT_EQ(r.code, 0) << r.output;
  int64_t recountTokens = 0;
  std::map<int, std::vector<int64_t>> want = recount(plan, text, &recountTokens);
  EXPECT_EQ(recountTokens, tokens);
  for (const auto& [layer, c] : want)
    EXPECT_EQ(got[layer], c) << "layer " << layer;
  // Real text on a trained model is not uniform: some expert takes well over 1/16 of a layer.
  int64_t hottest = 0;
  for (int64_t v : got[1])
    hottest = std::max(hottest, v);
  EXPECT_GT(double(hottest), 1.5 * double(tokens * 4) / 16) << j.dump();

  // kt-compile reads the file (same format, same layer keys) and places with it.
  r = run(kCompile + " " + kAusten + " -o " + d + "/placed.ktplan --hw " + kThisVm +
          " --expert-stats " + stats + " --explain");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("routed experts"), std::string::npos) << r.output;
}

TEST_F(TuneTest, SearchPrintsRankedCandidatesAndMeasuresTheBest) {
  const std::string d = tempDir("search");
  const std::string text = calibrationText(d, 2000);
  const std::string report = d + "/report.json";
  Result r = run(kTune + " " + kAusten + " --calib " + text +
                 " --calib-len 64 --max-tokens 128 --threads 2 --stats-out " + d +
                 "/stats.json --hw " + kThisVm +
                 " --prompt-len 32 --gen-len 4 --reps 1 --measure-top 1 --report-json " + report);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* s : {"candidate placements on this-vm", "prefill t/s", "decode t/s",
                        "measured on this machine", "best placement", "kt-compile "})
    EXPECT_NE(r.output.find(s), std::string::npos) << "missing '" << s << "':\n" << r.output;
  nlohmann::json j = readJson(report);
  const auto& cands = j.at("candidates");
  // this-vm has no GPU: experts-on-gpu auto and 0, three offload modes, two kinds of stats.
  EXPECT_EQ(cands.size(), 12u) << j.dump(1);
  int measured = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    EXPECT_GT(cands[i].at("predicted_decode_tok_s").get<double>(), 0) << i;
    EXPECT_EQ(cands[i].at("gpu_bytes").get<double>(), 0) << i;
    if (i > 0) { // ranked by predicted decode speed
      EXPECT_GE(cands[i - 1]["predicted_decode_tok_s"].get<double>(),
                cands[i]["predicted_decode_tok_s"].get<double>());
    }
    if (cands[i].contains("measured")) {
      ++measured;
      EXPECT_GT(cands[i]["measured"].at("decode_tok_s").get<double>(), 0);
      EXPECT_GT(cands[i]["measured"].at("prefill_tok_s").get<double>(), 0);
    }
  }
  EXPECT_EQ(measured, 1);
  const std::string line = j.at("winner").at("kt_compile").get<std::string>();
  EXPECT_NE(line.find("--experts-on-gpu"), std::string::npos) << line;
  // The winning line compiles as printed (relative to this folder: the model path is absolute).
  r = run("cd " + d + " && " + kCompile + line.substr(std::string("kt-compile").size()));
  EXPECT_EQ(r.code, 0) << line << "\n" << r.output;
}

// A fixture model without a tokenizer, calibrated from token ids: qwen3_moe (layer 0 dense, layers
// 1 and 2 MoE with 16 experts, top-4).
TEST(TuneIds, TokenIdsCalibrateAModelWithoutATokenizer) {
  const std::string d = tempDir("ids");
  std::mt19937 rng(3);
  {
    std::ofstream ids(d + "/ids.txt");
    for (int i = 0; i < 90; ++i)
      ids << (rng() % 320) << (i % 10 == 9 ? "\n" : " ");
  }
  Result r = run(kTune + " " + kFixtures + "/hf/qwen3_moe --calib-ids " + d +
                 "/ids.txt --calib-len 40 --threads 2 --stats-out " + d + "/stats.json");
  ASSERT_EQ(r.code, 0) << r.output;
  nlohmann::json j = readJson(d + "/stats.json");
  EXPECT_EQ(j.at("tokens").get<int64_t>(), 90); // no BOS without a tokenizer
  ASSERT_EQ(j.at("layers").size(), 2u) << j.dump();
  for (const char* layer : {"1", "2"}) {
    auto c = j["layers"].at(layer).get<std::vector<int64_t>>();
    ASSERT_EQ(c.size(), 16u);
    int64_t sum = 0;
    for (int64_t v : c)
      sum += v;
    EXPECT_EQ(sum, 90 * 4) << layer;
  }
}

TEST(TuneErrors, BadInputIsNamed) {
  const std::string d = tempDir("errors");
  const std::string qwen = kFixtures + "/hf/qwen3_moe";
  expectError(run(kTune + " " + qwen + " --calib " + d + "/missing.txt"), {"missing.txt"});
  std::ofstream(d + "/bad_ids.txt") << "1 2 x3 4";
  expectError(run(kTune + " " + qwen + " --calib-ids " + d + "/bad_ids.txt"),
              {"bad_ids.txt", "entry 2", "x3"});
  std::ofstream(d + "/big_ids.txt") << "1 2 320";
  expectError(run(kTune + " " + qwen + " --calib-ids " + d + "/big_ids.txt"),
              {"big_ids.txt", "0..319"});
  std::ofstream(d + "/text.txt") << "some text";
  expectError(run(kTune + " " + qwen + " --calib " + d + "/text.txt"),
              {"tokenizer", "--calib-ids"});
  std::ofstream(d + "/ok_ids.txt") << "1 2 3";
  expectError(run(kTune + " " + kFixtures + "/hf/llama --calib-ids " + d + "/ok_ids.txt"),
              {"no MoE layer"});
  Result r = run(kTune + " " + qwen + " --calib " + d + "/text.txt --bogus");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--bogus"), std::string::npos) << r.output;
  r = run(kTune + " " + qwen + " --calib " + d + "/text.txt --measure-top 2");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--hw"), std::string::npos) << r.output;
  expectError(run(kTune + " " + d + "/nothing-here --calib " + d + "/text.txt"), {"nothing-here"});
  r = run(kTune + " --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("--measure-top"), std::string::npos);
}

// The emitter copies kt.moe's `layer` into MoeAttrs.layer (it names the "route.<layer>" tap and
// keys the stats file); here both MoE fixtures, whose MoE layers are known from their configs.
TEST(TunePlan, MoeAttrsCarryTheLayer) {
  const std::string d = tempDir("plan");
  for (const auto& [arch, layers] :
       std::map<std::string, std::set<int>>{{"qwen3_moe", {1, 2}}, {"deepseek_v2", {1, 2}}}) {
    const std::string plan = d + "/" + arch + ".ktplan";
    Result r = run(kCompile + " " + kFixtures + "/hf/" + arch + " -o " + plan);
    ASSERT_EQ(r.code, 0) << r.output;
    LoadedPlan lp = LoadedPlan::fromFile(plan);
    std::set<int> seen;
    for (const char* entry : {"prefill", "decode"})
      for (const plan::Step* s : *lp.entryPoint(entry)->steps())
        if (s->op() == plan::OpKind::Moe) {
          EXPECT_EQ(s->attrs_as_MoeAttrs()->layer(), s->layer()) << arch << " " << entry;
          seen.insert(s->attrs_as_MoeAttrs()->layer());
        }
    EXPECT_EQ(seen, layers) << arch;
  }
}

} // namespace
