#include "compiler/cost/Explain.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace kt::cost {

namespace {

std::string pad(const std::string& s, size_t width, bool right = false) {
  if (s.size() >= width)
    return s;
  std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

std::string layerCell(int layer) {
  return layer >= 0 ? std::to_string(layer) : "-";
}

std::string tokensPerSecond(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : "%.1f", v);
  return buf;
}

std::string header(const ModelGraph& g, const HardwareProfile& profile, const PartitionOptions& o) {
  std::ostringstream os;
  os << "kt-partition: " << (g.name.empty() ? "model" : g.name) << " (" << g.numLayers
     << " layers) on " << profile.name;
  if (!profile.source.empty())
    os << " [" << profile.source << " numbers]";
  os << "\n  prefill of " << o.promptLen << " tokens; decode batch " << o.decodeBatch << " with "
     << o.promptLen << " cached positions; KV cache reserved for " << o.kvTokens
     << " positions per sequence\n";
  return os.str();
}

} // namespace

std::string explainText(const ModelGraph& g, const HardwareProfile& profile,
                        const PartitionOptions& o, const PartitionResult& r) {
  const Prediction& p = r.prediction;
  std::ostringstream os;
  os << header(g, profile, o) << "\n";
  std::string prefillHead = "prefill(" + std::to_string(o.promptLen) + ")";
  size_t dw = 22; // the device column grows for splits such as "29 gpu:6 / 29 gpu:7 / 6 cpu"
  for (const Row& row : p.rows)
    dw = std::max(dw, row.device.size() + 2);
  os << pad("layer", 6, true) << "  " << pad("group", 24) << pad("device", dw)
     << pad("weights", 11, true) << pad("kv cache", 11, true) << pad("decode/step", 13, true)
     << pad(prefillHead, 14, true) << "  prefill offload\n";
  double weights = 0, kv = 0;
  for (const Row& row : p.rows) {
    weights += row.weightBytes;
    kv += row.kvBytes;
    std::string offload;
    if (row.group == "routed experts" && row.prefillOffloadMinTokens > 0)
      offload = "stream from " + std::to_string(row.prefillOffloadMinTokens) + " tokens";
    os << pad(layerCell(row.layer), 6, true) << "  " << pad(row.group, 24) << pad(row.device, dw)
       << pad(formatBytes(row.weightBytes), 11, true)
       << pad(row.kvBytes > 0 ? formatBytes(row.kvBytes) : "-", 11, true)
       << pad(formatSeconds(row.decodeSeconds), 13, true)
       << pad(formatSeconds(row.prefillSeconds), 14, true) << (offload.empty() ? "" : "  ")
       << offload << "\n";
  }
  os << pad("", 6) << "  " << pad("link transfers", 24) << pad("", dw) << pad("", 11) << pad("", 11)
     << pad(formatSeconds(p.decodeTransferSeconds), 13, true)
     << pad(formatSeconds(p.prefillTransferSeconds), 14, true) << "\n";
  os << pad("", 6) << "  " << pad("total", 24) << pad("", dw) << pad(formatBytes(weights), 11, true)
     << pad(formatBytes(kv), 11, true) << pad(formatSeconds(p.decodeStepSeconds), 13, true)
     << pad(formatSeconds(p.prefillSeconds), 14, true) << "\n\n";

  os << pad("device", 12) << pad("weights", 12, true) << pad("kv cache", 12, true)
     << pad("budget", 12, true) << pad("decode busy", 14, true) << pad("prefill busy", 14, true)
     << "\n";
  for (const DeviceUse& d : p.devices) {
    os << pad(d.device, 12) << pad(formatBytes(d.weightBytes), 12, true)
       << pad(formatBytes(d.kvBytes), 12, true) << pad(formatBytes(d.budgetBytes), 12, true)
       << pad(formatSeconds(d.decodeBusySeconds), 14, true)
       << pad(formatSeconds(d.prefillBusySeconds), 14, true) << "\n";
  }
  os << "\npredicted: prefill " << o.promptLen << " tokens in " << formatSeconds(p.prefillSeconds)
     << " (" << tokensPerSecond(p.prefillTokensPerSecond) << " tok/s); decode "
     << formatSeconds(p.decodeStepSeconds)
     << " per step = " << tokensPerSecond(p.decodeTokensPerSecond) << " tok/s\n";
  os << "(routed-expert rows show what they add to the layer beyond the router and shared "
        "experts, which they overlap)\n";
  for (const std::string& n : r.notes)
    os << "note: " << n << "\n";
  return os.str();
}

std::string explainJson(const ModelGraph& g, const HardwareProfile& profile,
                        const PartitionOptions& o, const PartitionResult& r) {
  using nlohmann::json;
  const Prediction& p = r.prediction;
  auto bytes = [](double b) -> json {
    if (b >= kUnlimitedBytes / 2)
      return nullptr; // unlimited
    return b;
  };
  json j;
  j["model"] = g.name;
  j["num_layers"] = g.numLayers;
  j["profile"] = profile.name;
  j["profile_source"] = profile.source;
  j["prompt_len"] = o.promptLen;
  j["decode_batch"] = o.decodeBatch;
  j["kv_tokens"] = o.kvTokens;
  j["rows"] = json::array();
  for (const Row& row : p.rows) {
    json x;
    x["layer"] = row.layer;
    x["group"] = row.group;
    x["device"] = row.device;
    x["weight_bytes"] = row.weightBytes;
    x["kv_bytes"] = row.kvBytes;
    x["decode_seconds"] = row.decodeSeconds;
    x["prefill_seconds"] = row.prefillSeconds;
    if (row.group == "routed experts") {
      x["experts"] = row.expertsPerDevice;
      x["prefill_offload_min_tokens"] = row.prefillOffloadMinTokens;
    }
    j["rows"].push_back(x);
  }
  j["devices"] = json::array();
  for (const DeviceUse& d : p.devices) {
    j["devices"].push_back({{"device", d.device},
                            {"weight_bytes", d.weightBytes},
                            {"kv_bytes", d.kvBytes},
                            {"budget_bytes", bytes(d.budgetBytes)},
                            {"decode_busy_seconds", d.decodeBusySeconds},
                            {"prefill_busy_seconds", d.prefillBusySeconds}});
  }
  j["transfers"] = {{"decode_seconds", p.decodeTransferSeconds},
                    {"prefill_seconds", p.prefillTransferSeconds}};
  j["predicted"] = {{"prefill_seconds", p.prefillSeconds},
                    {"prefill_tokens_per_second", p.prefillTokensPerSecond},
                    {"decode_step_seconds", p.decodeStepSeconds},
                    {"decode_tokens_per_second", p.decodeTokensPerSecond}};
  j["offload_device"] = r.assignment.offloadDevice;
  j["notes"] = r.notes;
  return j.dump(2) + "\n";
}

} // namespace kt::cost
