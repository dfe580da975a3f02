#include "compiler/cost/ExpertStats.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>

namespace kt::cost {

namespace {
bool isLayerKey(const std::string& key) {
  return !key.empty() && key.size() < 9 &&
         std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
}
} // namespace

bool parseExpertStats(const std::string& jsonText, const std::string& origin, ExpertStats* out,
                      std::string* error) {
  using nlohmann::json;
  auto bad = [&](const std::string& what) {
    *error = origin + ": " + what;
    return false;
  };
  json doc;
  try {
    doc = json::parse(jsonText);
  } catch (const json::parse_error& e) {
    return bad(std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object())
    return bad("expected an object with a \"layers\" field");
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (it.key() != "layers" && it.key() != "tokens" && it.key() != "model" &&
        it.key() != "window_busiest_quarter" && it.key()[0] != '_')
      return bad(it.key() +
                 ": unknown field (expected layers, tokens, model, window_busiest_quarter)");
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_object())
    return bad("layers: missing or not an object of {\"<layer>\": [per-expert counts]}");
  out->origin = origin;
  out->layers.clear();
  for (auto it = layers->begin(); it != layers->end(); ++it) {
    const std::string& key = it.key();
    std::string path = "layers." + key;
    if (!isLayerKey(key))
      return bad(path + ": layer keys must be layer numbers such as \"3\"");
    const json& list = it.value();
    if (!list.is_array() || list.empty())
      return bad(path + ": expected a non-empty list of per-expert counts or frequencies");
    std::vector<double> values;
    double sum = 0;
    for (size_t e = 0; e < list.size(); ++e) {
      if (!list[e].is_number() || list[e].get<double>() < 0)
        return bad(path + "[" + std::to_string(e) + "]: expected a non-negative number, got " +
                   list[e].dump());
      values.push_back(list[e].get<double>());
      sum += values.back();
    }
    if (sum <= 0)
      return bad(path + ": all values are zero");
    out->layers[std::stoi(key)] = std::move(values);
  }
  out->windowBusiestQuarter.clear();
  if (auto shares = doc.find("window_busiest_quarter"); shares != doc.end()) {
    if (!shares->is_object())
      return bad("window_busiest_quarter: expected an object of {\"<layer>\": share}");
    for (auto it = shares->begin(); it != shares->end(); ++it) {
      const std::string path = "window_busiest_quarter." + it.key();
      const auto layer = out->layers.find(isLayerKey(it.key()) ? std::stoi(it.key()) : -1);
      if (layer == out->layers.end())
        return bad(path + ": not a layer of \"layers\"");
      const json& v = it.value();
      if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 1)
        return bad(path + ": expected a share in (0, 1], got " + v.dump());
      out->windowBusiestQuarter[layer->first] = v.get<double>();
    }
  }
  return true;
}

double busiestQuarterShare(std::vector<double> weights) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  if (weights.empty() || total <= 0)
    return 0;
  const size_t quarter = std::max<size_t>(1, weights.size() / 4);
  std::partial_sort(weights.begin(), weights.begin() + long(quarter), weights.end(),
                    std::greater<double>());
  return std::accumulate(weights.begin(), weights.begin() + long(quarter), 0.0) / total;
}

double windowBusiestQuarter(const ExpertStats* stats, int layer) {
  if (!stats)
    return 0;
  auto it = stats->windowBusiestQuarter.find(layer);
  return it == stats->windowBusiestQuarter.end() ? 0 : it->second;
}

bool loadExpertStats(const std::string& path, ExpertStats* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open the expert statistics file";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parseExpertStats(ss.str(), path, out, error);
}

bool expertProbabilities(const ExpertStats* stats, int layer, int numExperts, int topK,
                         std::vector<double>* probs, std::string* error) {
  probs->assign(size_t(numExperts), numExperts > 0 ? double(topK) / numExperts : 0.0);
  if (!stats)
    return true;
  auto it = stats->layers.find(layer);
  if (it == stats->layers.end())
    return true;
  const std::vector<double>& v = it->second;
  if (int(v.size()) != numExperts) {
    *error = stats->origin + ": layers." + std::to_string(layer) + " has " +
             std::to_string(v.size()) + " values but the model's layer " + std::to_string(layer) +
             " has " + std::to_string(numExperts) + " routed experts";
    return false;
  }
  double sum = 0;
  for (double x : v)
    sum += x;
  for (int e = 0; e < numExperts; ++e)
    (*probs)[size_t(e)] = std::min(1.0, double(topK) * v[size_t(e)] / sum);
  return true;
}

} // namespace kt::cost
