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
class WeightPacker;

// Fills model metadata, devices, weights, buffers, KV-cache layout and the "prefill" and "decode"
// entry points of `builder` from `module`. Weights marked with `quant` and placed on the CPU are
// packed by `packer` into the plan's sidecar (required when there are any). Reports problems as
// MLIR diagnostics on the op at fault.
mlir::LogicalResult emitPlan(mlir::ModuleOp module, PlanBuilder& builder, WeightPacker* packer);

} // namespace kt::compiler
