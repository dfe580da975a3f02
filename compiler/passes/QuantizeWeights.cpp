#include "compiler/passes/QuantizeWeights.h"

#include "dialects/kt/IR/KTOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

namespace kt::compiler {

namespace {

using namespace mlir;
namespace ktd = mlir::kt;

struct Scheme {
  std::string name; // QuantAttr scheme: f32 | bf16 | int8 | int4
  int64_t group = 0;
  bool symmetric = true;
};

bool parseScheme(const std::string& s, Scheme* out) {
  if (s == "f32" || s == "bf16" || s == "int8") {
    *out = {s, 0, true};
    return true;
  }
  if (s == "int4" || s == "int4:g32")
    *out = {"int4", 32, true};
  else if (s == "int4:g128")
    *out = {"int4", 128, true};
  else if (s == "int4:g32:asym")
    *out = {"int4", 32, false};
  else if (s == "int4:g128:asym")
    *out = {"int4", 128, false};
  else
    return false;
  return true;
}

// The operands of `op` that the CPU kernels consume as (possibly packed) matrices.
llvm::SmallVector<Value> packableOperands(Operation* op) {
  return llvm::TypeSwitch<Operation*, llvm::SmallVector<Value>>(op)
      .Case([](ktd::LinearOp o) { return llvm::SmallVector<Value>{o.getWeight()}; })
      .Case([](ktd::AttentionOp o) {
        return llvm::SmallVector<Value>{o.getQProj(), o.getKProj(), o.getVProj(), o.getOProj()};
      })
      .Case([](ktd::MlaAttentionOp o) {
        // kv_b_proj is read row by row in f32 for the absorbed form: kept as is.
        return llvm::SmallVector<Value>{o.getQProj(), o.getQAProj(), o.getQBProj(), o.getKvAProj(),
                                        o.getOProj()};
      })
      .Case([](ktd::MoeOp o) {
        return llvm::SmallVector<Value>{o.getGate(),       o.getUp(),       o.getDown(),
                                        o.getSharedGate(), o.getSharedUp(), o.getSharedDown()};
      })
      .Case([](ktd::MlpOp o) {
        return llvm::SmallVector<Value>{o.getGate(), o.getUp(), o.getDown()};
      })
      .Case([](ktd::LmHeadOp o) { return llvm::SmallVector<Value>{o.getWeight()}; })
      .Case([](ktd::EmbeddingOp o) { return llvm::SmallVector<Value>{o.getTable()}; })
      .Default([](Operation*) { return llvm::SmallVector<Value>{}; });
}

class QuantizeWeightsPass : public PassWrapper<QuantizeWeightsPass, OperationPass<ModuleOp>> {
public:
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(QuantizeWeightsPass)
  explicit QuantizeWeightsPass(Scheme s) : scheme_(std::move(s)) {}
  StringRef getArgument() const override { return "kt-quantize-weights"; }
  StringRef getDescription() const override {
    return "Mark CPU weight matrices for packing/quantization";
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    // A weight is packed only if every use of it can read the packed form and it lives on the CPU.
    llvm::DenseMap<Operation*, bool> packable;
    module.walk([&](ktd::WeightRefOp ref) {
      auto decl = symbols.lookup<ktd::WeightOp>(ref.getWeight());
      if (!decl)
        return;
      bool ok = true;
      for (OpOperand& use : ref.getResult().getUses()) {
        auto operands = packableOperands(use.getOwner());
        ok &= llvm::is_contained(operands, use.get());
      }
      auto it = packable.try_emplace(decl.getOperation(), true).first;
      it->second &= ok;
    });
    for (auto [op, ok] : packable) {
      auto decl = llvm::cast<ktd::WeightOp>(op);
      if (!ok || decl.getQuantAttr() || decl.getTensorType().getRank() < 2)
        continue;
      if (auto dev = decl.getPlacementAttr(); dev && dev.getKind() != ktd::DeviceKind::CPU)
        continue;
      // int4 groups run along the input dimension; a matrix whose input size is not a multiple of
      // the group falls back to groups of 32, then to int8 (never a group straddling rows).
      Scheme s = scheme_;
      int64_t k = decl.getTensorType().getShape().back();
      if (s.name == "int4" && k % s.group)
        s.group = 32;
      if (s.name == "int4" && k % s.group)
        s = {"int8", 0, true};
      decl.setQuantAttr(ktd::QuantAttr::get(&getContext(), s.name, s.group, s.symmetric));
    }
  }

private:
  Scheme scheme_;
};

} // namespace

std::unique_ptr<mlir::Pass> createQuantizeWeightsPass(const std::string& scheme,
                                                      std::string* error) {
  Scheme s;
  if (!parseScheme(scheme, &s)) {
    *error = "unknown --cpu-quant '" + scheme +
             "' (f32, bf16, int8, int4, int4:g32, int4:g128, int4:g32:asym, int4:g128:asym)";
    return nullptr;
  }
  return std::make_unique<QuantizeWeightsPass>(s);
}

} // namespace kt::compiler
