#include "tools/kt-tune/Calibrate.h"

#include "compiler/cost/ExpertStats.h"
#include "runtime/exec/RouteTap.h"
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

namespace kt::tune {

std::map<int, std::pair<int, int>> moeLayers(const LoadedPlan& plan) {
  std::map<int, std::pair<int, int>> layers;
  const plan::EntryPoint* ep = plan.entryPoint("prefill");
  if (!ep)
    throw Error(plan.origin() + ": the plan has no prefill entry point");
  for (const plan::Step* s : *ep->steps()) {
    if (s->op() != plan::OpKind::Moe)
      continue;
    const plan::MoeAttrs& a = *s->attrs_as_MoeAttrs();
    const int layer = a.layer() >= 0 ? a.layer() : s->layer();
    if (layer < 0)
      throw Error(plan.origin() + ": MoE step '" + s->name()->str() +
                  "' has no layer index; recompile the plan with this kt-compile");
    layers[layer] = {a.num_experts(), a.experts_per_token()};
  }
  if (layers.empty())
    throw Error(plan.origin() + ": the model has no MoE layer, so there are no experts to count");
  return layers;
}

namespace {

// Whitespace-separated decimal ids, each checked against the vocabulary.
std::vector<int32_t> readIds(const std::string& path, int64_t vocab) {
  const std::string text = readTextFile(path);
  std::vector<int32_t> ids;
  size_t i = 0, n = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    const std::string word = text.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(word.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v >= vocab)
      throw Error(path + ": entry " + std::to_string(n) + " ('" + word +
                  "') is not a token id in 0.." + std::to_string(vocab - 1));
    ids.push_back(int32_t(v));
    ++n;
    i = j;
  }
  return ids;
}

} // namespace

CalibInput calibrationInput(const Model& model, const std::string& textPath,
                            const std::string& idsPath) {
  CalibInput in;
  if (!idsPath.empty()) {
    in.ids = readIds(idsPath, model.info().vocab_size());
    if (in.ids.empty())
      throw Error(idsPath + ": no token ids");
    return in;
  }
  const std::string text = readTextFile(textPath);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(textPath + ": the calibration text is empty");
  std::unique_ptr<tok::Tokenizer> tokenizer;
  try {
    tokenizer = planTokenizer(model.plan());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                "; kt-tune needs it to read --calib text (or give token ids with --calib-ids)");
  }
  in.ids = tokenizer->encode(text, false);
  in.bos = tokenizer->bosId();
  return in;
}

ExpertCounts countExpertActivations(Model& model, const CalibInput& input, const CalibOptions& opts,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  const std::map<int, std::pair<int, int>> layers = moeLayers(model.plan());
  if (opts.windowLen < 2 || opts.windowLen > model.info().max_position())
    throw Error("--calib-len must be in 2.." + std::to_string(model.info().max_position()) +
                " (the model's maximum positions), got " + std::to_string(opts.windowLen));
  std::vector<int32_t> ids = input.ids;
  if (opts.maxTokens >= 0 && int64_t(ids.size()) > opts.maxTokens)
    ids.resize(static_cast<size_t>(opts.maxTokens));
  if (ids.empty())
    throw Error("no calibration tokens (is --max-tokens 0?)");

  ExpertCounts counts;
  for (const auto& [layer, ek] : layers) {
    counts.perExpert[layer].assign(static_cast<size_t>(ek.first), 0);
    counts.topK[layer] = ek.second;
  }
  // The tap sees [T, K] chosen ids per MoE step; one window = one sequence in one prefill.
  std::set<int> seenThisWindow;
  std::map<int, std::vector<int64_t>> windowCounts; // this window's choices per layer
  std::string tapError;
  std::function<void(const std::string&, const Activation&)> sink = [&](const std::string& name,
                                                                        const Activation& a) {
    if (name.rfind("route.", 0) != 0)
      return;
    const int layer = std::atoi(name.c_str() + 6);
    auto it = counts.perExpert.find(layer);
    if (it == counts.perExpert.end() || a.cols != counts.topK[layer] ||
        int64_t(a.i.size()) != a.rows * a.cols) {
      tapError = "tap '" + name + "' does not match the plan's MoE layers";
      return;
    }
    seenThisWindow.insert(layer);
    std::vector<int64_t>& c = it->second;
    std::vector<int64_t>& w = windowCounts[layer];
    w.resize(c.size(), 0);
    for (int32_t e : a.i) {
      if (e < 0 || e >= int32_t(c.size())) {
        tapError = "tap '" + name + "' reports expert " + std::to_string(e) + " of " +
                   std::to_string(c.size());
        return;
      }
      ++c[static_cast<size_t>(e)];
      ++w[static_cast<size_t>(e)];
    }
  };
  const int32_t bos = input.bos;
  const int64_t body = bos >= 0 ? opts.windowLen - 1 : opts.windowLen;
  for (int64_t start = 0; start < int64_t(ids.size()); start += body) {
    const int64_t end = std::min<int64_t>(start + body, int64_t(ids.size()));
    Batch b;
    if (bos >= 0)
      b.ids.push_back(bos);
    b.ids.insert(b.ids.end(), ids.begin() + start, ids.begin() + end);
    const int64_t len = b.tokens();
    for (int64_t p = 0; p < len; ++p)
      b.positions.push_back(int32_t(p));
    b.chunks.push_back({0, 0, len, 0});
    b.outputRows.push_back(len - 1); // the logits are not needed: compute one row only
    KvCache kv(model.plan().root(), 1);
    seenThisWindow.clear();
    windowCounts.clear();
    model.executor().run("prefill", b, kv, &sink);
    if (!tapError.empty())
      throw Error(model.plan().origin() + ": " + tapError);
    if (seenThisWindow.size() != layers.size())
      throw Error(model.plan().origin() + ": only " + std::to_string(seenThisWindow.size()) +
                  " of " + std::to_string(layers.size()) +
                  " MoE layers reported their routing (a backend without the route tap?)");
    for (const auto& [layer, w] : windowCounts)
      counts.windowShareSum[layer] += busiestQuarterShare(w);
    counts.tokens += len;
    ++counts.windows;
    if (progress)
      progress(end, int64_t(ids.size()));
  }
  return counts;
}

std::string expertStatsJson(const ExpertCounts& counts, const std::string& modelName) {
  // One layer per line: readable and diff-able, still plain JSON.
  std::string out = "{\n  \"model\": " + nlohmann::json(modelName).dump() +
                    ",\n  \"tokens\": " + std::to_string(counts.tokens) +
                    ",\n  \"_windows\": " + std::to_string(counts.windows) + ",\n  \"_top_k\": " +
                    nlohmann::json(counts.topK.empty() ? 0 : counts.topK.begin()->second).dump() +
                    ",\n  \"layers\": {";
  bool first = true;
  for (const auto& [layer, c] : counts.perExpert) {
    out += std::string(first ? "" : ",") + "\n    \"" + std::to_string(layer) +
           "\": " + nlohmann::json(c).dump();
    first = false;
  }
  out += "\n  }";
  if (counts.windows > 0 && !counts.windowShareSum.empty()) {
    out += ",\n  \"window_busiest_quarter\": {";
    first = true;
    for (const auto& [layer, sum] : counts.windowShareSum) {
      const double share = std::round(1000.0 * sum / double(counts.windows)) / 1000.0;
      out += std::string(first ? "" : ", ") + "\"" + std::to_string(layer) +
             "\": " + nlohmann::json(share).dump();
      first = false;
    }
    out += "}";
  }
  out += "\n}\n";
  return out;
}

double busiestQuarterShare(const std::vector<int64_t>& counts) {
  return cost::busiestQuarterShare(std::vector<double>(counts.begin(), counts.end()));
}

} // namespace kt::tune
