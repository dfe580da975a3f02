#pragma once
// Lowers a placed kt module to the plan's entry points: every kt op of @forward becomes one step on
// its device, every kt.weight a plan weight (byte ranges of its files), every SSA activation a
// buffer. Buffers are reused once their value is dead (liveness over the straight-line body), so
// activation memory is bounded by the widest point of the graph, not by its length.
#include "runtime/schema/plan_generated.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

namespace kt::compiler {

class PlanBuilder;

// Fills model metadata, devices, weights, buffers, KV-cache layout and the "prefill" and "decode"
// entry points of `builder` from `module`. Reports problems as MLIR diagnostics on the op at fault.
mlir::LogicalResult emitPlan(mlir::ModuleOp module, PlanBuilder& builder);

} // namespace kt::compiler
