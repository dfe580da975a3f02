//===- DeriveTrainStep.cpp - kt-derive-train-step -------------------------===//
//
// Reverse-mode differentiation over kt ops (docs/training.md). The ops are
// model-level and pure, so each has one backward rule that needs only its
// operands (the saved input x, positions, frozen weights) and the gradient of
// its result; what happens inside (q, k, v, softmax, routing) is recomputed
// by the backward kernel from x. That keeps what the forward must save to one
// [T, H] activation per op input, and the graph small enough to read.
//
// Gradients are only derived where an adapter needs them. A value is
// *active* when an adapter influences it (it is the result of an op with
// adapters, or of an op with an active operand). Only ops with an active
// result get a backward op, and it returns dx only for an active input: below
// the lowest adapter no gradient flows (layer 0's attention needs no dx when
// the embedding is frozen).
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/Transforms/LoraSlots.h"
#include "dialects/kt/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir {
namespace kt {
#define GEN_PASS_DEF_DERIVETRAINSTEPPASS
#include "dialects/kt/Transforms/Passes.h.inc"
} // namespace kt
} // namespace mlir

using namespace mlir;
using namespace mlir::kt;

namespace {

bool hasAdapters(Operation* op) {
  auto a = op->getAttrOfType<DictionaryAttr>(kAdaptersAttr);
  return a && !a.empty();
}

struct DeriveTrainStepPass : public kt::impl::DeriveTrainStepPassBase<DeriveTrainStepPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    auto fwd = symbols.lookup<func::FuncOp>("forward");
    if (!fwd) {
      emitError(module.getLoc()) << "kt-derive-train-step: the module has no func.func @forward";
      return signalPassFailure();
    }
    if (symbols.lookup("train_step")) {
      emitError(module.getLoc()) << "kt-derive-train-step: the module already has @train_step";
      return signalPassFailure();
    }
    bool any = false;
    fwd.walk([&](Operation* op) { any |= hasAdapters(op); });
    if (!any) {
      emitError(module.getLoc())
          << "kt-derive-train-step: no op of @forward has LoRA adapters (run kt-attach-lora "
             "first): nothing to train";
      return signalPassFailure();
    }
    if (failed(build(module, fwd)))
      return signalPassFailure();
    // The inference entries run the base model; adapters live on the train_step's ops.
    fwd.walk([](Operation* op) { op->removeAttr(kAdaptersAttr); });
  }

private:
  LogicalResult build(ModuleOp module, func::FuncOp fwd) {
    MLIRContext* ctx = module.getContext();
    OpBuilder b(ctx);
    b.setInsertionPointAfter(fwd);
    Block& src = fwd.getBody().front();
    if (src.getNumArguments() != 2)
      return fwd.emitError("kt-derive-train-step: @forward must take (ids, positions)");
    Type ids = src.getArgument(0).getType();
    auto lossType = RankedTensorType::get({2}, b.getF32Type());
    auto fn = b.create<func::FuncOp>(fwd.getLoc(), "train_step",
                                     b.getFunctionType({ids, ids, ids}, {lossType}));
    Block* body = fn.addEntryBlock();
    b.setInsertionPointToStart(body);
    Value labels = body->getArgument(2);

    // ---- forward: clone @forward, without taps, with the loss instead of lm_head ----
    IRMapping map;
    map.map(src.getArgument(0), body->getArgument(0));
    map.map(src.getArgument(1), body->getArgument(1));
    SmallVector<Operation*> forward;
    CrossEntropyLossOp loss;
    for (Operation& op : src) {
      if (auto tap = llvm::dyn_cast<TapOp>(op)) {
        map.map(tap.getResult(), map.lookup(tap.getInput()));
      } else if (auto head = llvm::dyn_cast<LmHeadOp>(op)) {
        if (loss)
          return head.emitError("kt-derive-train-step: @forward has more than one kt.lm_head");
        loss = b.create<CrossEntropyLossOp>(
            head.getLoc(), TypeRange{head.getX().getType(), lossType}, map.lookup(head.getX()),
            labels, map.lookup(head.getWeight()), head.getPlacementAttr());
      } else if (!llvm::isa<func::ReturnOp>(op)) {
        forward.push_back(b.clone(op, map));
      }
    }
    if (!loss)
      return fwd.emitError("kt-derive-train-step: @forward has no kt.lm_head to put the loss on");

    // ---- activity: which values an adapter influences ----
    llvm::DenseSet<Value> active;
    for (Operation* op : forward) {
      bool a = hasAdapters(op) ||
               llvm::any_of(op->getOperands(), [&](Value v) { return active.contains(v); });
      if (a)
        for (Value r : op->getResults())
          active.insert(r);
    }

    // ---- backward, in reverse order ----
    llvm::DenseSet<Value> forwardValues;
    for (Operation* op : forward)
      for (Value r : op->getResults())
        forwardValues.insert(r);
    grads_.clear();
    saved_.clear();
    if (active.contains(loss.getX()))
      grads_[loss.getX()].push_back(loss.getDx());
    for (Operation* op : llvm::reverse(forward)) {
      if (op->getNumResults() != 1 || !active.contains(op->getResult(0)))
        continue;
      Value dy = sum(b, op, op->getResult(0));
      if (!dy)
        continue; // does not reach the loss
      if (failed(backward(b, op, dy, active, forwardValues)))
        return failure();
    }
    // AdamWAttrs defaults (plan.fbs); kt-rt train flags override them.
    b.create<AdamWOp>(fn.getLoc(), TypeRange{}, ValueRange{}, ArrayRef<NamedAttribute>{});
    b.create<func::ReturnOp>(fn.getLoc(), loss.getLoss());

    // What the backward reads of the forward: one f32 row per token for each saved value.
    int64_t savedBytes = 0;
    for (Value v : saved_)
      savedBytes += llvm::cast<RankedTensorType>(v.getType()).getShape().back() * 4;
    NamedAttrList t;
    if (auto old = module->getAttrOfType<DictionaryAttr>(kTrainingAttr))
      t.append(old.getValue());
    t.set("saved_activation_bytes_per_token", b.getI64IntegerAttr(savedBytes));
    module->setAttr(kTrainingAttr, t.getDictionary(ctx));
    return success();
  }

  // The gradient of `v`: its contributions summed (kt.add on the device of v's producer).
  Value sum(OpBuilder& b, Operation* producer, Value v) {
    auto it = grads_.find(v);
    if (it == grads_.end() || it->second.empty())
      return Value();
    Value total = it->second.front();
    for (Value g : llvm::drop_begin(it->second))
      total = b.create<AddOp>(producer->getLoc(), total.getType(), total, g,
                              producer->getAttrOfType<DeviceAttr>("placement"));
    return total;
  }

  void contribute(Value x, Value g, const llvm::DenseSet<Value>& active) {
    if (active.contains(x))
      grads_[x].push_back(g);
  }

  // The backward op of a model op: same operands with dy inserted after the activations
  // (x, or x and positions), same attributes (adapters and placement included), dx only
  // when x is active.
  LogicalResult gradOp(OpBuilder& b, Operation* op, llvm::StringRef name, unsigned numActs,
                       Value dy, const llvm::DenseSet<Value>& active,
                       const llvm::DenseSet<Value>& forwardValues) {
    Value x = op->getOperand(0);
    OperationState state(op->getLoc(), name);
    SmallVector<Value> operands(op->getOperands().take_front(numActs));
    operands.push_back(dy);
    llvm::append_range(operands, op->getOperands().drop_front(numActs));
    state.addOperands(operands);
    NamedAttrList attrs(op->getAttrDictionary());
    if (auto seg = attrs.get("operandSegmentSizes")) {
      SmallVector<int32_t> sizes(llvm::cast<DenseI32ArrayAttr>(seg).asArrayRef());
      sizes.insert(sizes.begin() + numActs, 1);
      attrs.set("operandSegmentSizes", b.getDenseI32ArrayAttr(sizes));
    }
    state.addAttributes(attrs);
    const bool needDx = active.contains(x);
    if (needDx)
      state.addTypes(x.getType());
    Operation* g = b.create(state);
    for (Value v : op->getOperands().take_front(numActs))
      if (forwardValues.contains(v))
        saved_.insert(v);
    if (needDx)
      grads_[x].push_back(g->getResult(0));
    return success();
  }

  LogicalResult backward(OpBuilder& b, Operation* op, Value dy, const llvm::DenseSet<Value>& active,
                         const llvm::DenseSet<Value>& forwardValues) {
    return llvm::TypeSwitch<Operation*, LogicalResult>(op)
        .Case([&](AddOp o) {
          contribute(o.getLhs(), dy, active);
          contribute(o.getRhs(), dy, active);
          return success();
        })
        .Case([&](RmsNormOp o) {
          // Norm weights are frozen: the op only has a backward when x is active.
          auto g = b.create<RmsNormGradOp>(o.getLoc(), o.getX().getType(), o.getX(), dy,
                                           o.getWeight(), o.getEpsAttr(), o.getPlacementAttr());
          if (forwardValues.contains(o.getX()))
            saved_.insert(o.getX());
          grads_[o.getX()].push_back(g.getDx());
          return success();
        })
        .Case(
            [&](LinearOp) { return gradOp(b, op, "kt.linear_grad", 1, dy, active, forwardValues); })
        .Case([&](AttentionOp) {
          return gradOp(b, op, "kt.attention_grad", 2, dy, active, forwardValues);
        })
        .Case([&](MlaAttentionOp) {
          return gradOp(b, op, "kt.mla_attention_grad", 2, dy, active, forwardValues);
        })
        .Case([&](MoeOp) { return gradOp(b, op, "kt.moe_grad", 1, dy, active, forwardValues); })
        .Case([&](MlpOp) { return gradOp(b, op, "kt.mlp_grad", 1, dy, active, forwardValues); })
        .Default([&](Operation* other) {
          return other->emitError("kt-derive-train-step: no backward rule for ")
                 << other->getName() << " (LoRA training supports embedding, rms_norm, linear, "
                 << "attention, mla_attention, moe, mlp and add)";
        });
  }

  llvm::DenseMap<Value, SmallVector<Value>> grads_;
  llvm::SetVector<Value> saved_;
};

} // namespace
