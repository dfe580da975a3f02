#include "tools/kt-tune/Candidates.h"

#include "compiler/cost/Units.h"

#include <algorithm>
#include <cstdio>

namespace kt::tune {

std::string Candidate::expertsText() const {
  return expertsOnGpu < 0 ? "auto" : std::to_string(expertsOnGpu);
}

std::string Candidate::offloadText() const {
  return offload == cost::PrefillOffload::Never    ? "never"
         : offload == cost::PrefillOffload::Always ? "always"
                                                   : "auto";
}

namespace {

bool isCpu(const std::string& spec) {
  return spec.rfind("cpu", 0) == 0;
}

// Bytes per device class and routed experts on accelerators, from the partition result.
void summarize(const cost::ModelGraph& g, Candidate* c) {
  const cost::Prediction& p = c->result.prediction;
  for (const cost::DeviceUse& d : p.devices)
    (isCpu(d.device) ? c->cpuBytes : c->gpuBytes) += d.weightBytes + d.kvBytes;
  const cost::Assignment& a = c->result.assignment;
  c->usesAccelerator = false;
  for (const std::string& d : a.unitDevice)
    c->usesAccelerator |= !isCpu(d);
  bool first = true;
  for (size_t u = 0; u < g.units.size(); ++u) {
    if (g.units[u].numExperts == 0)
      continue;
    int n = 0;
    for (const std::string& d : a.expertDevice[u])
      n += isCpu(d) ? 0 : 1;
    c->gpuExpertsMin = first ? n : std::min(c->gpuExpertsMin, n);
    c->gpuExpertsMax = first ? n : std::max(c->gpuExpertsMax, n);
    first = false;
    if (a.prefillOffloadMinTokens[u] > 0 && !a.offloadDevice.empty())
      c->usesAccelerator = true;
  }
  c->usesAccelerator |= c->gpuExpertsMax > 0;
}

bool samePlacement(const cost::Assignment& a, const cost::Assignment& b) {
  // The offload device matters only where some layer streams (a staging reserve alone does not
  // change the plan).
  auto streams = [](const cost::Assignment& x) {
    return std::any_of(x.prefillOffloadMinTokens.begin(), x.prefillOffloadMinTokens.end(),
                       [](int64_t t) { return t > 0; });
  };
  return a.unitDevice == b.unitDevice && a.expertDevice == b.expertDevice &&
         a.prefillOffloadMinTokens == b.prefillOffloadMinTokens &&
         (!streams(a) || a.offloadDevice == b.offloadDevice);
}

int maxRoutedExperts(const cost::ModelGraph& g) {
  int e = 0;
  for (const cost::Unit& u : g.units)
    e = std::max(e, u.numExperts);
  return e;
}

} // namespace

bool searchPlacements(const cost::ModelGraph& uniform, const cost::ModelGraph* measured,
                      const cost::CostModel& cost, const SearchOptions& options,
                      const std::function<void(const std::string&)>& progress,
                      std::vector<Candidate>* ranked, std::string* error) {
  ranked->clear();
  auto place = [&](const cost::ModelGraph& g, bool stats, int experts, cost::PrefillOffload off,
                   Candidate* c, std::string* why) {
    c->measuredStats = stats;
    c->expertsOnGpu = experts;
    c->offload = off;
    cost::PartitionOptions o = options.base;
    o.expertsOnGpu = experts;
    o.prefillOffload = off;
    if (!cost::partition(g, cost, o, &c->result, why))
      return false;
    summarize(g, c);
    return true;
  };

  // How many routed experts per layer fit on the accelerators: raise --experts-on-gpu until the
  // partitioner places fewer than asked in some layer (it then notes that they did not fit).
  const int numExperts = maxRoutedExperts(uniform);
  bool haveAccel = false;
  for (const cost::Device& d : cost.devices())
    haveAccel |= !d.isCpu();
  int fits = 0;
  if (haveAccel && numExperts > 0) {
    int lo = 0, hi = numExperts; // fits(lo) holds; find the largest
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      Candidate c;
      std::string why;
      if (place(uniform, false, mid, cost::PrefillOffload::Never, &c, &why) &&
          c.gpuExpertsMin >= mid)
        lo = mid;
      else
        hi = mid - 1;
    }
    fits = lo;
  }
  std::vector<int> values = {-1}; // the partitioner's own choice first
  const int steps = std::max(1, options.maxExpertValues - 1);
  for (int i = 0; i <= std::min(fits, steps); ++i) {
    const int v = fits <= steps ? i : int((int64_t(fits) * i + steps / 2) / steps);
    if (values.back() != v)
      values.push_back(v);
  }
  if (progress)
    progress("routed experts per layer that fit on accelerators: " + std::to_string(fits) + " of " +
             std::to_string(numExperts) + "; trying experts-on-gpu in {auto" +
             [&] {
               std::string s;
               for (size_t i = 1; i < values.size(); ++i)
                 s += ", " + std::to_string(values[i]);
               return s;
             }() +
             "}");

  std::string firstError;
  for (int pass = 0; pass < (measured ? 2 : 1); ++pass) {
    const cost::ModelGraph& g = pass == 0 ? uniform : *measured;
    for (int v : values)
      for (cost::PrefillOffload off : {cost::PrefillOffload::Auto, cost::PrefillOffload::Never,
                                       cost::PrefillOffload::Always}) {
        Candidate c;
        std::string why;
        if (place(g, pass == 1, v, off, &c, &why))
          ranked->push_back(std::move(c));
        else if (firstError.empty())
          firstError = why;
      }
    if (progress)
      progress("placed " + std::to_string(ranked->size()) + " candidates (" +
               (pass == 0 ? "uniform routing" : "measured expert heat") + ")");
  }
  if (ranked->empty()) {
    *error = firstError;
    return false;
  }
  std::stable_sort(ranked->begin(), ranked->end(), [](const Candidate& a, const Candidate& b) {
    if (a.decodeTokS() != b.decodeTokS())
      return a.decodeTokS() > b.decodeTokS();
    if (a.prefillTokS() != b.prefillTokS())
      return a.prefillTokS() > b.prefillTokS();
    return a.gpuBytes < b.gpuBytes;
  });
  for (size_t i = 0; i < ranked->size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if ((*ranked)[j].sameAs < 0 &&
          samePlacement((*ranked)[i].result.assignment, (*ranked)[j].result.assignment)) {
        (*ranked)[i].sameAs = int(j);
        break;
      }
  return true;
}

std::string candidateTable(const std::vector<Candidate>& ranked, size_t maxRows) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%4s  %-8s %-13s %-7s %12s %12s %10s %10s  %s\n", "rank",
                "stats", "experts-gpu", "offload", "prefill t/s", "decode t/s", "GPU", "CPU",
                "experts on GPU per layer");
  out += line;
  for (size_t i = 0; i < ranked.size() && i < maxRows; ++i) {
    const Candidate& c = ranked[i];
    std::string placed = std::to_string(c.gpuExpertsMin);
    if (c.gpuExpertsMax != c.gpuExpertsMin)
      placed += ".." + std::to_string(c.gpuExpertsMax);
    if (c.sameAs >= 0)
      placed += "  (same placement as #" + std::to_string(c.sameAs + 1) + ")";
    std::snprintf(line, sizeof line, "%4zu  %-8s %-13s %-7s %12.1f %12.1f %10s %10s  %s\n", i + 1,
                  c.measuredStats ? "measured" : "uniform", c.expertsText().c_str(),
                  c.offloadText().c_str(), c.prefillTokS(), c.decodeTokS(),
                  cost::formatBytes(c.gpuBytes).c_str(), cost::formatBytes(c.cpuBytes).c_str(),
                  placed.c_str());
    out += line;
  }
  if (ranked.size() > maxRows)
    out += "  ... " + std::to_string(ranked.size() - maxRows) + " more (see --report-json)\n";
  return out;
}

} // namespace kt::tune
