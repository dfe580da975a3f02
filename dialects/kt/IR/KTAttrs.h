//===- KTAttrs.h - kt dialect attributes ------------------------*- C++ -*-===//

#ifndef KT_DIALECTS_KT_IR_KTATTRS_H
#define KT_DIALECTS_KT_IR_KTATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"

#include <cstdint>
#include <string>

namespace mlir {
namespace kt {

/// The class of a #kt.device.
enum class DeviceKind { GPU, CPU, NPU, Disk };

/// Decodes "gpu:N", "cpu:numaN", "npu:N" or "disk". On failure returns
/// failure() and, if `why` is given, a sentence saying what is wrong.
LogicalResult parseDeviceSpec(llvm::StringRef spec, DeviceKind& kind, int64_t& index,
                              std::string* why = nullptr);
/// The inverse of parseDeviceSpec (index is ignored for Disk).
std::string formatDeviceSpec(DeviceKind kind, int64_t index);

/// All parameters of #kt.rope as plain values, with the attribute's defaults.
/// Importers fill one of these from config.json and call RopeAttr::get(ctx, p).
struct RopeParams {
  int64_t dim = 0;
  double theta = 10000.0;
  std::string type = "default"; // default | linear | yarn | llama3
  double factor = 1.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 0.0;
  double betaSlow = 0.0;
  double mscale = 0.0;
  double mscaleAllDim = 0.0;
  double attentionFactor = 1.0;
  double lowFreqFactor = 0.0;
  double highFreqFactor = 0.0;
  bool interleaved = false;
};

namespace detail {
// Parsers/comparators used by the generated attribute code (see KTAttrs.td).
FailureOr<double> parseF64Parameter(AsmParser& parser);
FailureOr<bool> parseBoolParameter(AsmParser& parser);
// Hand-written storage of RopeAttr (KTAttrs.cpp); see genStorageClass in KTAttrs.td.
struct RopeAttrStorage;
} // namespace detail

} // namespace kt
} // namespace mlir

#define GET_ATTRDEF_CLASSES
#include "dialects/kt/IR/KTAttrs.h.inc"

#endif // KT_DIALECTS_KT_IR_KTATTRS_H
