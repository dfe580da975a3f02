#include "compiler/cost/Predict.h"

#include <algorithm>

namespace kt::cost {

std::string groupName(const Unit& u) {
  switch (u.kind) {
  case UnitKind::Embedding:
    return "embedding";
  case UnitKind::Attention:
    return "attention";
  case UnitKind::MlaAttention:
    return "mla attention";
  case UnitKind::DenseMlp:
    return "dense mlp";
  case UnitKind::Moe:
    return u.sharedBytes > 0 ? "router + shared experts" : "router";
  case UnitKind::LmHead:
    return "lm_head";
  case UnitKind::Linear:
    return "linear";
  case UnitKind::Other:
    break;
  }
  return "other";
}

namespace {

struct MoeTimes {
  double head = 0;   // router + shared experts (the row of the moe op itself)
  double routed = 0; // what the routed experts add on top (critical path)
};

class Predictor {
public:
  Predictor(const ModelGraph& g, const CostModel& cost, const Assignment& a,
            std::map<std::string, DeviceUse>& use)
      : g_(g), cost_(cost), a_(a), use_(use) {}

  Device dev(const std::string& spec) const {
    Device d;
    cost_.find(spec, &d);
    return d;
  }

  // Runs one step of shape `s`; fills per-unit times (two entries per MoE unit) and returns the
  // total, with link transfers in *transfers.
  double step(const Shape& shape, bool prefill, std::vector<double>* headTimes,
              std::vector<double>* routedTimes, double* transfers) {
    Shape s = shape;
    s.graphs = !prefill && allOnAccelerators();
    double total = 0;
    *transfers = 0;
    headTimes->assign(g_.units.size(), 0);
    routedTimes->assign(g_.units.size(), 0);
    const Unit* prev = nullptr;
    Device prevDev;
    for (size_t i = 0; i < g_.units.size(); ++i) {
      const Unit& u = g_.units[i];
      Device d = dev(a_.unitDevice[i]);
      // A CPU unit after an accelerator's: the hidden state crosses the link, and the CPU
      // pool, idle through the accelerator's work, wakes up.
      double wake = 0;
      if (prev) {
        double t = cost_.activationMoveTime(prevDev, d, s.tokens * double(prev->hidden) * 4.0);
        *transfers += t;
        total += t;
        if (d.isCpu() && !prevDev.isCpu())
          wake = cost_.poolWakeSeconds(d);
      }
      if (u.kind == UnitKind::Moe) {
        MoeTimes m = moe(i, u, d, s, prefill);
        m.head += wake;
        (*headTimes)[i] = m.head;
        (*routedTimes)[i] = m.routed;
        total += m.head + m.routed;
      } else {
        double t = cost_.unitTime(u, d, s);
        busy(d, prefill, t); // the wake-up is latency, not work
        (*headTimes)[i] = t + wake;
        total += t + wake;
      }
      prev = &u;
      prevDev = d;
    }
    // Logits of the last position of each sequence go back to the host for sampling.
    if (prev && !prevDev.isCpu()) {
      Device host = dev("cpu:numa0");
      double t = cost_.activationMoveTime(prevDev, host, s.batch * double(prev->hidden) * 4.0);
      *transfers += t;
      total += t;
    }
    return total;
  }

private:
  // Whether every unit and every routed expert is placed on an accelerator: the CUDA backend then
  // replays each decode step as a CUDA graph (a single host step, e.g. the embedding kept on the
  // CPU, turns graphs off for the whole plan).
  bool allOnAccelerators() const {
    for (const std::string& spec : a_.unitDevice)
      if (dev(spec).isCpu())
        return false;
    for (const std::vector<std::string>& experts : a_.expertDevice)
      for (const std::string& spec : experts)
        if (dev(spec).isCpu())
          return false;
    return true;
  }

  void busy(const Device& d, bool prefill, double t) {
    DeviceUse& u = use_[d.spec];
    (prefill ? u.prefillBusySeconds : u.decodeBusySeconds) += t;
  }

  // The router runs first on the moe op's device ("home"); then the shared experts and home's own
  // routed experts run there while every other device computes its experts in parallel, after the
  // hidden state has crossed the link (and before the results cross back).
  MoeTimes moe(size_t i, const Unit& u, const Device& home, const Shape& s, bool prefill) {
    // The router (with the small ops folded in) is the unit minus its shared experts.
    const bool cpu = home.isCpu();
    const CpuStorage* form = u.cpuForm(cpu);
    const WeightFormat f = u.formatOn(cpu);
    const GpuLaunches gpu = u.gpu.at(s.tokens); // decode sizes: the fused decode kernels
    const LaunchMode mode = launchMode(s, s.tokens);
    auto memory = [&](double bytes, bool unpacked) {
      return bytes / (cost_.bandwidth(home) * cost_.gemvEfficiency(home, f, unpacked));
    };
    auto roofline = [&](double packed, double unpacked, double bytes, int ops, double launches,
                        double syncs) {
      double compute = cost_.flopsSeconds(home, packed, unpacked, f, s.tokens);
      return cost_.withOverheads(home,
                                 std::max(compute, memory(bytes, packed == 0 && unpacked > 0)), ops,
                                 launches, syncs, mode);
    };
    // The router reads plain rows on the CPU (kt-quantize-weights never packs it). On a GPU the
    // router part ends with the routing choices copied to the host (gpu.hostSyncs).
    double routerFlops = s.tokens * (u.flopsPerToken - u.sharedFlopsPerToken);
    double tRouter = roofline(form ? 0 : routerFlops, form ? routerFlops : 0,
                              u.weightBytesOn(cpu) - u.sharedBytesOn(cpu), u.numOps,
                              gpu.perStep - gpu.shared, gpu.hostSyncs);
    double sharedFlops = s.tokens * u.sharedFlopsPerToken;
    bool sharedPlain = form && form->sharedUnpacked;
    double tShared = 0;
    if (u.sharedBytesOn(cpu) > 0) {
      // --gpu-quant int8 shared experts widen their matrices first in a prefill (GpuInt8.h).
      // (At decode sizes the fused shared-expert kernels read int8 directly: no extra launches.)
      double launches = gpu.shared;
      if (!cpu && launches > 0 && gpu.perTouchedExpert > 0)
        launches += u.gpuInt8Shared.extraLaunches(s.tokens);
      // Packed on the CPU, in a prefill: the moe op runs them in its fused expert region with the
      // routed experts, at the expert path's rate rather than one large GEMM's (the device Xeon's
      // DeepSeek-V2-Lite prefill, ninth device run). Decode keeps the roofline it was validated
      // with (one token: the weights' bytes).
      const double path =
          cpu && prefill && !sharedPlain ? cost_.cpuSharedExpertsSeconds(u, home, s.tokens) : 0;
      const double widened = cost_.int8WidenedSeconds(home, u.gpuInt8Shared, s.tokens);
      if (path > 0)
        tShared = cost_.withOverheads(home, std::max(path, memory(u.sharedBytesOn(cpu), false)), 1,
                                      0, 0, mode);
      else if (widened > 0)
        tShared = cost_.withOverheads(home, widened, 1, launches, 0, mode);
      else
        tShared = roofline(sharedPlain ? 0 : sharedFlops, sharedPlain ? sharedFlops : 0,
                           u.sharedBytesOn(cpu), 1, launches, 0);
    }
    if (cost_.decodeChain(home, s.tokens)) {
      // The probe's decode chain: the router's 1-token product, then the shared experts' fused
      // decode kernels (one "expert" of all the shared weights), at their measured rates.
      const double routerBytes = u.weightBytesOn(false) - u.sharedBytesOn(false);
      const double sharedBytes = u.sharedBytesOn(false);
      tRouter = cost_.withOverheads(home,
                                    std::max(cost_.flopsSeconds(home, routerFlops, 0, f, s.tokens),
                                             cost_.decodeGemvSeconds(home, f, routerBytes, 1)),
                                    u.numOps, gpu.perStep - gpu.shared, gpu.hostSyncs, mode);
      if (sharedBytes > 0)
        tShared =
            cost_.withOverheads(home,
                                std::max(cost_.flopsSeconds(home, sharedFlops, 0, f, s.tokens),
                                         cost_.decodeMoeSeconds(home, f, sharedBytes, sharedBytes)),
                                1, gpu.shared, 0, mode);
    }
    busy(home, prefill, tRouter + tShared);

    std::map<std::string, std::vector<int>> byDevice;
    for (int e = 0; e < u.numExperts; ++e)
      byDevice[a_.expertDevice[i][size_t(e)]].push_back(e);
    std::vector<int> onCpu;
    for (const auto& [spec, experts] : byDevice)
      if (dev(spec).isCpu())
        onCpu.insert(onCpu.end(), experts.begin(), experts.end());
    bool stream = prefill && !a_.offloadDevice.empty() && a_.prefillOffloadMinTokens[i] > 0 &&
                  s.tokens >= double(a_.prefillOffloadMinTokens[i]) && !onCpu.empty();
    double activation = s.tokens * double(u.hidden) * 4.0;
    double homePath = tShared, otherPath = 0;
    // An accelerator-homed layer's CPU-held experts (all CPU nodes in parallel): timed below as
    // the CUDA backend runs them.
    double hostExperts = 0;
    const bool hybrid = !home.isCpu();
    auto add = [&](const Device& d, double t) {
      if (t <= 0)
        return;
      busy(d, prefill, t);
      if (d.spec == home.spec)
        homePath += t;
      else if (hybrid && d.isCpu())
        hostExperts = std::max(hostExperts, t);
      else
        otherPath = std::max(otherPath, t + cost_.transferTime(home, d, activation) +
                                            cost_.transferTime(d, home, activation));
    };
    for (const auto& [spec, experts] : byDevice) {
      Device d = dev(spec);
      if (stream && d.isCpu())
        continue;
      add(d, cost_.expertsTime(u, experts, d, s));
    }
    if (stream)
      add(dev(a_.offloadDevice), cost_.streamedExpertsTime(u, onCpu, dev(a_.offloadDevice), s));
    if (hostExperts > 0) {
      // The host's pool waited out the GPU's part of the layer: it wakes for the experts.
      hostExperts += cost_.poolWakeSeconds(dev("cpu:numa0"));
      // The CUDA backend's hybrid layer (runtime/exec/cuda/MoeOp.cpp): the routing's
      // synchronisation (its round trip is in tRouter) also brings x to the host; the host then
      // issues the GPU's work (its own routed experts, with their grouping copies, and the shared
      // experts) and computes the CPU's experts while the GPU runs that work; the result goes back
      // by an async copy and is added. The GPU's work overlaps the CPU's experts; the host's
      // issuing, the copies and the final add do not.
      double gpuLaunches = gpu.shared;
      bool gpuExperts = byDevice.count(home.spec) > 0;
      if (gpuExperts)
        gpuLaunches +=
            CostModel::expectedTouched(u, byDevice.at(home.spec), s.tokens) * gpu.perTouchedExpert +
            gpu.gpuExpertsLaunches;
      double issue =
          cost_.issueSeconds(home, gpuLaunches, mode) +
          (gpuExperts ? cost_.transferTime(dev("cpu:numa0"), home, 0) * gpu.gpuExpertsSyncs : 0);
      double copies = cost_.transferTime(home, dev("cpu:numa0"), activation) +
                      cost_.transferTime(dev("cpu:numa0"), home, activation) -
                      cost_.transferTime(home, dev("cpu:numa0"), 0) + // that latency is the sync's
                      cost_.issueSeconds(home, gpu.hostExpertsLaunches, mode) +
                      // decode sizes: the routing's readback is the host experts' own sync
                      cost_.transferTime(home, dev("cpu:numa0"), 0) * gpu.hostExpertsSyncs;
      otherPath = std::max(otherPath, std::max(homePath, issue + hostExperts) + copies);
    }
    MoeTimes m;
    m.head = tRouter + tShared;
    m.routed = std::max(homePath, otherPath) - tShared;
    return m;
  }

  const ModelGraph& g_;
  const CostModel& cost_;
  const Assignment& a_;
  std::map<std::string, DeviceUse>& use_;
};

std::string expertSummary(const std::map<std::string, int>& perDevice) {
  // "2 gpu:0 / 14 cpu": accelerators by name, CPU nodes summed (the per-node split is in JSON).
  std::string out;
  int cpu = 0;
  for (const auto& [spec, n] : perDevice) {
    if (spec.rfind("cpu:", 0) == 0) {
      cpu += n;
      continue;
    }
    out += (out.empty() ? "" : " / ") + std::to_string(n) + " " + spec;
  }
  if (cpu > 0 || out.empty())
    out += (out.empty() ? "" : " / ") + std::to_string(cpu) + " cpu";
  return out;
}

} // namespace

double predictStepSeconds(const ModelGraph& g, const CostModel& cost, const Assignment& a,
                          const Shape& s, bool prefill) {
  std::map<std::string, DeviceUse> use;
  Predictor predictor(g, cost, a, use);
  std::vector<double> head, routed;
  double transfers = 0;
  return predictor.step(s, prefill, &head, &routed, &transfers);
}

Prediction predict(const ModelGraph& g, const CostModel& cost, const Assignment& a,
                   const PredictOptions& opts, const std::map<std::string, double>& budgets) {
  Prediction p;
  p.prefill = {double(opts.promptLen), 0, 1};
  p.decode = {double(opts.decodeBatch), double(opts.promptLen), double(opts.decodeBatch)};

  std::map<std::string, DeviceUse> use;
  for (const Device& d : cost.devices())
    use[d.spec].device = d.spec;
  Predictor predictor(g, cost, a, use);
  std::vector<double> decHead, decRouted, preHead, preRouted;
  p.decodeStepSeconds =
      predictor.step(p.decode, false, &decHead, &decRouted, &p.decodeTransferSeconds);
  p.prefillSeconds =
      predictor.step(p.prefill, true, &preHead, &preRouted, &p.prefillTransferSeconds);
  p.decodeTokensPerSecond = p.decodeStepSeconds > 0 ? p.decode.tokens / p.decodeStepSeconds : 0;
  p.prefillTokensPerSecond = p.prefillSeconds > 0 ? p.prefill.tokens / p.prefillSeconds : 0;

  for (size_t i = 0; i < g.units.size(); ++i) {
    const Unit& u = g.units[i];
    Row r;
    r.layer = u.layer;
    r.group = groupName(u);
    r.device = a.unitDevice[i];
    r.weightBytes = u.memoryBytesOn(predictor.dev(r.device).isCpu());
    r.kvBytes = a.kvBytes.empty() ? 0 : a.kvBytes[i];
    r.decodeSeconds = decHead[i];
    r.prefillSeconds = preHead[i];
    use[r.device].weightBytes += r.weightBytes;
    use[r.device].kvBytes += r.kvBytes;
    p.rows.push_back(r);
    if (u.kind != UnitKind::Moe || u.numExperts == 0)
      continue;
    Row x;
    x.layer = u.layer;
    x.group = "routed experts";
    for (int e = 0; e < u.numExperts; ++e) {
      const std::string& spec = a.expertDevice[i][size_t(e)];
      ++x.expertsPerDevice[spec];
      double bytes = u.expertBytesOn(predictor.dev(spec).isCpu());
      use[spec].weightBytes += bytes;
      x.weightBytes += bytes;
    }
    x.device = expertSummary(x.expertsPerDevice);
    x.decodeSeconds = decRouted[i];
    x.prefillSeconds = preRouted[i];
    x.prefillOffloadMinTokens =
        a.prefillOffloadMinTokens.empty() ? 0 : a.prefillOffloadMinTokens[i];
    p.rows.push_back(x);
  }
  for (const Device& d : cost.devices()) {
    DeviceUse du = use[d.spec];
    auto b = budgets.find(d.spec);
    du.budgetBytes = b == budgets.end() ? 0 : b->second;
    p.devices.push_back(du);
  }
  return p;
}

} // namespace kt::cost
