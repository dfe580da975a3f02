// Training data: the four JSONL formats and their loss masks, errors naming FILE:LINE, rows
// (splitting, truncation, packing) and [B, L] batches with right padding.
#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/train/TrainData.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <fstream>

namespace kt::train {
namespace {

std::unique_ptr<tok::Tokenizer> tokenizer(const std::string& name) {
  const std::string d = std::string(KT_FIXTURES_DIR) + "/tokenizers/" + name;
  std::string err;
  auto t = tok::Tokenizer::fromFiles(d + "/tokenizer.json", d + "/tokenizer_config.json", &err);
  EXPECT_TRUE(t) << err;
  return t;
}

// The text of each maximal run of trained tokens.
std::vector<std::string> trainedSpans(const tok::Tokenizer& t, const Example& e) {
  std::vector<std::string> spans;
  std::vector<int32_t> cur;
  for (size_t i = 0; i <= e.ids.size(); ++i) {
    if (i < e.ids.size() && e.labels[i] != kIgnore) {
      EXPECT_EQ(e.labels[i], e.ids[i]);
      cur.push_back(e.ids[i]);
    } else if (!cur.empty()) {
      spans.push_back(t.decode(cur, false));
      cur.clear();
    }
  }
  return spans;
}

TEST(TrainData, IdsLineTrainsOnEveryTokenAndAddsNothing) {
  Example e = parseExample(R"({"ids": [5, 7, 9, 11]})", "f:1", nullptr, 100);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{5, 7, 9, 11}));
  EXPECT_EQ(e.labels, e.ids);
}

TEST(TrainData, TextLineGetsBosAndEosAndFullLoss) {
  auto t = tokenizer("mistral");
  ASSERT_TRUE(t);
  Example e = parseExample(R"({"text": "Call me Ishmael."})", "f:1", t.get(), 32000);
  ASSERT_GE(e.ids.size(), 4u);
  EXPECT_EQ(e.ids.front(), t->bosId());
  EXPECT_EQ(e.ids.back(), t->eosId());
  EXPECT_EQ(e.labels, e.ids);
  EXPECT_EQ(t->decode(e.ids, true), "Call me Ishmael.");
}

TEST(TrainData, ChatTrainsOnlyOnAssistantTurnsWithTheirEndOfTurn) {
  auto t = tokenizer("qwen3");
  ASSERT_TRUE(t);
  Example e = parseExample(
      R"({"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Hi there"},
                       {"role": "assistant", "content": "Hello sailor"},
                       {"role": "user", "content": "Bye now"},
                       {"role": "assistant", "content": "Farewell friend"}]})",
      "f:1", t.get(), int64_t(t->vocabSize()));
  EXPECT_EQ(t->decode(e.ids, false).find("<|im_start|>system\nBe brief.<|im_end|>"), 0u);
  std::vector<std::string> spans = trainedSpans(*t, e);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_NE(spans[0].find("Hello sailor<|im_end|>"), std::string::npos) << spans[0];
  EXPECT_NE(spans[1].find("Farewell friend<|im_end|>"), std::string::npos) << spans[1];
  for (const std::string& s : spans) {
    EXPECT_EQ(s.find("Hi there"), std::string::npos) << s;
    EXPECT_EQ(s.find("Bye now"), std::string::npos) << s;
    EXPECT_EQ(s.find("<|im_start|>"), std::string::npos) << s; // the prompt header is not trained
  }
}

TEST(TrainData, InstructionTrainsOnlyOnTheOutputAndEos) {
  auto t = tokenizer("mistral");
  Example e = parseExample(
      R"({"instruction": "Name the whale.", "input": "Moby Dick", "output": "The white whale."})",
      "f:1", t.get(), 32000);
  std::vector<std::string> spans = trainedSpans(*t, e);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_NE(spans[0].find("The white whale.</s>"), std::string::npos) << spans[0];
  const std::string all = t->decode(e.ids, true);
  EXPECT_NE(all.find("### Instruction:\nName the whale.\n\n### Input:\nMoby Dick\n\n### Response:"),
            std::string::npos)
      << all;
  EXPECT_EQ(e.labels.back(), t->eosId());
  // Without input, no Input section.
  Example e2 =
      parseExample(R"({"instruction": "Say hi.", "output": "Hi."})", "f:1", t.get(), 32000);
  EXPECT_EQ(t->decode(e2.ids, true).find("### Input"), std::string::npos);
}

void expectError(const std::string& line, const std::string& needle,
                 const tok::Tokenizer* t = nullptr) {
  try {
    parseExample(line, "data.jsonl:7", t, 1000);
    ADD_FAILURE() << "accepted: " << line;
  } catch (const std::exception& ex) {
    const std::string m = ex.what();
    EXPECT_EQ(m.rfind("data.jsonl:7", 0), 0u) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << "'" << m << "' lacks '" << needle << "'";
  }
}

TEST(TrainData, MalformedLinesAreErrorsNamingFileAndLine) {
  auto t = tokenizer("qwen3");
  expectError("{\"ids\": [1, 2", "not valid JSON");
  expectError("[1, 2, 3]", "JSON object");
  expectError(R"({"ids": []})", "non-empty array");
  expectError(R"({"ids": [1, "2"]})", "\"ids\"[1] is not an integer");
  expectError(R"({"ids": [1, 5000]})", "outside the vocabulary");
  expectError(R"({"ids": [1]})", "fewer than 2 tokens");
  expectError(R"({"prompt": "x"})", "no known fields");
  expectError(R"({"text": "hello"})", "needs a tokenizer");
  expectError(R"({"text": 5})", "must be a string", t.get());
  expectError(R"({"text": ""})", "empty", t.get());
  expectError(R"({"messages": [{"role": "user", "content": "hi"}]})", "no assistant turn", t.get());
  expectError(R"({"messages": [{"role": "bot", "content": "hi"}]})", "messages[0]: unknown role",
              t.get());
  expectError(R"({"messages": [{"role": "assistant"}]})", "missing \"content\"", t.get());
  expectError(R"({"instruction": "x"})", "missing \"output\"", t.get());
}

TEST(TrainData, FileErrorsCarryTheLineNumberAndBlankLinesAreIgnored) {
  const std::string dir = testing_util::tempDir("kt_train_data_", "lines");
  const std::string path = dir + "/d.jsonl";
  std::ofstream(path) << "{\"ids\": [1, 2, 3]}\n\n{\"ids\": [4, 5]}\n{\"ids\": [6, oops]}\n";
  try {
    loadJsonl(path, nullptr, 100);
    ADD_FAILURE() << "accepted a bad line";
  } catch (const std::exception& ex) {
    EXPECT_NE(std::string(ex.what()).find(path + ":4: not valid JSON"), std::string::npos)
        << ex.what();
  }
  std::ofstream(path) << "{\"ids\": [1, 2, 3]}\n\n  \n{\"ids\": [4, 5]}";
  std::vector<Example> ex = loadJsonl(path, nullptr, 100);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[1].ids, (std::vector<int32_t>{4, 5}));
  std::ofstream(path) << "\n";
  EXPECT_THROW(loadJsonl(path, nullptr, 100), std::exception);
}

Example ex(std::vector<int32_t> ids, std::vector<int32_t> labels, bool splittable) {
  Example e;
  e.ids = std::move(ids);
  e.labels = labels.empty() ? e.ids : std::move(labels);
  e.splittable = splittable;
  return e;
}

TEST(TrainData, RowsSplitTextTruncatePromptsAndPack) {
  std::vector<Example> in = {ex({1, 2, 3, 4, 5, 6, 7}, {}, true),
                             ex({8, 9, 10, 11, 12}, {kIgnore, kIgnore, 10, 11, 12}, false),
                             ex({13, 14}, {}, true)};
  RowStats s;
  std::vector<Example> rows = makeRows(in, 3, false, &s);
  // 7 tokens -> 3 + 3 + (1: dropped, predicts nothing); 5 -> truncated to 3; 2 -> 2.
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(rows[1].ids, (std::vector<int32_t>{4, 5, 6}));
  EXPECT_EQ(rows[2].ids, (std::vector<int32_t>{8, 9, 10}));
  EXPECT_EQ(rows[2].labels, (std::vector<int32_t>{kIgnore, kIgnore, 10}));
  EXPECT_EQ(rows[3].ids, (std::vector<int32_t>{13, 14}));
  EXPECT_EQ(s.truncated, 1);
  EXPECT_EQ(s.droppedTokens, 2 + 1);
  EXPECT_EQ(s.tokens, 11);
  EXPECT_EQ(s.lossTokens, 2 + 2 + 1 + 1);

  std::vector<Example> packed = makeRows(in, 4, true, &s);
  ASSERT_EQ(packed.size(), 4u); // 14 tokens -> 4 + 4 + 4 + 2
  EXPECT_EQ(packed[1].ids, (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_EQ(packed[2].labels, (std::vector<int32_t>{kIgnore, 10, 11, 12}));
  EXPECT_EQ(packed[3].ids, (std::vector<int32_t>{13, 14}));
  EXPECT_THROW(makeRows(in, 1, false, nullptr), std::exception);
}

TEST(TrainData, BatchesPadRightWithIgnoredLabels) {
  std::vector<Example> rows = {ex({1, 2, 3, 4}, {}, true), ex({5, 6}, {kIgnore, 6}, true),
                               ex({7, 8, 9}, {}, true)};
  TrainBatch b = makeBatch(rows, {1, 0}, 0);
  EXPECT_EQ(b.batch, 2);
  EXPECT_EQ(b.seqLen, 4);
  EXPECT_EQ(b.ids, (std::vector<int32_t>{5, 6, 0, 0, 1, 2, 3, 4}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{kIgnore, 6, kIgnore, kIgnore, 1, 2, 3, 4}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(b.tokens, 6);
  EXPECT_EQ(b.predicted, 1 + 3);
}

TEST(TrainData, EpochOrderIsASeededPermutation) {
  std::vector<size_t> a = epochOrder(50, 7, 0, true), b = epochOrder(50, 7, 0, true),
                      c = epochOrder(50, 7, 1, true);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<size_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, epochOrder(50, 7, 0, false));
}

} // namespace
} // namespace kt::train
