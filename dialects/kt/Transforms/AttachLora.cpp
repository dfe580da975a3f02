//===- AttachLora.cpp - kt-attach-lora ------------------------------------===//
//
// Declares LoRA adapters where PEFT would put them, so that a plan's adapters
// load from and save to PEFT's files unchanged. PEFT names a module by its
// path in the Hugging Face model, which the importer keeps in each weight's
// hf_name ("model.layers.0.self_attn.q_proj.weight"); routed experts are one
// fused parameter per projection in transformers 5 (experts.gate_up_proj
// [E, 2I, H], experts.down_proj [E, H, I]) that PEFT wraps with nested
// ParamWrappers: with both targeted, the first one wrapped (gate_up_proj,
// registered first) is reached as "experts.base_layer", the outer one as
// "experts".
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/Transforms/LoraSlots.h"
#include "dialects/kt/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Regex.h"

#include <map>
#include <optional>
#include <set>

namespace mlir {
namespace kt {
#define GEN_PASS_DEF_ATTACHLORAPASS
#include "dialects/kt/Transforms/Passes.h.inc"
} // namespace kt
} // namespace mlir

using namespace mlir;
using namespace mlir::kt;

namespace {

constexpr llvm::StringLiteral kPeftPrefix = "base_model.model.";

// PEFT's target_modules rule for a list: the module path equals the key or ends with "." + key.
// PEFT's shorthand "all-linear" is every nn.Linear but the output layer, i.e. every projection
// here (lm_head is never a candidate).
bool matchesSuffix(llvm::StringRef path, llvm::StringRef key) {
  return key == "all-linear" || path == key || path.ends_with(("." + key).str());
}

// A rank_pattern / alpha_pattern entry, matched like PEFT's get_pattern_key:
// re.match(rf"(.*\.)?({key})$", path).
struct Pattern {
  std::string key;
  std::shared_ptr<llvm::Regex> re; // shared: passes are copied when cloned
  double value = 0;
};

struct AttachLoraPass : public kt::impl::AttachLoraPassBase<AttachLoraPass> {
  using AttachLoraPassBase::AttachLoraPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = SymbolTable(module).lookup<func::FuncOp>("forward");
    if (!fn) {
      emitError(module.getLoc()) << "kt-attach-lora: the module has no func.func @forward";
      return signalPassFailure();
    }
    if (rank <= 0 || alpha <= 0) {
      emitError(module.getLoc()) << "kt-attach-lora: r and alpha must be positive (r=" << rank
                                 << ", alpha=" << alpha << ")";
      return signalPassFailure();
    }
    ranks_.clear();
    alphas_.clear();
    candidates_.clear();
    matched_.clear();
    matchedParams_.clear();
    hasExperts_ = false;
    if (failed(parsePatterns(rankPattern, "rank-pattern", ranks_)) ||
        failed(parsePatterns(alphaPattern, "alpha-pattern", alphas_)))
      return signalPassFailure();
    if (targetModules.empty() && targetParameters.empty()) {
      emitError(module.getLoc()) << "kt-attach-lora: no target-modules or target-parameters given";
      return signalPassFailure();
    }
    symbols_ = std::make_shared<SymbolTable>(module);
    builder_ = std::make_shared<OpBuilder>(module.getContext());
    // Adapters are declared after the weights, in the order their ops run.
    builder_->setInsertionPoint(fn);

    bool ok = true;
    fn.walk([&](Operation* op) {
      if (failed(attachLinear(op)) || failed(attachExperts(op)))
        ok = false;
    });
    if (!ok)
      return signalPassFailure();
    if (failed(checkAllMatched(module)))
      return signalPassFailure();
    setTrainingAttr(module);
  }

private:
  LogicalResult parsePatterns(llvm::ArrayRef<std::string> entries, llvm::StringRef option,
                              std::vector<Pattern>& out) {
    for (const std::string& e : entries) {
      size_t eq = e.rfind('=');
      double v = 0;
      if (eq == std::string::npos || llvm::StringRef(e).substr(eq + 1).getAsDouble(v) || v <= 0) {
        emitError(getOperation().getLoc()) << "kt-attach-lora: " << option << " entry '" << e
                                           << "' must be REGEX=VALUE with a positive VALUE";
        return failure();
      }
      Pattern p;
      p.key = e.substr(0, eq);
      p.value = v;
      p.re = std::make_shared<llvm::Regex>("^(.*\\.)?(" + p.key + ")$");
      std::string why;
      if (!p.re->isValid(why)) {
        emitError(getOperation().getLoc())
            << "kt-attach-lora: " << option << " regex '" << p.key << "' is invalid: " << why;
        return failure();
      }
      out.push_back(std::move(p));
    }
    return success();
  }

  std::optional<double> lookupPattern(const std::vector<Pattern>& ps, llvm::StringRef path) {
    for (const Pattern& p : ps)
      if (p.re->match(path))
        return p.value;
    return std::nullopt;
  }

  WeightOp declOf(Value v) {
    auto ref = v ? v.getDefiningOp<WeightRefOp>() : WeightRefOp();
    return ref ? symbols_->lookup<WeightOp>(ref.getWeight()) : WeightOp();
  }

  // Creates the kt.lora_adapter and returns its symbol.
  FlatSymbolRefAttr declare(llvm::StringRef module, llvm::StringRef peftSuffix,
                            llvm::StringRef patternPath, llvm::StringRef layout, int64_t in,
                            int64_t experts, llvm::ArrayRef<std::pair<WeightOp, int64_t>> targets) {
    MLIRContext* ctx = builder_->getContext();
    std::string peftName = (kPeftPrefix + module + peftSuffix).str();
    int64_t r = int64_t(lookupPattern(ranks_, patternPath).value_or(double(rank)));
    double a = lookupPattern(alphas_, patternPath).value_or(alpha);
    SmallVector<Attribute> refs;
    SmallVector<int64_t> offsets, rows;
    int64_t out = 0;
    for (auto [w, n] : targets) {
      refs.push_back(FlatSymbolRefAttr::get(w.getSymNameAttr()));
      offsets.push_back(out);
      rows.push_back(n);
      out += n;
    }
    std::string sym = "lora." + llvm::StringRef(peftName).drop_front(kPeftPrefix.size()).str();
    auto op = builder_->create<LoraAdapterOp>(
        builder_->getUnknownLoc(), builder_->getStringAttr(sym), builder_->getStringAttr(peftName),
        builder_->getStringAttr(layout), builder_->getI64IntegerAttr(r),
        builder_->getF64FloatAttr(a), builder_->getI64IntegerAttr(in),
        builder_->getI64IntegerAttr(out), builder_->getI64IntegerAttr(experts),
        builder_->getArrayAttr(refs), builder_->getDenseI64ArrayAttr(offsets),
        builder_->getDenseI64ArrayAttr(rows));
    return FlatSymbolRefAttr::get(ctx, op.getSymName());
  }

  void record(Operation* op, llvm::StringRef slot, FlatSymbolRefAttr adapter) {
    NamedAttrList attrs;
    if (auto old = op->getAttrOfType<DictionaryAttr>(kAdaptersAttr))
      attrs.append(old.getValue());
    attrs.set(slot, adapter);
    op->setAttr(kAdaptersAttr, attrs.getDictionary(op->getContext()));
  }

  // target_modules: the nn.Linear projections (attention, dense MLP, shared experts).
  LogicalResult attachLinear(Operation* op) {
    for (const ProjectionSlot& s : projectionSlots(op)) {
      WeightOp w = declOf(s.weight);
      if (!w || s.stackedExperts)
        continue;
      llvm::StringRef hf = w.getHfName();
      if (!hf.consume_back(".weight") || hf.contains("{e}"))
        continue;
      candidates_.insert(hf.rsplit('.').second.str());
      bool hit = false;
      for (const std::string& key : targetModules)
        if (matchesSuffix(hf, key)) {
          matched_.insert(key);
          hit = true;
        }
      if (!hit)
        continue;
      llvm::ArrayRef<int64_t> shape = w.getTensorType().getShape();
      if (shape.size() != 2)
        return op->emitError("kt-attach-lora: ")
               << w.getSymName() << " (" << hf << ") is not a 2-D projection";
      record(op, s.slot, declare(hf, "", hf, "linear", shape[1], 0, {{w, shape[0]}}));
    }
    return success();
  }

  // target_parameters: the fused routed experts of a MoE block, one ParamWrapper per parameter.
  LogicalResult attachExperts(Operation* op) {
    auto moe = llvm::dyn_cast<MoeOp>(op);
    if (!moe || targetParameters.empty())
      return success();
    WeightOp gate = declOf(moe.getGate()), up = declOf(moe.getUp()), down = declOf(moe.getDown());
    if (!gate || !up || !down)
      return success();
    llvm::StringRef hf = gate.getHfName();
    size_t at = hf.find(".{e}");
    if (at == llvm::StringRef::npos)
      return moe.emitError("kt-attach-lora: routed expert weight ")
             << gate.getSymName() << " has no per-expert name pattern ('{e}') to derive PEFT's "
             << "experts module from";
    std::string experts = hf.substr(0, at).str();
    hasExperts_ = true;
    // transformers 5 registers gate_up_proj before down_proj; that is PEFT's wrapping order.
    SmallVector<llvm::StringRef> params;
    for (llvm::StringRef p : {"gate_up_proj", "down_proj"}) {
      bool hit = false;
      for (const std::string& key : targetParameters)
        if (matchesSuffix(experts + "." + p.str(), key)) {
          matchedParams_.insert(key);
          hit = true;
        }
      if (hit)
        params.push_back(p);
    }
    llvm::ArrayRef<int64_t> g = gate.getTensorType().getShape(),
                            d = down.getTensorType().getShape();
    const int64_t E = g[0];
    for (auto [k, p] : llvm::enumerate(params)) {
      std::string suffix;
      for (size_t i = k + 1; i < params.size(); ++i)
        suffix += ".base_layer";
      std::string path = experts + "." + p.str();
      if (p == "gate_up_proj") {
        FlatSymbolRefAttr a =
            declare(experts, suffix, path, "experts_fused", g[2], E, {{gate, g[1]}, {up, g[1]}});
        record(op, "gate", a);
        record(op, "up", a);
      } else {
        record(op, "down",
               declare(experts, suffix, path, "experts_fused", d[2], E, {{down, d[1]}}));
      }
    }
    return success();
  }

  LogicalResult checkAllMatched(ModuleOp module) {
    for (const std::string& key : targetModules)
      if (!matched_.contains(key)) {
        std::string names;
        for (const std::string& c : candidates_)
          names += (names.empty() ? "" : ", ") + c;
        emitError(module.getLoc())
            << "kt-attach-lora: target module '" << key
            << "' matches no projection of this model (its projections: " << names << ")";
        return failure();
      }
    for (const std::string& key : targetParameters)
      if (!matchedParams_.contains(key)) {
        emitError(module.getLoc())
            << "kt-attach-lora: target parameter '" << key << "' matches no parameter: "
            << (hasExperts_ ? "routed experts have gate_up_proj and down_proj"
                            : "this model has no routed experts");
        return failure();
      }
    return success();
  }

  void setTrainingAttr(ModuleOp module) {
    Builder& b = *builder_;
    auto strings = [&](llvm::ArrayRef<std::string> v) {
      SmallVector<Attribute> a;
      for (const std::string& s : v)
        a.push_back(b.getStringAttr(s));
      return b.getArrayAttr(a);
    };
    NamedAttrList t;
    t.set("method", b.getStringAttr("lora"));
    t.set("r", b.getI64IntegerAttr(rank));
    t.set("alpha", b.getF64FloatAttr(alpha));
    t.set("target_modules", strings(targetModules));
    t.set("target_parameters", strings(targetParameters));
    module->setAttr(kTrainingAttr, t.getDictionary(module.getContext()));
  }

  // Per-run state (shared_ptr: a pass must stay copyable for cloning).
  std::shared_ptr<SymbolTable> symbols_;
  std::shared_ptr<OpBuilder> builder_;
  std::vector<Pattern> ranks_, alphas_;
  std::set<std::string> candidates_;
  llvm::StringSet<> matched_, matchedParams_;
  bool hasExperts_ = false;
};

} // namespace
