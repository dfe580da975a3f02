//===- VerifyPlacement.cpp - kt-verify-placement --------------------------===//
//
// The contract between partitioning and plan emission, checked in one place:
// everything that can be placed is placed, and the per-expert maps kt-partition
// adds to kt.moe are well formed (see PlacementAttrs.h).
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/Transforms/Passes.h"
#include "dialects/kt/Transforms/PlacementAttrs.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir {
namespace kt {
#define GEN_PASS_DEF_VERIFYPLACEMENTPASS
#include "dialects/kt/Transforms/Passes.h.inc"
} // namespace kt
} // namespace mlir

using namespace mlir;
using namespace mlir::kt;

namespace {

struct VerifyPlacementPass : public kt::impl::VerifyPlacementPassBase<VerifyPlacementPass> {
  void runOnOperation() override {
    bool ok = true;
    getOperation().walk([&](Operation* op) {
      if (auto placed = llvm::dyn_cast<PlacementOpInterface>(op);
          placed && !placed.getPlacementAttr()) {
        op->emitError() << "has no placement (run kt-partition or kt-assign-placement)";
        ok = false;
      }
      if (auto moe = llvm::dyn_cast<MoeOp>(op))
        ok = succeeded(verifyExpertPlacement(moe)) && ok;
    });
    if (!ok)
      signalPassFailure();
    markAllAnalysesPreserved();
  }
};

} // namespace
