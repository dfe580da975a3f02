//===- Partition.cpp - kt-partition ---------------------------------------===//
//
// The cost-model driven partitioner as a pass: options -> hardware profile and
// budgets; kt module -> cost::ModelGraph (PartitionGraph.cpp); cost::partition
// decides; the decision is written back as `placement` attributes plus the
// per-expert attributes of PlacementAttrs.h; --explain prints the prediction.
// All the reasoning lives in compiler/cost, which is unit-tested without MLIR.
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/Transforms/Passes.h"

#include "compiler/cost/Explain.h"
#include "compiler/cost/Partitioner.h"
#include "dialects/kt/Transforms/PartitionGraph.h"
#include "dialects/kt/Transforms/PlacementAttrs.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <map>

namespace mlir {
namespace kt {
#define GEN_PASS_DEF_PARTITIONPASS
#include "dialects/kt/Transforms/Passes.h.inc"
} // namespace kt
} // namespace mlir

using namespace mlir;
using namespace mlir::kt;
namespace cost = ::kt::cost;

namespace {

struct PartitionPass : public mlir::kt::impl::PartitionPassBase<PartitionPass> {
  using PartitionPassBase::PartitionPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    cost::HardwareProfile hw;
    cost::PartitionOptions o;
    cost::ExpertStats stats;
    bool haveStats = false;
    if (failed(readOptions(hw, o, stats, haveStats)))
      return signalPassFailure();
    cost::QuantSpec cpuQ;
    if (!cpuQuant.empty() && !cost::parseCpuQuant(cpuQuant, &cpuQ)) {
      error("cpu-quant: expected f32, bf16, int8, int4, int4:g32, int4:g128 (optionally :asym), "
            "got '" +
            cpuQuant + "'");
      return signalPassFailure();
    }

    cost::GpuDtype gpuDtype;
    cost::GpuQuant gpuQuant;
    if (!cost::parseGpuComputeDtype(computeDtype, &gpuDtype, &gpuQuant)) {
      error("compute-dtype: expected f32 or bf16, optionally +int8 or +int4 (or nothing: size GPU "
            "weights as stored), got '" +
            computeDtype + "'");
      return signalPassFailure();
    }

    cost::ModelGraph graph;
    PartitionBinding binding;
    if (failed(buildPartitionGraph(module, haveStats ? &stats : nullptr,
                                   cpuQuant.empty() ? nullptr : &cpuQ, gpuDtype, graph, binding,
                                   gpuQuant)))
      return signalPassFailure();
    if (kvTokens == 0)
      o.kvTokens = graph.maxPosition > 0 ? std::min<int64_t>(graph.maxPosition, 4096) : 4096;

    cost::CostModel model(hw);
    cost::PartitionResult result;
    std::string why;
    if (!cost::partition(graph, model, o, &result, &why)) {
      error(why);
      return signalPassFailure();
    }
    apply(module, model, graph, binding, result);
    setPartitionSummary(module, hw, o, result);

    if (explain) {
      llvm::outs() << cost::explainText(graph, hw, o, result);
      llvm::outs().flush();
    }
    if (!explainJson.empty() &&
        failed(writeText(explainJson, cost::explainJson(graph, hw, o, result))))
      return signalPassFailure();
  }

private:
  // mlir::emitError (not module.emitError) so that an option typo does not dump the module.
  void error(const llvm::Twine& message) {
    emitError(getOperation().getLoc()) << "kt-partition: " << message;
  }

  LogicalResult readOptions(cost::HardwareProfile& hw, cost::PartitionOptions& o,
                            cost::ExpertStats& stats, bool& haveStats) {
    std::string why;
    if (profile.empty()) {
      error("needs a hardware profile: profile=FILE (kt-compile: --hw FILE); see "
            "docs/hardware-profile.md and examples/hw/");
      return failure();
    }
    // Inline JSON: `profile={"name": ...}`. The pass-option parser strips the outer braces of a
    // value, so a leading quote means the braces were there.
    std::string text = profile;
    bool inlineJson = text.front() == '{' || text.front() == '"';
    if (text.front() == '"')
      text = "{" + text + "}";
    if (!(inlineJson ? cost::parseHardwareProfile(text, "inline profile", &hw, &why)
                     : cost::loadHardwareProfile(profile, &hw, &why))) {
      error(why);
      return failure();
    }
    auto size = [&](const std::string& text, const char* name, double* out) {
      if (text.empty())
        return true;
      if (cost::parseByteSize(text, out, &why))
        return true;
      error(std::string(name) + ": " + why);
      return false;
    };
    if (!size(gpuMem, "gpu-mem", &o.gpuMemBytes) || !size(cpuMem, "cpu-mem", &o.cpuMemBytes))
      return failure();
    if (expertsOnGpu != "auto") {
      int64_t n = -1;
      if (llvm::StringRef(expertsOnGpu).getAsInteger(10, n) || n < 0) {
        error("experts-on-gpu: expected a number of experts per layer or 'auto', got '" +
              expertsOnGpu + "'");
        return failure();
      }
      o.expertsOnGpu = int(std::min<int64_t>(n, 1 << 30));
    }
    if (!cost::parsePrefillOffload(prefillOffload, &o.prefillOffload)) {
      error("prefill-offload: expected auto, never or always, got '" + prefillOffload + "'");
      return failure();
    }
    for (const std::string& text : placementOverrides) {
      cost::PlacementOverride ov;
      if (!cost::parsePlacementOverride(text, &ov, &why)) {
        error(why);
        return failure();
      }
      o.overrides.push_back(ov);
    }
    if (promptLen < 1 || decodeBatch < 1 || kvTokens < 0) {
      error("prompt-len and decode-batch must be at least 1, kv-tokens at least 0");
      return failure();
    }
    o.promptLen = promptLen;
    o.decodeBatch = decodeBatch;
    o.kvTokens = kvTokens;
    // With the runtime's dtype known (kt-compile), also keep GPU room for its activations.
    if (!computeDtype.empty())
      o.activationRowsPerToken = 40;
    if (!expertStats.empty()) {
      if (!cost::loadExpertStats(expertStats, &stats, &why)) {
        error(why);
        return failure();
      }
      haveStats = true;
    }
    return success();
  }

  void apply(ModuleOp module, const cost::CostModel& model, const cost::ModelGraph& graph,
             const PartitionBinding& binding, const cost::PartitionResult& r) {
    MLIRContext* ctx = &getContext();
    Builder b(ctx);
    auto device = [&](llvm::StringRef spec) { return DeviceAttr::get(ctx, spec); };
    auto supports = [&](const std::string& spec, const std::string& kind) {
      cost::Device d;
      return model.find(spec, &d) && model.supports(d, kind);
    };
    const std::string host = "cpu:numa0";
    for (size_t i = 0; i < graph.units.size(); ++i) {
      const PartitionBinding::UnitOps& ops = binding.units[i];
      const std::string& spec = r.assignment.unitDevice[i];
      llvm::cast<PlacementOpInterface>(ops.main).setPlacementAttr(device(spec));
      for (Operation* glue : ops.glue) {
        auto placed = llvm::cast<PlacementOpInterface>(glue);
        if (placed.getPlacementAttr())
          continue; // pinned by hand: kept, like kt-assign-placement does
        // A norm or add the unit's accelerator cannot run falls back to the host.
        placed.setPlacementAttr(device(supports(spec, glueKind(glue)) ? spec : host));
      }
      for (WeightOp w : ops.weights)
        w.setPlacementAttr(device(spec));
      if (auto moe = llvm::dyn_cast<MoeOp>(ops.main))
        applyExperts(moe, model, ops, r.assignment, i, b);
    }
    for (WeightOp w : binding.unused)
      if (!w.getPlacementAttr())
        w.setPlacementAttr(device(host));
  }

  static std::string glueKind(Operation* op) {
    if (llvm::isa<RmsNormOp>(op))
      return "rms_norm";
    if (llvm::isa<AddOp>(op))
      return "add";
    if (llvm::isa<RopeOp>(op))
      return "rope";
    return "swiglu";
  }

  void applyExperts(MoeOp moe, const cost::CostModel& model, const PartitionBinding::UnitOps& ops,
                    const cost::Assignment& a, size_t unit, Builder& b) {
    MLIRContext* ctx = &getContext();
    const std::vector<std::string>& perExpert = a.expertDevice[unit];
    // The device list in profile order (CPU nodes, GPUs, NPUs), only the devices used.
    llvm::SmallVector<Attribute> devices;
    std::map<std::string, int32_t> index;
    std::map<std::string, int> count;
    for (const std::string& spec : perExpert)
      ++count[spec];
    for (const cost::Device& d : model.devices()) {
      if (!count.count(d.spec))
        continue;
      index[d.spec] = int32_t(devices.size());
      devices.push_back(DeviceAttr::get(ctx, d.spec));
    }
    llvm::SmallVector<int32_t> placement;
    for (const std::string& spec : perExpert)
      placement.push_back(index[spec]);
    moe->setAttr(kExpertDevicesAttr, b.getArrayAttr(devices));
    moe->setAttr(kExpertPlacementAttr, b.getDenseI32ArrayAttr(placement));
    // The stacked weights' own placement: where most of their experts are (first in profile
    // order on a tie, i.e. the CPU).
    std::string majority;
    for (const cost::Device& d : model.devices())
      if (count.count(d.spec) && (majority.empty() || count[d.spec] > count[majority]))
        majority = d.spec;
    for (WeightOp w : ops.expertWeights)
      w.setPlacementAttr(DeviceAttr::get(ctx, majority));
    int64_t minTokens = a.prefillOffloadMinTokens[unit];
    if (minTokens > 0 && !a.offloadDevice.empty()) {
      moe->setAttr(kPrefillOffloadMinTokensAttr, b.getI64IntegerAttr(minTokens));
      moe->setAttr(kPrefillOffloadDeviceAttr, DeviceAttr::get(ctx, a.offloadDevice));
    } else {
      moe->removeAttr(kPrefillOffloadMinTokensAttr);
      moe->removeAttr(kPrefillOffloadDeviceAttr);
    }
  }

  void setPartitionSummary(ModuleOp module, const cost::HardwareProfile& hw,
                           const cost::PartitionOptions& o, const cost::PartitionResult& r) {
    Builder b(&getContext());
    const cost::Prediction& p = r.prediction;
    llvm::SmallVector<NamedAttribute> fields = {
        b.getNamedAttr("profile", b.getStringAttr(hw.name)),
        b.getNamedAttr("prompt_len", b.getI64IntegerAttr(o.promptLen)),
        b.getNamedAttr("decode_batch", b.getI64IntegerAttr(o.decodeBatch)),
        b.getNamedAttr("kv_tokens", b.getI64IntegerAttr(o.kvTokens)),
        b.getNamedAttr("predicted_decode_tok_s", b.getF64FloatAttr(p.decodeTokensPerSecond)),
        b.getNamedAttr("predicted_prefill_tok_s", b.getF64FloatAttr(p.prefillTokensPerSecond))};
    // The accelerators' memory budgets the placement was sized for (finite, non-zero ones): the
    // plan records them and kt-rt reports the GPU's use against them.
    llvm::SmallVector<NamedAttribute> budgets;
    for (const auto& [device, bytes] : r.budgets)
      if (device.rfind("cpu:", 0) != 0 && bytes > 0 && bytes < 9e18)
        budgets.push_back(b.getNamedAttr(device, b.getI64IntegerAttr(int64_t(bytes))));
    if (!budgets.empty())
      fields.push_back(b.getNamedAttr("budgets", b.getDictionaryAttr(budgets)));
    module->setAttr(kPartitionAttr, b.getDictionaryAttr(fields));
  }

  LogicalResult writeText(const std::string& path, const std::string& text) {
    if (path == "-") {
      llvm::outs() << text;
      llvm::outs().flush();
      return success();
    }
    std::error_code ec;
    llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_Text);
    if (ec) {
      error("explain-json: cannot write '" + path + "': " + ec.message());
      return failure();
    }
    out << text;
    return success();
  }
};

} // namespace
