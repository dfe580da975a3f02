//===- LoraSlots.h - Which weight operands LoRA can target ------*- C++ -*-===//
//
// The projections of each kt op that a LoRA adapter may sit on, by the slot
// name the plan uses for them (runtime/plan/OpSignature.cpp), so that the pass
// that attaches adapters and the plan emitter agree on what "q_proj" of an
// attention op or "shared_down" of a MoE block is.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECTS_KT_TRANSFORMS_LORASLOTS_H
#define KT_DIALECTS_KT_TRANSFORMS_LORASLOTS_H

#include "mlir/IR/Operation.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

namespace mlir {
namespace kt {

struct ProjectionSlot {
  llvm::StringRef slot; // plan slot name: "q_proj", "kv_b_proj", "gate", "shared_up", "weight", ...
  Value weight;         // the operand (a kt.weight_ref), null when the optional slot is absent
  bool stackedExperts;  // routed experts [E, out, in] (PEFT target_parameters, fused layout)
};

/// The LoRA-able projections of `op` (kt.linear, kt.attention, kt.mla_attention,
/// kt.mlp, kt.moe and their _grad ops), in slot order; empty for other ops.
/// Norms, biases, routers and the embedding are never adapted.
llvm::SmallVector<ProjectionSlot> projectionSlots(Operation* op);

/// Name of the discardable attribute mapping slot names to kt.lora_adapter symbols.
inline constexpr llvm::StringLiteral kAdaptersAttr = "kt.adapters";
/// Module attribute describing the training setup (method, r, alpha, targets, ...).
inline constexpr llvm::StringLiteral kTrainingAttr = "kt.training";

} // namespace kt
} // namespace mlir

#endif // KT_DIALECTS_KT_TRANSFORMS_LORASLOTS_H
