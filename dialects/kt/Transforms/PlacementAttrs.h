//===- PlacementAttrs.h - Discardable placement attributes ------*- C++ -*-===//
//
// Attributes kt-partition writes besides the ops' own `placement`, until the
// kt dialect grows inherent ones for them:
//
//   on kt.moe
//     kt.expert_devices = [#kt.device<"gpu:0">, #kt.device<"cpu:numa0">, ...]
//     kt.expert_placement = array<i32: ...>     expert e -> index into the list
//     kt.prefill_offload_min_tokens = N : i64   prompts of >= N tokens stream
//     kt.prefill_offload_device = #kt.device<...>  the CPU-held experts there
//   on the module
//     kt.partition = {profile = "...", ...}     what the prediction assumed
//
// A kt.moe's stacked expert weights carry `placement` = the device holding
// most of its experts; kt.expert_placement is the authoritative per-expert map.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECTS_KT_TRANSFORMS_PLACEMENTATTRS_H
#define KT_DIALECTS_KT_TRANSFORMS_PLACEMENTATTRS_H

#include "dialects/kt/IR/KTOps.h"

#include "llvm/ADT/SmallVector.h"

namespace mlir {
namespace kt {

inline constexpr llvm::StringLiteral kExpertDevicesAttr = "kt.expert_devices";
inline constexpr llvm::StringLiteral kExpertPlacementAttr = "kt.expert_placement";
inline constexpr llvm::StringLiteral kPrefillOffloadMinTokensAttr = "kt.prefill_offload_min_tokens";
inline constexpr llvm::StringLiteral kPrefillOffloadDeviceAttr = "kt.prefill_offload_device";
inline constexpr llvm::StringLiteral kPartitionAttr = "kt.partition";

/// Checks the discardable placement attributes of `op` (both expert
/// attributes or neither; one device per expert; indices in range; offload
/// attributes well-typed). Emits an error on `op` and fails if malformed.
LogicalResult verifyExpertPlacement(MoeOp op);

/// The device of each routed expert of `op` from kt.expert_placement, or an
/// empty vector when the op has none. Call verifyExpertPlacement first.
llvm::SmallVector<DeviceAttr> getExpertDevices(MoeOp op);

} // namespace kt
} // namespace mlir

#endif // KT_DIALECTS_KT_TRANSFORMS_PLACEMENTATTRS_H
