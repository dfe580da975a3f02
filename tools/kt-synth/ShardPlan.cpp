#include "tools/kt-synth/ShardPlan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace kt::synth {

std::vector<Shard> planShards(const std::vector<uint64_t>& tensorBytes, uint64_t maxShardBytes) {
  std::vector<Shard> shards;
  Shard current;
  auto flush = [&] {
    if (!current.tensors.empty())
      shards.push_back(std::move(current));
    current = Shard();
  };
  for (size_t i = 0; i < tensorBytes.size(); ++i) {
    const uint64_t b = tensorBytes[i];
    if (b > maxShardBytes) { // too big for any shard: alone in its own
      flush();
      current.tensors.push_back(i);
      current.dataBytes = b;
      flush();
      continue;
    }
    if (current.dataBytes + b > maxShardBytes)
      flush();
    current.tensors.push_back(i);
    current.dataBytes += b;
  }
  flush();
  if (shards.empty())
    shards.emplace_back(); // a model with no tensors still gets a file
  if (shards.size() == 1) {
    shards[0].file = "model.safetensors";
  } else {
    char name[64];
    for (size_t s = 0; s < shards.size(); ++s) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      shards[s].file = name;
    }
  }
  return shards;
}

std::string shardIndexJson(const std::vector<Shard>& shards, const std::vector<std::string>& names,
                           const std::map<std::string, std::string>& metadata) {
  // As transformers writes it: json.dumps(index, indent=2, sort_keys=True). Built as text, since
  // nlohmann's ordered_json inserts in linear time (quadratic for 45k tensors).
  auto str = [](const std::string& v) { return nlohmann::json(v).dump(); };
  uint64_t total = 0;
  for (const Shard& s : shards)
    total += s.dataBytes;
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : metadata)
    meta[k] = str(v);
  meta["total_size"] = std::to_string(total);
  std::vector<std::pair<std::string, std::string>> map; // tensor -> file
  for (const Shard& s : shards)
    for (size_t t : s.tensors)
      map.emplace_back(names[t], s.file);
  std::sort(map.begin(), map.end());
  std::string j = "{\n  \"metadata\": {";
  bool first = true;
  for (const auto& [k, v] : meta) {
    j += std::string(first ? "" : ",") + "\n    " + str(k) + ": " + v;
    first = false;
  }
  j += "\n  },\n  \"weight_map\": {";
  first = true;
  for (const auto& [name, file] : map) {
    j += std::string(first ? "" : ",") + "\n    " + str(name) + ": " + str(file);
    first = false;
  }
  return j + "\n  }\n}\n";
}

bool parseByteSize(const std::string& text, uint64_t* out) {
  const char* s = text.c_str();
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (end == s || !(v > 0) || !std::isfinite(v))
    return false;
  std::string unit(end);
  for (char& ch : unit)
    ch = char(std::tolower(static_cast<unsigned char>(ch)));
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "kb")
    mult = 1e3;
  else if (unit == "mb")
    mult = 1e6;
  else if (unit == "gb")
    mult = 1e9;
  else if (unit == "tb")
    mult = 1e12;
  else if (unit == "kib")
    mult = 1024.0;
  else if (unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    return false;
  const double bytes = v * mult;
  if (bytes < 1 || bytes > 1.8e19)
    return false;
  *out = uint64_t(bytes);
  return true;
}

std::string humanBytes(uint64_t bytes) {
  char buf[32];
  const double b = double(bytes);
  if (b >= 1e12)
    std::snprintf(buf, sizeof buf, "%.2f TB", b / 1e12);
  else if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

} // namespace kt::synth
