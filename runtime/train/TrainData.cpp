#include "runtime/train/TrainData.h"

#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

namespace kt::train {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& where, const std::string& msg) {
  throw Error(where + ": " + msg);
}

const tok::Tokenizer& needTokenizer(const tok::Tokenizer* t, const std::string& where,
                                    const char* field) {
  if (!t)
    bad(where, std::string("\"") + field +
                   "\" needs a tokenizer, and the plan embeds none (use {\"ids\": [...]} lines)");
  return *t;
}

std::string stringField(const json& j, const char* key, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required)
      bad(where, std::string("missing \"") + key + "\"");
    return "";
  }
  if (!it->is_string())
    bad(where, std::string("\"") + key + "\" must be a string, not " + it->type_name());
  return it->get<std::string>();
}

void appendEos(const tok::Tokenizer& t, std::vector<int32_t>& ids) {
  if (t.eosId() >= 0)
    ids.push_back(t.eosId());
}

size_t commonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n])
    ++n;
  return n;
}

Example fromIds(const json& v, const std::string& where, int64_t vocab) {
  if (!v.is_array() || v.empty())
    bad(where, "\"ids\" must be a non-empty array of token ids");
  Example e;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer())
      bad(where, "\"ids\"[" + std::to_string(i) + "] is not an integer");
    const int64_t id = v[i].get<int64_t>();
    if (id < 0 || id >= vocab)
      bad(where, "\"ids\"[" + std::to_string(i) + "] = " + std::to_string(id) +
                     " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
    e.ids.push_back(int32_t(id));
  }
  e.labels = e.ids;
  return e;
}

Example fromMessages(const json& v, const std::string& where, const tok::Tokenizer& t) {
  if (!v.is_array() || v.empty())
    bad(where, "\"messages\" must be a non-empty array");
  std::vector<tok::ChatMessage> msgs;
  bool assistant = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string w = where + ": messages[" + std::to_string(i) + "]";
    if (!v[i].is_object())
      bad(w, "must be an object with \"role\" and \"content\"");
    tok::ChatMessage m{stringField(v[i], "role", w, true), stringField(v[i], "content", w, true)};
    if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool")
      bad(w, "unknown role \"" + m.role + "\" (system, user, assistant or tool)");
    assistant |= m.role == "assistant";
    msgs.push_back(std::move(m));
  }
  if (!assistant)
    bad(where, "\"messages\" has no assistant turn: nothing to learn from");
  Example e;
  e.ids = t.encodeChat(msgs, false);
  e.labels.assign(e.ids.size(), kIgnore);
  e.splittable = false;
  // Assistant turn i starts where the rendering of the conversation before it plus the generation
  // prompt stops matching the whole rendering, and ends with its end-of-turn token. (Rendering the
  // conversation up to turn i is not a prefix in general: Qwen3 writes <think> blocks only on
  // turns after the last user message.) Families without an end-of-turn token end the turn where
  // the rendering up to and including it stops matching.
  const std::vector<int32_t> stops = t.stopIds();
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].role != "assistant")
      continue;
    std::vector<tok::ChatMessage> before(msgs.begin(), msgs.begin() + long(i));
    std::vector<tok::ChatMessage> upto(msgs.begin(), msgs.begin() + long(i) + 1);
    const size_t b = commonPrefix(e.ids, t.encodeChat(before, true));
    size_t u = b;
    while (u < e.ids.size() && std::find(stops.begin(), stops.end(), e.ids[u]) == stops.end())
      ++u;
    if (u < e.ids.size())
      ++u; // the end-of-turn token is learned too: it is how the model stops
    else
      u = std::max(b, commonPrefix(e.ids, t.encodeChat(upto, false)));
    for (size_t k = b; k < u; ++k)
      e.labels[k] = e.ids[k];
  }
  return e;
}

Example fromInstruction(const json& j, const std::string& where, const tok::Tokenizer& t) {
  const std::string instruction = stringField(j, "instruction", where, true);
  const std::string input = stringField(j, "input", where, false);
  const std::string output = stringField(j, "output", where, true);
  std::string prompt = "### Instruction:\n" + instruction + "\n\n";
  if (!input.empty())
    prompt += "### Input:\n" + input + "\n\n";
  prompt += "### Response:\n";
  Example e;
  e.ids = t.encode(prompt, true);
  const size_t promptLen = e.ids.size();
  std::vector<int32_t> out = t.encode(output, false);
  e.ids.insert(e.ids.end(), out.begin(), out.end());
  appendEos(t, e.ids);
  e.labels = e.ids;
  std::fill(e.labels.begin(), e.labels.begin() + long(promptLen), kIgnore);
  e.splittable = false;
  return e;
}

} // namespace

Example parseExample(const std::string& line, const std::string& where,
                     const tok::Tokenizer* tokenizer, int64_t vocabSize) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded())
    bad(where, "not valid JSON");
  if (!j.is_object())
    bad(where, "each line must be a JSON object, not " + std::string(j.type_name()));
  Example e;
  if (j.contains("ids")) {
    e = fromIds(j["ids"], where, vocabSize);
  } else if (j.contains("messages")) {
    e = fromMessages(j["messages"], where, needTokenizer(tokenizer, where, "messages"));
  } else if (j.contains("instruction") || j.contains("output")) {
    e = fromInstruction(j, where, needTokenizer(tokenizer, where, "instruction"));
  } else if (j.contains("text")) {
    const tok::Tokenizer& t = needTokenizer(tokenizer, where, "text");
    const std::string text = stringField(j, "text", where, true);
    if (text.empty())
      bad(where, "\"text\" is empty");
    e.ids = t.encode(text, true);
    appendEos(t, e.ids);
    e.labels = e.ids;
  } else {
    bad(where, "no known fields: expected \"text\", \"messages\", \"instruction\"/\"output\" or "
               "\"ids\"");
  }
  for (int32_t id : e.ids)
    if (id < 0 || id >= vocabSize)
      bad(where, "token id " + std::to_string(id) + " is outside the model's vocabulary of " +
                     std::to_string(vocabSize));
  if (e.ids.size() < 2)
    bad(where, "fewer than 2 tokens: nothing to predict");
  return e;
}

std::vector<Example> loadJsonl(const std::string& path, const tok::Tokenizer* tokenizer,
                               int64_t vocabSize) {
  const std::string text = readTextFile(path);
  std::vector<Example> out;
  size_t start = 0;
  int64_t lineNo = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    ++lineNo;
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    out.push_back(parseExample(line, path + ":" + std::to_string(lineNo), tokenizer, vocabSize));
  }
  if (out.empty())
    throw Error(path + ": no training examples");
  return out;
}

std::vector<Example> makeRows(const std::vector<Example>& examples, int64_t maxSeqLen, bool pack,
                              RowStats* stats) {
  if (maxSeqLen < 2)
    throw Error("--max-seq-len must be at least 2");
  RowStats s;
  s.examples = int64_t(examples.size());
  std::vector<Example> rows;
  auto addChunks = [&](const Example& e) {
    for (size_t i = 0; i < e.ids.size(); i += size_t(maxSeqLen)) {
      size_t n = std::min(e.ids.size() - i, size_t(maxSeqLen));
      Example r;
      r.ids.assign(e.ids.begin() + long(i), e.ids.begin() + long(i + n));
      r.labels.assign(e.labels.begin() + long(i), e.labels.begin() + long(i + n));
      rows.push_back(std::move(r));
    }
  };
  if (pack) {
    Example all;
    for (const Example& e : examples) {
      all.ids.insert(all.ids.end(), e.ids.begin(), e.ids.end());
      all.labels.insert(all.labels.end(), e.labels.begin(), e.labels.end());
    }
    addChunks(all);
  } else {
    for (const Example& e : examples) {
      if (int64_t(e.ids.size()) <= maxSeqLen || e.splittable) {
        addChunks(e);
        continue;
      }
      ++s.truncated;
      s.droppedTokens += int64_t(e.ids.size()) - maxSeqLen;
      Example r;
      r.ids.assign(e.ids.begin(), e.ids.begin() + maxSeqLen);
      r.labels.assign(e.labels.begin(), e.labels.begin() + maxSeqLen);
      rows.push_back(std::move(r));
    }
  }
  // A one-token row predicts nothing; merge it away rather than train on padding.
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [&](const Example& r) {
                              if (r.ids.size() >= 2)
                                return false;
                              s.droppedTokens += int64_t(r.ids.size());
                              return true;
                            }),
             rows.end());
  for (const Example& r : rows) {
    s.tokens += int64_t(r.ids.size());
    for (size_t t = 1; t < r.labels.size(); ++t)
      s.lossTokens += r.labels[t] != kIgnore;
  }
  s.rows = int64_t(rows.size());
  if (stats)
    *stats = s;
  return rows;
}

TrainBatch makeBatch(const std::vector<Example>& rows, const std::vector<size_t>& which,
                     int32_t padId) {
  TrainBatch b;
  b.batch = int64_t(which.size());
  for (size_t i : which)
    b.seqLen = std::max(b.seqLen, int64_t(rows[i].ids.size()));
  const size_t n = size_t(b.batch * b.seqLen);
  b.ids.assign(n, padId);
  b.labels.assign(n, kIgnore);
  b.positions.resize(n);
  for (int64_t r = 0; r < b.batch; ++r) {
    const Example& e = rows[which[size_t(r)]];
    std::copy(e.ids.begin(), e.ids.end(), b.ids.begin() + r * b.seqLen);
    std::copy(e.labels.begin(), e.labels.end(), b.labels.begin() + r * b.seqLen);
    for (int64_t t = 0; t < b.seqLen; ++t)
      b.positions[size_t(r * b.seqLen + t)] = int32_t(t);
    b.tokens += int64_t(e.ids.size());
  }
  b.predicted = predictedPositions(b);
  return b;
}

int64_t predictedPositions(const TrainBatch& b) {
  int64_t n = 0;
  for (int64_t r = 0; r < b.batch; ++r)
    for (int64_t t = 1; t < b.seqLen; ++t)
      n += b.labels[size_t(r * b.seqLen + t)] != kIgnore;
  return n;
}

std::vector<size_t> epochOrder(size_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i)
    order[i] = i;
  if (!shuffle)
    return order;
  std::mt19937_64 rng(seed * 1000003u + uint64_t(epoch));
  for (size_t i = n; i > 1; --i) {
    std::uniform_int_distribution<size_t> d(0, i - 1);
    std::swap(order[i - 1], order[d(rng)]);
  }
  return order;
}

} // namespace kt::train
