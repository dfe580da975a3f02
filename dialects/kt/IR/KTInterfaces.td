//===- KTInterfaces.td - kt op interfaces -------------------*- tablegen -*-===//

#ifndef KT_DIALECT_KTINTERFACES_TD
#define KT_DIALECT_KTINTERFACES_TD

include "mlir/IR/OpBase.td"

// Every op that does work on some device (and kt.weight, whose bytes live on
// some device) carries an optional `placement`. The interface lets placement
// passes and the partitioner treat them uniformly without a list of op names;
// the methods are the ones ODS generates for `OptionalAttr<KT_DeviceAttr>:$placement`.
def KT_PlacementOpInterface : OpInterface<"PlacementOpInterface"> {
  let cppNamespace = "::mlir::kt";
  let description = [{
    An op with an optional `placement = #kt.device<...>` attribute.
  }];
  let methods = [
    InterfaceMethod<"The device this op (or weight) is placed on, or null.",
      "::mlir::kt::DeviceAttr", "getPlacementAttr">,
    InterfaceMethod<"Places this op (or weight) on `device`.",
      "void", "setPlacementAttr", (ins "::mlir::kt::DeviceAttr":$device)>,
  ];
}

#endif // KT_DIALECT_KTINTERFACES_TD
