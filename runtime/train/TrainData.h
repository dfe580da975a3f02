#pragma once
// Training data for kt-rt train: JSONL files, one example per line, in the formats fine-tuning
// tools use. Every example becomes token ids plus labels (-100 where no loss is taken):
//   {"text": "..."}                          tokenized with the plan's tokenizer (its BOS) + EOS;
//                                            loss on every token
//   {"messages": [{"role","content"}, ...]}  the plan's chat template; loss only on the tokens of
//                                            assistant turns (their end-of-turn token included)
//   {"instruction","input","output"}         Alpaca prompt ("### Instruction:\n...\n\n### Input:
//                                            \n...\n\n### Response:\n"), loss only on output + EOS
//   {"ids": [...]}                           pre-tokenized; labels = ids (shifted inside the loss)
// A line that is not one of these (bad JSON, wrong types, ids outside the vocabulary, a chat with
// no assistant turn) is a kt::Error naming FILE:LINE; nothing is skipped silently. Blank lines are
// allowed and ignored.
#include <cstdint>
#include <string>
#include <vector>

namespace kt::tok {
class Tokenizer;
}

namespace kt::train {

constexpr int32_t kIgnore = -100;

struct Example {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels; // same length; kIgnore = no loss at this token
  bool splittable = true;      // text/ids may be cut into consecutive chunks; prompts may not
};

// tokenizer may be null (plans without one): only {"ids"} lines are then accepted.
std::vector<Example> loadJsonl(const std::string& path, const tok::Tokenizer* tokenizer,
                               int64_t vocabSize);
// One line (exposed for tests); `where` is "FILE:LINE" for errors.
Example parseExample(const std::string& line, const std::string& where,
                     const tok::Tokenizer* tokenizer, int64_t vocabSize);

struct RowStats {
  int64_t examples = 0, rows = 0, tokens = 0, lossTokens = 0;
  int64_t truncated = 0; // non-splittable examples cut at maxSeqLen (tokens dropped)
  int64_t droppedTokens = 0;
};
// Rows of at most maxSeqLen tokens. pack: every example's tokens are concatenated and cut into
// maxSeqLen rows (the last one shorter), as transformers' run_clm group_texts does. Otherwise one
// row per example: text/ids longer than maxSeqLen are cut into consecutive rows, chat/instruction
// examples are truncated (counted in stats.truncated).
std::vector<Example> makeRows(const std::vector<Example>& examples, int64_t maxSeqLen, bool pack,
                              RowStats* stats);

// A [batch, seqLen] micro-batch, rows right-padded to the longest (pad labels = kIgnore).
struct TrainBatch {
  int64_t batch = 0, seqLen = 0;
  std::vector<int32_t> ids, labels, positions; // [batch * seqLen]
  int64_t tokens = 0;                          // real (non-padding) tokens
  int64_t predicted = 0; // positions whose next label is not ignored (the loss's count)
};
TrainBatch makeBatch(const std::vector<Example>& rows, const std::vector<size_t>& which,
                     int32_t padId);
// Positions t of each row with labels[t+1] != kIgnore.
int64_t predictedPositions(const TrainBatch& b);

// Deterministic order of `n` rows for an epoch (Fisher-Yates over a seeded mt19937_64), or the
// identity when !shuffle.
std::vector<size_t> epochOrder(size_t n, uint64_t seed, int64_t epoch, bool shuffle);

} // namespace kt::train
