//===- Passes.td - kt dialect passes ------------------------*- tablegen -*-===//

#ifndef KT_DIALECT_KT_TRANSFORMS_PASSES_TD
#define KT_DIALECT_KT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AssignPlacementPass : Pass<"kt-assign-placement", "::mlir::ModuleOp"> {
  let summary = "Place every unplaced weight and op on one device";
  let description = [{
    Sets `placement = #kt.device<device>` on every `kt.weight` and every kt op
    with a placement (all ops implementing PlacementOpInterface, i.e. the ones
    in `@forward`) that does not have one yet. Existing placements are kept,
    so a user (or an earlier pass) can pin some ops and let this pass place the
    rest. It is the trivial partitioner: the baseline the cost-model driven
    partitioner is compared against, and a way to run a whole model on one
    device.
  }];
  let dependentDialects = ["::mlir::kt::KTDialect"];
  let options = [
    Option<"device", "device", "std::string", /*default=*/"\"cpu:numa0\"",
           "Device for unplaced weights and ops: gpu:N, cpu:numaN, npu:N or disk">
  ];
}

#endif // KT_DIALECT_KT_TRANSFORMS_PASSES_TD
