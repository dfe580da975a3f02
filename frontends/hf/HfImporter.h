#pragma once
// Builds the kt-dialect module of a resolved Hugging Face model: one kt.weight per checkpoint
// tensor (or stacked expert group), and func.func @forward(ids, positions) -> logits made of kt
// ops.
#include "frontends/hf/HfModel.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace kt::hf {

// Loads the dialects the importer emits into `ctx` and builds the module. The description has
// already been validated (describeModel), so this cannot fail on user input.
mlir::OwningOpRef<mlir::ModuleOp> importModel(mlir::MLIRContext& ctx, const ModelDesc& model);

} // namespace kt::hf
