//===- AssignPlacement.cpp - kt-assign-placement --------------------------===//
//
// Places every weight and op that has no placement yet on a single device.
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"

namespace mlir {
namespace kt {
#define GEN_PASS_DEF_ASSIGNPLACEMENTPASS
#include "dialects/kt/Transforms/Passes.h.inc"
} // namespace kt
} // namespace mlir

using namespace mlir;
using namespace mlir::kt;

namespace {

struct AssignPlacementPass : public kt::impl::AssignPlacementPassBase<AssignPlacementPass> {
  using AssignPlacementPassBase::AssignPlacementPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Validate the option here rather than letting DeviceAttr::get assert:
    // the string comes straight from the command line.
    DeviceKind kind;
    int64_t index;
    std::string why;
    if (failed(parseDeviceSpec(device, kind, index, &why))) {
      // mlir::emitError (not module.emitError) so the whole module is not
      // dumped as a note under a command-line typo.
      emitError(module.getLoc()) << "kt-assign-placement: invalid device=\"" << device
                                 << "\": " << why;
      return signalPassFailure();
    }
    auto target = DeviceAttr::get(&getContext(), device);
    module.walk([&](PlacementOpInterface op) {
      if (!op.getPlacementAttr())
        op.setPlacementAttr(target);
    });
  }
};

} // namespace
