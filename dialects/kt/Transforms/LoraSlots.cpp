//===- LoraSlots.cpp - Which weight operands LoRA can target --------------===//

#include "dialects/kt/Transforms/LoraSlots.h"

#include "dialects/kt/IR/KTOps.h"

#include "llvm/ADT/TypeSwitch.h"

namespace mlir {
namespace kt {

namespace {
// Forward op and its backward op have the same weight accessors, so one generic lambda each.
template <typename Op> SmallVector<ProjectionSlot> attentionSlots(Op o) {
  return {{"q_proj", o.getQProj(), false},
          {"k_proj", o.getKProj(), false},
          {"v_proj", o.getVProj(), false},
          {"o_proj", o.getOProj(), false}};
}
template <typename Op> SmallVector<ProjectionSlot> mlaSlots(Op o) {
  return {{"q_proj", o.getQProj(), false},      {"q_a_proj", o.getQAProj(), false},
          {"q_b_proj", o.getQBProj(), false},   {"kv_a_proj", o.getKvAProj(), false},
          {"kv_b_proj", o.getKvBProj(), false}, {"o_proj", o.getOProj(), false}};
}
template <typename Op> SmallVector<ProjectionSlot> moeSlots(Op o) {
  return {{"gate", o.getGate(), true},           {"up", o.getUp(), true},
          {"down", o.getDown(), true},           {"shared_gate", o.getSharedGate(), false},
          {"shared_up", o.getSharedUp(), false}, {"shared_down", o.getSharedDown(), false}};
}
template <typename Op> SmallVector<ProjectionSlot> mlpSlots(Op o) {
  return {{"gate", o.getGate(), false}, {"up", o.getUp(), false}, {"down", o.getDown(), false}};
}
} // namespace

SmallVector<ProjectionSlot> projectionSlots(Operation* op) {
  return llvm::TypeSwitch<Operation*, SmallVector<ProjectionSlot>>(op)
      .Case<AttentionOp, AttentionGradOp>([](auto o) { return attentionSlots(o); })
      .Case<MlaAttentionOp, MlaAttentionGradOp>([](auto o) { return mlaSlots(o); })
      .Case<MoeOp, MoeGradOp>([](auto o) { return moeSlots(o); })
      .Case<MlpOp, MlpGradOp>([](auto o) { return mlpSlots(o); })
      .Case<LinearOp, LinearGradOp>([](auto o) {
        return SmallVector<ProjectionSlot>{{"weight", o.getWeight(), false}};
      })
      .Default([](Operation*) { return SmallVector<ProjectionSlot>{}; });
}

} // namespace kt
} // namespace mlir
