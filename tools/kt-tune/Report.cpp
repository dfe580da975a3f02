#include "tools/kt-tune/Report.h"

#include "tools/kt-tune/Measure.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>

namespace kt::tune {

std::string heatSummary(const ExpertCounts& counts) {
  std::string out;
  char line[256];
  for (const auto& [layer, c] : counts.perExpert) {
    const double total = double(std::accumulate(c.begin(), c.end(), int64_t(0)));
    if (total <= 0 || c.empty())
      continue;
    const size_t quarter = std::max<size_t>(1, c.size() / 4);
    const auto hottest = std::max_element(c.begin(), c.end()) - c.begin();
    const auto coldest = std::min_element(c.begin(), c.end()) - c.begin();
    std::snprintf(line, sizeof line,
                  "  layer %-3d %zu experts: hottest #%ld %.1f%%, coldest #%ld %.1f%% of the "
                  "choices; the hottest %zu take %.1f%% (uniform: %.1f%%)",
                  layer, c.size(), long(hottest), 100.0 * double(c[size_t(hottest)]) / total,
                  long(coldest), 100.0 * double(c[size_t(coldest)]) / total, quarter,
                  100.0 * busiestQuarterShare(c), 100.0 * double(quarter) / double(c.size()));
    out += line;
    // One window's busiest quarter (a prefill chunk's skew, which the GPU's grouped MoE pays).
    if (auto w = counts.windowShareSum.find(layer);
        w != counts.windowShareSum.end() && counts.windows > 1) {
      std::snprintf(line, sizeof line, ", %.1f%% in one window",
                    100.0 * w->second / counts.windows);
      out += line;
    }
    out += "\n";
  }
  return out;
}

std::string measuredTable(const std::vector<Candidate>& ranked) {
  std::string out = "measured on this machine (kt-rt bench's code; predicted -> measured tok/s):\n";
  char line[512];
  bool any = false;
  for (size_t i = 0; i < ranked.size(); ++i) {
    const Candidate& c = ranked[i];
    if (c.measured) {
      std::snprintf(line, sizeof line,
                    "  #%-3zu prefill %10.1f -> %10.1f   decode %10.1f -> %10.1f  (x%.2f)\n", i + 1,
                    c.prefillTokS(), c.measuredPrefillTokS, c.decodeTokS(), c.measuredDecodeTokS,
                    c.decodeTokS() > 0 ? c.measuredDecodeTokS / c.decodeTokS() : 0.0);
    } else if (!c.skipped.empty()) {
      std::snprintf(line, sizeof line, "  #%-3zu not measured: %s\n", i + 1, c.skipped.c_str());
    } else {
      continue;
    }
    out += line;
    any = true;
  }
  if (!any)
    out += "  (none: --measure-top 0)\n";
  return out;
}

Winner pickWinner(const std::vector<Candidate>& ranked) {
  Winner w;
  int best = -1;
  for (size_t i = 0; i < ranked.size(); ++i)
    if (ranked[i].measured &&
        (best < 0 || ranked[i].measuredDecodeTokS > ranked[size_t(best)].measuredDecodeTokS))
      best = int(i);
  if (best >= 0) {
    w.rank = best;
    w.reason = "fastest measured decode";
  } else {
    w.rank = 0;
    w.reason = "best predicted decode; nothing was measured";
  }
  return w;
}

std::string reportJson(const ReportInfo& info, const std::vector<Candidate>& ranked,
                       const compiler::CompileOptions& base, const std::string& statsPath) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["model"] = info.model;
  j["profile"] = info.profile;
  j["calibration"] = {
      {"stats_file", info.statsPath}, {"tokens", info.tokens}, {"windows", info.windows}};
  ordered_json list = ordered_json::array();
  for (size_t i = 0; i < ranked.size(); ++i) {
    const Candidate& c = ranked[i];
    ordered_json e;
    e["rank"] = i + 1;
    e["stats"] = c.measuredStats ? "measured" : "uniform";
    e["experts_on_gpu"] = c.expertsText();
    e["prefill_offload"] = c.offloadText();
    e["flags"] = candidateFlags(candidateOptions(base, c, statsPath));
    e["predicted_prefill_tok_s"] = c.prefillTokS();
    e["predicted_decode_tok_s"] = c.decodeTokS();
    e["gpu_bytes"] = c.gpuBytes;
    e["cpu_bytes"] = c.cpuBytes;
    e["gpu_experts_per_layer"] = {c.gpuExpertsMin, c.gpuExpertsMax};
    e["uses_gpu"] = c.usesAccelerator;
    if (c.sameAs >= 0)
      e["same_placement_as_rank"] = c.sameAs + 1;
    if (c.measured)
      e["measured"] = {{"prefill_tok_s", c.measuredPrefillTokS},
                       {"decode_tok_s", c.measuredDecodeTokS}};
    if (!c.skipped.empty())
      e["not_measured"] = c.skipped;
    e["notes"] = c.result.notes;
    list.push_back(e);
  }
  j["candidates"] = list;
  j["winner"] = {{"rank", info.winner.rank + 1},
                 {"reason", info.winner.reason},
                 {"kt_compile", info.commandLine}};
  return j.dump(2) + "\n";
}

} // namespace kt::tune
