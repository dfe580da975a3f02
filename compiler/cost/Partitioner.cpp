#include "compiler/cost/Partitioner.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

namespace kt::cost {

double streamingSlotBytes(const Unit& u) {
  const double cpu = u.expertBytesOn(/*cpu=*/true), gpu = u.expertBytesOn(false);
  if (!u.hasCpuStorage || u.cpuStorage.expertsUnpacked)
    return std::max(cpu, gpu);
  const WeightFormat f = u.expertFormat; // the GPU's form: narrower than f32 means bf16 widening
  const double widenedBytesPerWeight =
      f == WeightFormat::BF16 || f == WeightFormat::Int8 || f == WeightFormat::Int4 ? 2 : 4;
  return cpu + u.expertFlopsPerToken / 2 * widenedBytesPerWeight;
}

bool parsePrefillOffload(const std::string& text, PrefillOffload* out) {
  if (text == "auto")
    *out = PrefillOffload::Auto;
  else if (text == "never")
    *out = PrefillOffload::Never;
  else if (text == "always")
    *out = PrefillOffload::Always;
  else
    return false;
  return true;
}

bool parsePlacementOverride(const std::string& text, PlacementOverride* out, std::string* why) {
  size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    *why = "placement override '" + text +
           "' is not REGEX=DEVICE (e.g. 'layers\\.[0-9]+\\.attn=gpu:0')";
    return false;
  }
  out->pattern = text.substr(0, eq);
  out->device = text.substr(eq + 1);
  try {
    std::regex check(out->pattern);
  } catch (const std::regex_error& e) {
    *why = "placement override '" + text + "': invalid regex '" + out->pattern + "': " + e.what();
    return false;
  }
  return true;
}

namespace {

constexpr int kNoExpert = -1;
// The GPUs as one pool while items are chosen; mapped to real GPUs in program order afterwards
// (assignPool), so that each GPU holds a run of consecutive layers with their experts.
const char* const kGpuPool = "gpu:*";

// A placeable thing: a unit (with the units tied to it) or one routed expert.
struct Item {
  int unit = 0;
  int expert = kNoExpert;
  double bytes = 0;                      // on an accelerator
  double cpuBytes = 0;                   // on a CPU node (--cpu-quant may pack it smaller)
  std::map<std::string, double> benefit; // accelerator spec -> decode seconds saved
  double density = 0;                    // best benefit / bytes
  bool forced = false;                   // --experts-on-gpu N: goes on if it fits, gain or not
};

class Partitioner {
public:
  Partitioner(const ModelGraph& g, const CostModel& cost, const PartitionOptions& o)
      : g_(g), cost_(cost), o_(o) {}

  bool run(PartitionResult* r, std::string* error) {
    error_ = error;
    setup();
    if (!resolvePins() || !placePins())
      return false;
    reserveStaging();
    greedy();
    if (!fitCpu())
      return false;
    assignPool();
    if (!assignCpuNodes())
      return false;
    refine();
    settleStrandedExperts();
    prefillOffload();
    Assignment& a = r->assignment;
    a.unitDevice = unitDev_;
    a.expertDevice = expertDev_;
    a.prefillOffloadMinTokens = offloadMin_;
    a.offloadDevice = offloadDevice_;
    a.kvBytes = kv_;
    r->budgets = budget_;
    r->notes = notes_;
    PredictOptions po;
    po.promptLen = o_.promptLen;
    po.decodeBatch = o_.decodeBatch;
    r->prediction = predict(g_, cost_, a, po, budget_);
    return true;
  }

private:
  bool fail(const std::string& what) {
    *error_ = what;
    return false;
  }

  Device dev(const std::string& spec) const {
    Device d;
    cost_.find(spec, &d);
    return d;
  }

  int leader(int i) const {
    while (g_.units[size_t(i)].tiedTo >= 0)
      i = g_.units[size_t(i)].tiedTo;
    return i;
  }

  Shape decodeShape() const {
    return {double(o_.decodeBatch), double(o_.promptLen), double(o_.decodeBatch)};
  }

  void setup() {
    size_t n = g_.units.size();
    unitDev_.assign(n, "");
    expertDev_.assign(n, {});
    offloadMin_.assign(n, 0);
    kv_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const Unit& u = g_.units[i];
      expertDev_[i].assign(size_t(u.numExperts), "");
      kv_[i] = u.kvBytesPerToken * double(o_.kvTokens) * double(o_.decodeBatch);
    }
    double cpuMemory = 0;
    for (const Device& d : cost_.devices()) {
      if (d.isCpu()) {
        cpus_.push_back(d);
        cpuMemory += cost_.memoryBytes(d);
      } else {
        accels_.push_back(d);
      }
    }
    double cpuTotal =
        o_.cpuMemBytes >= 0 ? o_.cpuMemBytes : cpuMemory - cost_.profile().cpu.reservedBytes;
    for (const Device& d : cpus_)
      budget_[d.spec] = std::max(0.0, cpuTotal * cost_.memoryBytes(d) / cpuMemory);
    for (const Device& d : accels_) {
      double own = cost_.memoryBytes(d) - cost_.reservedBytes(d);
      budget_[d.spec] = d.cls == DeviceClass::Gpu && o_.gpuMemBytes >= 0 ? o_.gpuMemBytes : own;
    }
    for (const auto& kv : budget_)
      used_[kv.first] = 0;
  }

  // Prefill offload streams CPU-held experts through a double buffer on one GPU; reserve it when
  // some experts will have to stay on the CPU (everything cannot fit on the accelerators, or
  // --experts-on-gpu / placement pins keep some there).
  void reserveStaging() {
    reserveActivations();
    size_t n = g_.units.size();
    double maxExpert = 0, total = 0, accelBudget = 0;
    bool pinnedToCpu = false;
    for (size_t i = 0; i < n; ++i) {
      const Unit& u = g_.units[i];
      // kt-rt's staging (runtime/exec/cuda/ExpertStream) holds two experts (streamingSlotBytes).
      // The total is what the accelerators would have to hold.
      maxExpert = std::max(maxExpert, streamingSlotBytes(u));
      total += u.memoryBytesOn(false) + kv_[i] + u.expertBytesOn(false) * u.numExperts;
      for (const std::string& spec : expertPin_[i])
        pinnedToCpu = pinnedToCpu || (!spec.empty() && isCpuSpec(spec));
    }
    for (const Device& d : accels_)
      accelBudget += budget_[d.spec];
    bool someOnCpu = total > accelBudget || o_.expertsOnGpu >= 0 || pinnedToCpu;
    if (o_.prefillOffload != PrefillOffload::Never && maxExpert > 0 && someOnCpu) {
      std::string best;
      for (const Device& d : accels_)
        if (d.cls == DeviceClass::Gpu && (best.empty() || budget_[d.spec] > budget_[best]))
          best = d.spec;
      double staging = 2 * maxExpert;
      if (!best.empty() && budget_[best] - used_[best] >= staging) {
        offloadDevice_ = best;
        used_[best] += staging;
        stagingNote_ = notes_.size();
        notes_.push_back("prefill offload: " + formatBytes(staging) + " of " + best +
                         " is reserved to stream CPU-held experts during long prefills");
      } else if (o_.prefillOffload == PrefillOffload::Always) {
        notes_.push_back("prefill-offload=always ignored: no GPU has " + formatBytes(staging) +
                         " free for the streaming buffer");
      }
    }
  }

  // Overrides (later ones win) over placements already in the IR.
  bool resolvePins() {
    size_t n = g_.units.size();
    unitPin_.assign(n, "");
    expertPin_.assign(n, {});
    std::vector<std::string> pinWhy(n);
    for (size_t i = 0; i < n; ++i) {
      const Unit& u = g_.units[i];
      unitPin_[i] = u.pinned;
      expertPin_[i] = u.expertPinned;
      expertPin_[i].resize(size_t(u.numExperts));
    }
    for (const PlacementOverride& ov : o_.overrides) {
      Device d;
      if (!cost_.find(ov.device, &d))
        return fail("placement override '" + ov.pattern + "=" + ov.device +
                    "': the profile has no device '" + ov.device + "' (it has " + deviceList() +
                    ")");
      std::regex re(ov.pattern);
      bool any = false;
      auto matches = [&](const std::vector<std::string>& names) {
        for (const std::string& s : names)
          if (std::regex_search(s, re))
            return true;
        return false;
      };
      for (size_t i = 0; i < n; ++i) {
        const Unit& u = g_.units[i];
        if (matches(u.names)) {
          unitPin_[i] = ov.device;
          any = true;
        }
        for (int e = 0; e < u.numExperts; ++e) {
          if (size_t(e) < u.expertNames.size() && matches(u.expertNames[size_t(e)])) {
            expertPin_[i][size_t(e)] = ov.device;
            any = true;
          }
        }
      }
      if (!any)
        notes_.push_back("placement override '" + ov.pattern + "=" + ov.device +
                         "' matched no weight");
    }
    // A pin on a tied unit pins the unit that owns the shared weights.
    for (size_t i = 0; i < n; ++i) {
      int l = leader(int(i));
      if (l != int(i) && !unitPin_[i].empty())
        unitPin_[size_t(l)] = unitPin_[i];
    }
    for (size_t i = 0; i < n; ++i) {
      const Unit& u = g_.units[i];
      std::vector<std::pair<std::string, std::string>> checks; // device, op kind
      if (!unitPin_[i].empty())
        checks.push_back({unitPin_[i], u.opKind});
      for (const std::string& p : expertPin_[i])
        if (!p.empty())
          checks.push_back({p, "routed_experts"});
      for (const auto& [spec, kind] : checks) {
        Device d;
        if (!cost_.find(spec, &d))
          return fail("unit '" + unitName(i) + "' is placed on '" + spec +
                      "', which the hardware profile does not have (it has " + deviceList() + ")");
        if (!cost_.supports(d, kind))
          return fail("unit '" + unitName(i) + "' is placed on " + spec + ", which cannot run '" +
                      kind + "' ops (its supported_ops do not list it)");
      }
    }
    return true;
  }

  std::string deviceList() const {
    std::string s;
    for (const Device& d : cost_.devices())
      s += (s.empty() ? "" : ", ") + d.spec;
    return s;
  }

  std::string unitName(size_t i) const {
    const Unit& u = g_.units[i];
    std::string layer = u.layer >= 0 ? "layer " + std::to_string(u.layer) + " " : "";
    return layer + groupName(u);
  }

  // Bytes a leader unit brings to a CPU node (`cpu`) or an accelerator: its own, its KV cache and
  // its tied units'.
  double groupBytes(size_t i, bool cpu) const {
    double b = g_.units[i].memoryBytesOn(cpu) + kv_[i];
    for (size_t j = 0; j < g_.units.size(); ++j)
      if (j != i && leader(int(j)) == int(i))
        b += g_.units[j].memoryBytesOn(cpu) + kv_[j];
    return b;
  }
  bool isCpuSpec(const std::string& spec) const { return spec != kGpuPool && dev(spec).isCpu(); }

  bool placePins() {
    for (size_t i = 0; i < g_.units.size(); ++i) {
      if (leader(int(i)) == int(i) && !unitPin_[i].empty()) {
        unitDev_[i] = unitPin_[i];
        used_[unitPin_[i]] += groupBytes(i, isCpuSpec(unitPin_[i]));
      }
      for (size_t e = 0; e < expertPin_[i].size(); ++e) {
        if (!expertPin_[i][e].empty()) {
          expertDev_[i][e] = expertPin_[i][e];
          used_[expertPin_[i][e]] += g_.units[i].expertBytesOn(isCpuSpec(expertPin_[i][e]));
        }
      }
    }
    for (const Device& d : accels_) {
      if (used_[d.spec] > budget_[d.spec] + 0.5)
        return fail("pinned placements (placement overrides or placements in the input) put " +
                    formatBytes(used_[d.spec]) + " on " + d.spec + ", over its budget of " +
                    formatBytes(budget_[d.spec]) +
                    (d.cls == DeviceClass::Gpu ? " (--gpu-mem)" : ""));
    }
    return true;
  }

  // Decode seconds of a leader unit and its tied units on `d`.
  double groupTime(size_t i, const Device& d, const Shape& s) const {
    double t = 0;
    for (size_t j = 0; j < g_.units.size(); ++j)
      if (leader(int(j)) == int(i))
        t += cost_.unitTime(g_.units[j], d, s);
    return t;
  }

  bool groupSupported(size_t i, const Device& d) const {
    for (size_t j = 0; j < g_.units.size(); ++j)
      if (leader(int(j)) == int(i) && !cost_.supports(d, g_.units[j].opKind))
        return false;
    return true;
  }

  // One expert's marginal decode time on `d`: op overheads are paid per device and layer, not per
  // expert, so they are left out.
  double expertTime(const Unit& u, int e, const Device& d, const Shape& s) const {
    double p = u.expertProb[size_t(e)];
    double touched = 1.0 - std::pow(1.0 - p, s.tokens);
    // expertsTime of one expert, without the per-op overhead (paid per device and layer).
    double flops = s.tokens * p * u.expertFlopsPerToken;
    const CpuStorage* form = u.cpuForm(d.isCpu());
    bool plain = form && form->expertsUnpacked;
    double compute =
        cost_.flopsSeconds(d, plain ? 0 : flops, plain ? flops : 0, u.expertFormatOn(d.isCpu()),
                           touched > 0 ? s.tokens * p / touched : 0);
    double memory = touched * u.expertBytesOn(d.isCpu()) /
                    (cost_.bandwidth(d) * cost_.gemvEfficiency(d, u.expertFormatOn(d.isCpu())));
    return std::max(compute, memory);
  }

  // GPUs count as one target (the pool, with the best GPU's gain); NPUs each on their own.
  static void addBenefit(Item& it, const Device& a, double gain) {
    std::string key = a.cls == DeviceClass::Gpu ? kGpuPool : a.spec;
    auto [at, fresh] = it.benefit.try_emplace(key, gain);
    if (!fresh)
      at->second = std::max(at->second, gain);
  }

  bool onCpu(const std::string& spec) const {
    return spec.empty() || (spec != kGpuPool && dev(spec).isCpu());
  }

  double room(const std::string& spec) const {
    if (spec == kGpuPool) {
      double free = 0;
      for (const Device& d : accels_)
        if (d.cls == DeviceClass::Gpu)
          free += std::max(0.0, budget_.at(d.spec) - used_.at(d.spec));
      return free - poolUsed_;
    }
    return budget_.at(spec) - used_.at(spec);
  }

  std::vector<Item> makeItems() const {
    Shape s = decodeShape();
    const Device& host = cpus_.front();
    std::vector<Item> items;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      if (leader(int(i)) == int(i) && unitPin_[i].empty()) {
        Item it;
        it.unit = int(i);
        it.bytes = groupBytes(i, false);
        it.cpuBytes = groupBytes(i, true);
        double onCpu = groupTime(i, host, s);
        for (const Device& a : accels_)
          if (groupSupported(i, a))
            addBenefit(it, a, onCpu - groupTime(i, a, s));
        items.push_back(it);
      }
      if (u.numExperts == 0 || o_.expertsOnGpu == 0)
        continue;
      // With --experts-on-gpu N only the N hottest experts of each layer are candidates.
      std::vector<int> order(size_t(u.numExperts));
      for (int e = 0; e < u.numExperts; ++e)
        order[size_t(e)] = e;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return u.expertProb[size_t(a)] > u.expertProb[size_t(b)];
      });
      int taken = 0;
      for (int e = 0; e < u.numExperts; ++e)
        if (!expertDev_[i][size_t(e)].empty() && !dev(expertDev_[i][size_t(e)]).isCpu())
          ++taken;
      for (int e : order) {
        if (!expertPin_[i][size_t(e)].empty())
          continue;
        if (o_.expertsOnGpu > 0 && taken >= o_.expertsOnGpu)
          break;
        ++taken;
        Item it;
        it.unit = int(i);
        it.expert = e;
        it.bytes = u.expertBytesOn(false);
        it.cpuBytes = u.expertBytesOn(true);
        it.forced = o_.expertsOnGpu > 0;
        double onCpu = expertTime(u, e, host, s);
        for (const Device& a : accels_)
          if (cost_.supports(a, "routed_experts"))
            addBenefit(it, a, onCpu - expertTime(u, e, a, s));
        items.push_back(it);
      }
    }
    for (Item& it : items) {
      double best = -1e300;
      for (const auto& kv : it.benefit)
        best = std::max(best, kv.second);
      it.density = it.benefit.empty() ? -1e300 : best / std::max(1.0, it.bytes);
    }
    // Benefit per byte, best first; ties (identical layers, uniform experts) in program order.
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      if (a.density != b.density)
        return a.density > b.density;
      if (a.unit != b.unit)
        return a.unit < b.unit;
      return a.expert < b.expert;
    });
    return items;
  }

  // The accelerator (or the GPU pool) an item should go to ("" = none): the largest gain among
  // those with room.
  std::string choose(const Item& it, bool requireGain) const {
    std::string best;
    double bestGain = 0;
    for (const auto& [spec, gain] : it.benefit) {
      if (it.bytes > room(spec))
        continue;
      if (requireGain && gain <= 0)
        continue;
      if (best.empty() || gain > bestGain)
        best = spec, bestGain = gain;
    }
    return best;
  }

  void put(const Item& it, const std::string& spec) {
    if (it.expert == kNoExpert)
      unitDev_[size_t(it.unit)] = spec;
    else
      expertDev_[size_t(it.unit)][size_t(it.expert)] = spec;
    (spec == kGpuPool ? poolUsed_ : used_[spec]) += it.bytes;
  }

  // Pool -> GPUs: walk the units in program order, a unit's routed experts right after it, and
  // fill GPU 0 up to its share of the pool's bytes (shares in proportion to free memory), then
  // GPU 1, ... — a pipeline of consecutive layers per GPU, so activations cross between GPUs only
  // at stage boundaries. What no GPU can take after all (fragmentation) goes to the CPU.
  void assignPool() {
    std::vector<std::string> gpus;
    double free = 0;
    for (const Device& d : accels_)
      if (d.cls == DeviceClass::Gpu) {
        gpus.push_back(d.spec);
        free += std::max(0.0, budget_[d.spec] - used_[d.spec]);
      }
    std::vector<double> target(gpus.size()), filled(gpus.size(), 0);
    for (size_t k = 0; k < gpus.size(); ++k)
      target[k] =
          free > 0 ? poolUsed_ * std::max(0.0, budget_[gpus[k]] - used_[gpus[k]]) / free : 0;
    size_t g = 0;
    auto fits = [&](size_t k, double bytes) {
      return used_[gpus[k]] + bytes <= budget_[gpus[k]] + 0.5;
    };
    auto place = [&](double bytes) -> std::string {
      // Move on once this item would end past the GPU's share by more than half of itself.
      while (g + 1 < gpus.size() && filled[g] + bytes / 2 > target[g])
        ++g;
      size_t k = g;
      if (!fits(k, bytes)) {
        k = gpus.size();
        for (size_t j = 0; j < gpus.size(); ++j) // the nearest GPU with room
          if (fits(j, bytes) &&
              (k == gpus.size() || (j > g ? j - g : g - j) < (k > g ? k - g : g - k)))
            k = j;
        if (k == gpus.size())
          return "";
      }
      used_[gpus[k]] += bytes;
      filled[k] += bytes;
      return gpus[k];
    };
    std::vector<size_t> homeless;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      if (unitDev_[i] == kGpuPool) {
        unitDev_[i] = place(groupBytes(i, false));
        if (unitDev_[i].empty())
          homeless.push_back(i);
      }
      for (std::string& d : expertDev_[i])
        if (d == kGpuPool)
          d = place(g_.units[i].expertBytesOn(false));
    }
    poolUsed_ = 0;
    // A big unit (lm_head) that found no GPU in the leftovers: make room next to its predecessor
    // by sending that GPU's coldest free routed experts to the CPU (they gain less per byte).
    for (size_t i : homeless) {
      std::string spec = i > 0 && !onCpu(unitDev_[i - 1]) ? unitDev_[i - 1] : gpus.back();
      std::vector<std::pair<size_t, int>> experts;
      for (size_t j = 0; j < g_.units.size(); ++j)
        for (int e = 0; e < g_.units[j].numExperts; ++e)
          if (expertDev_[j][size_t(e)] == spec && expertPin_[j][size_t(e)].empty())
            experts.push_back({j, e});
      std::stable_sort(experts.begin(), experts.end(), [&](auto a, auto b) {
        return g_.units[a.first].expertProb[size_t(a.second)] <
               g_.units[b.first].expertProb[size_t(b.second)];
      });
      double need = groupBytes(i, false);
      double freed = budget_[spec] - used_[spec];
      size_t n = 0;
      while (freed + 0.5 < need && n < experts.size())
        freed += g_.units[experts[n++].first].expertBytesOn(false);
      if (freed + 0.5 < need)
        continue; // stays on the CPU
      for (size_t k = 0; k < n; ++k) {
        expertDev_[experts[k].first][size_t(experts[k].second)].clear();
        used_[spec] -= g_.units[experts[k].first].expertBytesOn(false);
      }
      unitDev_[i] = spec;
      used_[spec] += need;
    }
  }

  bool placed(const Item& it) const {
    return it.expert == kNoExpert ? !unitDev_[size_t(it.unit)].empty()
                                  : !expertDev_[size_t(it.unit)][size_t(it.expert)].empty();
  }

  void greedy() {
    items_ = makeItems();
    std::map<int, int> wanted, got; // layer unit -> experts (--experts-on-gpu N)
    for (const Item& it : items_) {
      std::string spec = choose(it, /*requireGain=*/!it.forced);
      if (it.expert != kNoExpert && it.forced)
        ++wanted[it.unit];
      if (spec.empty())
        continue;
      put(it, spec);
      if (it.expert != kNoExpert && it.forced)
        ++got[it.unit];
    }
    for (const auto& [unit, n] : wanted)
      if (got[unit] < n) {
        notes_.push_back("experts-on-gpu=" + std::to_string(o_.expertsOnGpu) + ": only " +
                         std::to_string(got[unit]) + " of layer " +
                         std::to_string(g_.units[size_t(unit)].layer) +
                         "'s routed experts fit in the accelerator budget");
      }
  }

  // Bytes that still need a CPU home, split into routed experts and the rest.
  void cpuNeed(double* experts, double* rest) const {
    *experts = *rest = 0;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      if (leader(int(i)) == int(i) && onCpu(unitDev_[i]))
        *rest += groupBytes(i, true);
      for (const std::string& d : expertDev_[i])
        if (onCpu(d))
          *experts += g_.units[i].expertBytesOn(true);
    }
  }

  double cpuBudget() const {
    double b = 0;
    for (const Device& d : cpus_)
      b += budget_.at(d.spec);
    return b;
  }

  // When the CPU cannot hold what the greedy step left it, move more to the accelerators even
  // where that is not faster (fitting beats speed), best benefit per byte first.
  bool fitCpu() {
    double experts, rest;
    cpuNeed(&experts, &rest);
    if (experts + rest <= cpuBudget())
      return true;
    for (const Item& it : items_) {
      if (experts + rest <= cpuBudget())
        break;
      if (placed(it))
        continue;
      std::string spec = choose(it, /*requireGain=*/false);
      if (spec.empty())
        continue;
      put(it, spec);
      (it.expert == kNoExpert ? rest : experts) -= it.cpuBytes;
    }
    if (experts + rest <= cpuBudget())
      return true;
    return fail(doesNotFit(experts, rest));
  }

  std::string doesNotFit(double experts, double rest) const {
    double need = experts + rest, budget = cpuBudget();
    double onAccel = poolUsed_, int4Savings = 0;
    for (const Device& d : accels_)
      onAccel += used_.at(d.spec);
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      for (const std::string& d : expertDev_[i])
        if (onCpu(d) && u.expertBytesInt4 > 0)
          int4Savings += std::max(0.0, u.expertBytesOn(true) - u.expertBytesInt4);
    }
    std::ostringstream os;
    os << "the model does not fit: it needs " << formatBytes(need) << " of CPU memory (";
    if (experts > 0)
      os << formatBytes(experts) << " for routed experts, ";
    os << formatBytes(rest) << " for other weights and the KV cache)";
    if (onAccel > 0)
      os << " after " << formatBytes(onAccel) << " went to the accelerators";
    os << ", but the CPU budget is " << formatBytes(budget) << " (short by "
       << formatBytes(need - budget) << "): raise --cpu-mem to at least " << formatBytes(need);
    if (int4Savings > 1024)
      os << ", use --cpu-quant int4 (saves " << formatBytes(int4Savings)
         << " on the routed experts alone)";
    bool hasGpu = false;
    for (const Device& d : accels_)
      hasGpu = hasGpu || d.cls == DeviceClass::Gpu;
    if (!hasGpu)
      os << ", or add a GPU to the hardware profile";
    else if (o_.gpuMemBytes >= 0 && o_.gpuMemBytes < kUnlimitedBytes)
      os << ", or give the GPU more memory (--gpu-mem is " << formatBytes(o_.gpuMemBytes) << ")";
    else
      os << ", or add GPU memory";
    if (o_.kvTokens > 0 && rest > 0)
      os << " (a smaller KV reserve, --kv-tokens, also helps)";
    return os.str();
  }

  // Non-expert units on the CPU live on node 0 (next to the thread that drives the graph) unless
  // it is full; routed experts are spread over the nodes, hottest first, each to the node whose
  // expected expert load (bytes touched / its bandwidth) grows least.
  bool assignCpuNodes() {
    std::map<std::string, double> nodeUsed;
    for (const Device& d : cpus_)
      nodeUsed[d.spec] = used_[d.spec];
    auto room = [&](const Device& d, double bytes) {
      return nodeUsed[d.spec] + bytes <= budget_[d.spec] + 0.5;
    };
    for (size_t i = 0; i < g_.units.size(); ++i) {
      if (leader(int(i)) != int(i) || !unitDev_[i].empty())
        continue;
      double bytes = groupBytes(i, true);
      const Device* pick = nullptr;
      for (const Device& d : cpus_)
        if (room(d, bytes) && (!pick || (pick->index != 0 && d.index == 0)))
          pick = &d;
      if (!pick)
        return fail("cannot place " + unitName(i) + " (" + formatBytes(bytes) +
                    ") on any NUMA node within the CPU budget (--cpu-mem); raise it");
      unitDev_[i] = pick->spec;
      nodeUsed[pick->spec] += bytes;
    }
    Shape s = decodeShape();
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      // The node running the router and shared experts starts loaded with them: experts on the
      // other nodes overlap with that work.
      std::map<std::string, double> load;
      if (u.numExperts > 0 && dev(unitDev_[i]).isCpu())
        load[unitDev_[i]] = u.weightBytesOn(true);
      std::vector<int> order;
      for (int e = 0; e < u.numExperts; ++e)
        if (expertDev_[i][size_t(e)].empty())
          order.push_back(e);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return u.expertProb[size_t(a)] > u.expertProb[size_t(b)];
      });
      for (int e : order) {
        double touched = 1.0 - std::pow(1.0 - u.expertProb[size_t(e)], s.tokens);
        const Device* pick = nullptr;
        double pickLoad = 0;
        for (const Device& d : cpus_) {
          if (!room(d, u.expertBytesOn(true)))
            continue;
          double l = (load[d.spec] + touched * u.expertBytesOn(true)) / cost_.bandwidth(d);
          if (!pick || l < pickLoad - 1e-15)
            pick = &d, pickLoad = l;
        }
        if (!pick)
          return fail("cannot place the routed experts of layer " + std::to_string(u.layer) +
                      " within the per-NUMA-node CPU budgets (--cpu-mem is split over the nodes "
                      "by their memory); raise --cpu-mem");
        expertDev_[i][size_t(e)] = pick->spec;
        load[pick->spec] += touched * u.expertBytesOn(true);
        nodeUsed[pick->spec] += u.expertBytesOn(true);
      }
    }
    for (const Device& d : cpus_)
      used_[d.spec] = nodeUsed[d.spec];
    // Tied units sit with the unit whose weights they share.
    for (size_t i = 0; i < g_.units.size(); ++i)
      unitDev_[i] = unitDev_[size_t(leader(int(i)))];
    return true;
  }

  // ---- Refinement -------------------------------------------------------------------------
  // The greedy step scores items one at a time and so cannot see costs that depend on
  // neighbours: activations crossing the host link when consecutive units sit on different
  // devices, or a layer's routed experts split away from its router. Refinement fixes that by
  // local search on the real objective, the predicted decode step: move the whole model, one
  // layer, or one unit to another device, or a layer's accelerator-held experts back to the CPU,
  // and keep a move only if the prediction improves (and budgets still hold).

  // The decode step of the current placement. The vectors are swapped into an Assignment and
  // back rather than copied: this runs for every move the refinement tries.
  double decodeCost() {
    Assignment a;
    a.unitDevice.swap(unitDev_);
    a.expertDevice.swap(expertDev_);
    double t = predictStepSeconds(g_, cost_, a, decodeShape(), /*prefill=*/false);
    a.unitDevice.swap(unitDev_);
    a.expertDevice.swap(expertDev_);
    return t;
  }

  struct State {
    std::vector<std::string> unitDev;
    std::vector<std::vector<std::string>> expertDev;
    std::map<std::string, double> used;
  };
  State save() const { return {unitDev_, expertDev_, used_}; }
  void restore(const State& s) {
    unitDev_ = s.unitDev;
    expertDev_ = s.expertDev;
    used_ = s.used;
  }

  // Keeps the moves made since `before` if the decode step got faster, else undoes them.
  bool keepIfBetter(const State& before, double* best) {
    double t = decodeCost();
    if (t < *best * (1 - 1e-9)) {
      *best = t;
      return true;
    }
    restore(before);
    return false;
  }

  // Moves leader unit i (with its tied units) to `to` when it fits there and can run there.
  bool moveUnit(size_t i, const std::string& to) {
    const std::string from = unitDev_[i];
    double bytes = groupBytes(i, isCpuSpec(to));
    if (from == to || used_[to] + bytes > budget_[to] + 0.5 || !groupSupported(i, dev(to)))
      return false;
    used_[from] -= groupBytes(i, isCpuSpec(from));
    used_[to] += bytes;
    for (size_t j = 0; j < g_.units.size(); ++j)
      if (leader(int(j)) == int(i))
        unitDev_[j] = to;
    return true;
  }

  // Moves free expert e of unit i to `to`, or to the least loaded CPU node with room when `to`
  // is empty or full.
  bool moveExpert(size_t i, int e, const std::string& to) {
    const Unit& u = g_.units[i];
    std::string& cur = expertDev_[i][size_t(e)];
    std::string target = to;
    if (target.empty() ||
        used_[target] + u.expertBytesOn(isCpuSpec(target)) > budget_[target] + 0.5) {
      target.clear();
      for (const Device& c : cpus_)
        if (used_[c.spec] + u.expertBytesOn(true) <= budget_[c.spec] + 0.5 &&
            (target.empty() ||
             used_[c.spec] / cost_.bandwidth(c) < used_[target] / cost_.bandwidth(dev(target))))
          target = c.spec;
    }
    if (target.empty() || target == cur)
      return false;
    used_[cur] -= u.expertBytesOn(isCpuSpec(cur));
    used_[target] += u.expertBytesOn(isCpuSpec(target));
    cur = target;
    return true;
  }

  bool freeLeader(size_t i) const { return leader(int(i)) == int(i) && unitPin_[i].empty(); }

  // Moves `units` to `to` together; the routed experts that shared an accelerator with their
  // MoE unit go along (or to the CPU), so a move never splits a layer that was whole.
  bool tryMove(const std::vector<size_t>& units, const std::string& to, double* best) {
    State before = save();
    bool any = false;
    for (size_t i : units) {
      std::string from = unitDev_[i];
      if (from == to)
        continue;
      if (!moveUnit(i, to)) {
        restore(before);
        return false;
      }
      any = true;
      if (dev(from).isCpu())
        continue;
      for (int e = 0; e < g_.units[i].numExperts; ++e)
        if (expertPin_[i][size_t(e)].empty() && expertDev_[i][size_t(e)] == from)
          moveExpert(i, e, dev(to).isCpu() ? "" : to);
    }
    if (!any)
      return false;
    return keepIfBetter(before, best);
  }

  // Moves the free routed experts of unit i that sit on an accelerator other than the unit's own
  // device back to the CPU, if that is faster.
  bool tryExpertsHome(size_t i, double* best) {
    State before = save();
    bool any = false;
    for (int e = 0; e < g_.units[i].numExperts; ++e) {
      const std::string& d = expertDev_[i][size_t(e)];
      if (!expertPin_[i][size_t(e)].empty() || dev(d).isCpu() || d == unitDev_[i])
        continue;
      if (!moveExpert(i, e, "")) {
        restore(before);
        return false;
      }
      any = true;
    }
    return any && keepIfBetter(before, best);
  }

  void refine() {
    double best = decodeCost();
    std::vector<std::string> targets = {cpus_.front().spec};
    for (const Device& a : accels_)
      targets.push_back(a.spec);
    std::vector<size_t> all;
    std::map<int, std::vector<size_t>> byLayer;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      if (!freeLeader(i))
        continue;
      all.push_back(i);
      if (g_.units[i].layer >= 0)
        byLayer[g_.units[i].layer].push_back(i);
    }
    for (int round = 0; round < 4; ++round) {
      bool improved = false;
      for (const std::string& t : targets)
        improved |= tryMove(all, t, &best);
      for (const auto& [layer, units] : byLayer)
        for (const std::string& t : targets)
          improved |= tryMove(units, t, &best);
      for (size_t i : all) {
        // One unit: to the host, or to a device a neighbour uses.
        std::vector<std::string> near = {cpus_.front().spec};
        if (i > 0)
          near.push_back(unitDev_[i - 1]);
        if (i + 1 < g_.units.size())
          near.push_back(unitDev_[i + 1]);
        for (const std::string& t : near)
          if (!t.empty())
            improved |= tryMove({i}, t, &best);
      }
      // (--experts-on-gpu N is the user's call: its experts stay where it put them.)
      for (size_t i = 0; i < g_.units.size() && o_.expertsOnGpu < 0; ++i)
        improved |= tryExpertsHome(i, &best);
      if (!improved)
        break;
    }
  }

  // The runtime runs a MoE layer where its router (the unit) runs; only a GPU-side layer can hand
  // routed experts to the other side (hybrid: CPU experts beside a GPU router). Experts left on
  // an accelerator under a CPU-side router would silently run on the CPU, so either they come home
  // to the CPU or the router joins them on the accelerator, whichever decodes faster.
  void settleStrandedExperts() {
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      if (u.numExperts == 0 || !dev(unitDev_[i]).isCpu())
        continue;
      std::map<std::string, int> onAccel;
      for (int e = 0; e < u.numExperts; ++e)
        if (expertPin_[i][size_t(e)].empty() && !dev(expertDev_[i][size_t(e)]).isCpu())
          ++onAccel[expertDev_[i][size_t(e)]];
      if (onAccel.empty())
        continue;
      std::string accel = onAccel.begin()->first;
      for (const auto& [spec, n] : onAccel)
        if (n > onAccel[accel])
          accel = spec;
      const State start = save();
      // A: the experts come home.
      bool homeOk = true;
      for (int e = 0; e < u.numExperts && homeOk; ++e)
        if (expertPin_[i][size_t(e)].empty() && !dev(expertDev_[i][size_t(e)]).isCpu())
          homeOk = moveExpert(i, e, "");
      const double homeCost = homeOk ? decodeCost() : 1e300;
      const State home = save();
      // B: the router (with its tied units) joins them.
      restore(start);
      const bool joinOk = freeLeader(i) && moveUnit(i, accel);
      const double joinCost = joinOk ? decodeCost() : 1e300;
      if (!homeOk && !joinOk) {
        restore(start);
        notes_.push_back("layer " + std::to_string(u.layer) + ": routed experts placed on " +
                         accel + " under a CPU-side router run on the CPU");
        continue;
      }
      if (homeCost <= joinCost)
        restore(home);
      notes_.push_back("layer " + std::to_string(u.layer) + ": " +
                       (homeCost <= joinCost ? "experts moved back to the CPU with their router"
                                             : "router moved to " + accel + " with its experts") +
                       " (the runtime runs a MoE layer where its router runs)");
    }
  }

  // The runtime's activation and scratch buffers on each GPU grow with the prompt: measured on
  // the device with DeepSeek-V2-Lite (docs/cuda.md), 33-36 f32 hidden-sized rows per prompt
  // token, and Qwen3-30B-A3B 11. kt-compile reserves 40 rows per prompt token
  // (PartitionOptions::activationRowsPerToken; at most a quarter of the budget) so that weights +
  // KV cache + activations stay inside --gpu-mem.
  void reserveActivations() {
    int64_t hidden = 0;
    for (const Unit& u : g_.units)
      hidden = std::max(hidden, u.hidden);
    const double perPlan = double(o_.promptLen) * double(std::max<int64_t>(1, o_.decodeBatch)) *
                           double(hidden) * 4.0 * o_.activationRowsPerToken;
    if (perPlan <= 0)
      return;
    // --gpu-quant int8/int4: a prefill MoE layer whose experts are all on the GPU widens the
    // active experts of each product to bf16 in one buffer (runtime/exec/cuda/MoeGroupedQuant:
    // experts x the largest expert matrix x 2 bytes, ~370 MB for DeepSeek-V2-Lite).
    double widening = 0;
    for (const Unit& u : g_.units)
      if (!u.gpuInt8Expert.empty() && u.gpuInt8Expert.matrices > 0)
        widening = std::max(widening, double(u.numExperts) * 2.0 * u.gpuInt8Expert.weights /
                                          u.gpuInt8Expert.matrices);
    for (const Device& d : accels_) {
      if (d.cls != DeviceClass::Gpu || !(budget_[d.spec] > 0) || budget_[d.spec] > 1e18)
        continue;
      const double r = std::min(perPlan + widening, 0.25 * budget_[d.spec]);
      used_[d.spec] += r;
      notes_.push_back(formatBytes(r) + " of " + d.spec + " is kept for activations (prompt " +
                       std::to_string(o_.promptLen) + ")" +
                       (widening > 0 ? ", " + formatBytes(widening) +
                                           " of it for widening int8/int4 experts in prefill"
                                     : std::string()));
    }
  }

  // Per MoE layer with CPU-held experts: the smallest prompt length from which streaming those
  // experts to the GPU beats computing them on the CPU. CPU time grows with the prompt (FLOPs),
  // streaming time is capped by the bytes of the layer's CPU experts, so there is at most one
  // crossing; find it by doubling, then bisection.
  void prefillOffload() {
    if (offloadDevice_.empty())
      return;
    Device gpu = dev(offloadDevice_);
    bool anyCpuExperts = false;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      std::map<std::string, std::vector<int>> byNode;
      std::vector<int> all;
      for (int e = 0; e < u.numExperts; ++e) {
        const std::string& spec = expertDev_[i][size_t(e)];
        if (dev(spec).isCpu()) {
          byNode[spec].push_back(e);
          all.push_back(e);
        }
      }
      // kt-rt streams inside the GPU's moe op: a layer whose moe op runs elsewhere (a whole
      // layer kept on the CPU) computes its experts where they are.
      if (all.empty() || unitDev_[i] != offloadDevice_)
        continue;
      anyCpuExperts = true;
      if (o_.prefillOffload == PrefillOffload::Always) {
        offloadMin_[i] = 1;
        continue;
      }
      auto streamWins = [&](int64_t p) {
        Shape s{double(p), 0, 1};
        double cpu = 0;
        for (const auto& [spec, experts] : byNode)
          cpu = std::max(cpu, cost_.expertsTime(u, experts, dev(spec), s));
        return cost_.streamedExpertsTime(u, all, gpu, s) < cpu;
      };
      constexpr int64_t kMaxPrompt = int64_t(1) << 22;
      int64_t hi = 1;
      while (hi <= kMaxPrompt && !streamWins(hi))
        hi *= 2;
      if (hi > kMaxPrompt)
        continue;          // streaming never pays off for this layer
      int64_t lo = hi / 2; // streamWins(lo) is false (or lo == 0)
      while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        (streamWins(mid) ? hi : lo) = mid;
      }
      offloadMin_[i] = hi;
    }
    if (!anyCpuExperts) {
      // Everything ended up on the accelerators after all: nothing will be streamed.
      offloadDevice_.clear();
      notes_.erase(notes_.begin() + long(stagingNote_));
    }
  }

  const ModelGraph& g_;
  const CostModel& cost_;
  const PartitionOptions& o_;
  std::string* error_ = nullptr;
  std::vector<Device> cpus_, accels_;
  std::map<std::string, double> budget_, used_;
  double poolUsed_ = 0; // chosen for the GPU pool, not yet on a GPU
  std::vector<std::string> unitDev_, unitPin_;
  std::vector<std::vector<std::string>> expertDev_, expertPin_;
  std::vector<int64_t> offloadMin_;
  std::vector<double> kv_;
  std::string offloadDevice_;
  size_t stagingNote_ = 0;
  std::vector<Item> items_;
  std::vector<std::string> notes_;
};

} // namespace

bool partition(const ModelGraph& g, const CostModel& cost, const PartitionOptions& options,
               PartitionResult* result, std::string* error) {
  if (cost.devices().empty() || !cost.devices().front().isCpu()) {
    *error = "the hardware profile has no CPU NUMA node";
    return false;
  }
  for (const Unit& u : g.units) {
    if (int(u.expertProb.size()) != u.numExperts) {
      *error = "internal error: expert probabilities missing for layer " + std::to_string(u.layer);
      return false;
    }
  }
  Partitioner p(g, cost, options);
  return p.run(result, error);
}

} // namespace kt::cost
