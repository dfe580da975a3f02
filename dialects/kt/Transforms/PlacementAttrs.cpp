//===- PlacementAttrs.cpp - Discardable placement attributes --------------===//

#include "dialects/kt/Transforms/PlacementAttrs.h"

#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace mlir::kt;

LogicalResult mlir::kt::verifyExpertPlacement(MoeOp op) {
  Attribute devicesAttr = op->getAttr(kExpertDevicesAttr);
  Attribute placementAttr = op->getAttr(kExpertPlacementAttr);
  if (!devicesAttr && !placementAttr) {
    if (op->hasAttr(kPrefillOffloadMinTokensAttr) || op->hasAttr(kPrefillOffloadDeviceAttr))
      return op.emitError() << "'" << kPrefillOffloadMinTokensAttr << "' needs '"
                            << kExpertPlacementAttr << "' (only CPU-held experts are streamed)";
    return success();
  }
  if (!devicesAttr || !placementAttr)
    return op.emitError() << "'" << kExpertDevicesAttr << "' and '" << kExpertPlacementAttr
                          << "' go together; only one is present";
  auto devices = llvm::dyn_cast<ArrayAttr>(devicesAttr);
  if (!devices || devices.empty() ||
      !llvm::all_of(devices, [](Attribute a) { return llvm::isa<DeviceAttr>(a); }))
    return op.emitError() << "'" << kExpertDevicesAttr
                          << "' must be a non-empty array of #kt.device, got " << devicesAttr;
  auto placement = llvm::dyn_cast<DenseI32ArrayAttr>(placementAttr);
  if (!placement)
    return op.emitError() << "'" << kExpertPlacementAttr
                          << "' must be array<i32: ...> (a device index per expert), got "
                          << placementAttr;
  if (uint64_t(placement.size()) != uint64_t(op.getNumExperts()))
    return op.emitError() << "'" << kExpertPlacementAttr << "' has " << placement.size()
                          << " entries but the op has " << op.getNumExperts() << " experts";
  for (auto [e, index] : llvm::enumerate(placement.asArrayRef()))
    if (index < 0 || size_t(index) >= devices.size())
      return op.emitError() << "'" << kExpertPlacementAttr << "': expert " << e
                            << " has device index " << index << ", but '" << kExpertDevicesAttr
                            << "' lists " << devices.size() << " device(s)";
  Attribute minTokens = op->getAttr(kPrefillOffloadMinTokensAttr);
  Attribute device = op->getAttr(kPrefillOffloadDeviceAttr);
  if (bool(minTokens) != bool(device))
    return op.emitError() << "'" << kPrefillOffloadMinTokensAttr << "' and '"
                          << kPrefillOffloadDeviceAttr << "' go together; only one is present";
  if (minTokens) {
    auto n = llvm::dyn_cast<IntegerAttr>(minTokens);
    if (!n || n.getInt() < 1)
      return op.emitError() << "'" << kPrefillOffloadMinTokensAttr
                            << "' must be a positive integer, got " << minTokens;
    if (!llvm::isa<DeviceAttr>(device))
      return op.emitError() << "'" << kPrefillOffloadDeviceAttr << "' must be a #kt.device, got "
                            << device;
  }
  return success();
}

llvm::SmallVector<DeviceAttr> mlir::kt::getExpertDevices(MoeOp op) {
  llvm::SmallVector<DeviceAttr> out;
  auto devices = op->getAttrOfType<ArrayAttr>(kExpertDevicesAttr);
  auto placement = op->getAttrOfType<DenseI32ArrayAttr>(kExpertPlacementAttr);
  if (!devices || !placement)
    return out;
  for (int32_t index : placement.asArrayRef())
    out.push_back(llvm::cast<DeviceAttr>(devices[size_t(index)]));
  return out;
}
