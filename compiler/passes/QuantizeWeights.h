#pragma once
// kt-quantize-weights: marks the weight matrices that CPU kernels multiply (projections, MLP and
// expert matrices, lm_head) with `quant = #kt.quant<...>`; the plan emitter then packs them into
// the sidecar. Norms, biases, routers and MLA's kv_b (read as f32 rows) keep their checkpoint
// bytes.
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>

namespace kt::compiler {

// `scheme`: f32 | bf16 | int8 | int4 | int4:g32 | int4:g128 | int4:g32:asym | int4:g128:asym.
// Returns nullptr and sets *error for an unknown scheme.
std::unique_ptr<mlir::Pass> createQuantizeWeightsPass(const std::string& scheme,
                                                      std::string* error);

} // namespace kt::compiler
