//===- Passes.h - kt dialect passes -----------------------------*- C++ -*-===//

#ifndef KT_DIALECTS_KT_TRANSFORMS_PASSES_H
#define KT_DIALECTS_KT_TRANSFORMS_PASSES_H

#include "dialects/kt/IR/KTOps.h"

#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir {
namespace kt {

#define GEN_PASS_DECL
#include "dialects/kt/Transforms/Passes.h.inc"

/// Registers all kt passes (for kt-opt and kt-compile's pipeline parsing).
#define GEN_PASS_REGISTRATION
#include "dialects/kt/Transforms/Passes.h.inc"

} // namespace kt
} // namespace mlir

#endif // KT_DIALECTS_KT_TRANSFORMS_PASSES_H
