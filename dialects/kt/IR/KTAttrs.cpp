//===- KTAttrs.cpp - kt dialect attributes --------------------------------===//

#include "dialects/kt/IR/KTAttrs.h"
#include "dialects/kt/IR/KTDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/Hashing.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/ADT/bit.h"

#include <cmath>
#include <tuple>
#include <utility>

using namespace mlir;
using namespace mlir::kt;

//===----------------------------------------------------------------------===//
// Device specs
//===----------------------------------------------------------------------===//

// Parses a non-negative decimal index with no sign and no leading zeros, so
// that every device has exactly one spelling (attributes compare by string).
static bool parseIndex(llvm::StringRef digits, int64_t& index) {
  if (digits.empty() || !llvm::all_of(digits, llvm::isDigit))
    return false;
  if (digits.size() > 1 && digits.front() == '0')
    return false;
  return !digits.getAsInteger(10, index);
}

LogicalResult mlir::kt::parseDeviceSpec(llvm::StringRef spec, DeviceKind& kind, int64_t& index,
                                        std::string* why) {
  auto fail = [&](llvm::StringRef reason) {
    if (why)
      *why = reason.str();
    return failure();
  };
  index = 0;
  if (spec == "disk") {
    kind = DeviceKind::Disk;
    return success();
  }
  llvm::StringRef rest = spec;
  llvm::StringRef indexWhat;
  if (rest.consume_front("gpu:")) {
    kind = DeviceKind::GPU;
    indexWhat = "a GPU index";
  } else if (rest.consume_front("npu:")) {
    kind = DeviceKind::NPU;
    indexWhat = "an NPU index";
  } else if (rest.consume_front("cpu:")) {
    kind = DeviceKind::CPU;
    if (!rest.consume_front("numa"))
      return fail("a CPU device is 'cpu:numaN' (N = NUMA node)");
    indexWhat = "a NUMA node index";
  } else {
    return fail("expected 'gpu:N', 'cpu:numaN', 'npu:N' or 'disk'");
  }
  if (!parseIndex(rest, index))
    return fail(
        ("'" + rest + "' is not " + indexWhat + " (a non-negative integer without leading zeros)")
            .str());
  return success();
}

std::string mlir::kt::formatDeviceSpec(DeviceKind kind, int64_t index) {
  switch (kind) {
  case DeviceKind::GPU:
    return "gpu:" + std::to_string(index);
  case DeviceKind::CPU:
    return "cpu:numa" + std::to_string(index);
  case DeviceKind::NPU:
    return "npu:" + std::to_string(index);
  case DeviceKind::Disk:
    return "disk";
  }
  llvm_unreachable("unknown DeviceKind");
}

LogicalResult DeviceAttr::verify(llvm::function_ref<InFlightDiagnostic()> emitError,
                                 llvm::StringRef spec) {
  DeviceKind kind;
  int64_t index;
  std::string why;
  if (failed(parseDeviceSpec(spec, kind, index, &why)))
    return emitError() << "invalid device \"" << spec << "\": " << why;
  return success();
}

DeviceKind DeviceAttr::getKind() const {
  DeviceKind kind = DeviceKind::Disk;
  int64_t index;
  (void)parseDeviceSpec(getSpec(), kind, index);
  return kind;
}

int64_t DeviceAttr::getIndex() const {
  DeviceKind kind;
  int64_t index = 0;
  (void)parseDeviceSpec(getSpec(), kind, index);
  return index;
}

//===----------------------------------------------------------------------===//
// #kt.quant
//===----------------------------------------------------------------------===//

LogicalResult QuantAttr::verify(llvm::function_ref<InFlightDiagnostic()> emitError,
                                llvm::StringRef scheme, int64_t group, bool symmetric) {
  bool isFloat = scheme == "f32" || scheme == "bf16" || scheme == "f16";
  if (!isFloat && scheme != "int8" && scheme != "int4")
    return emitError() << "unknown quantization scheme \"" << scheme
                       << "\" (expected f32, bf16, f16, int8 or int4)";
  if (scheme == "int4") {
    if (group != 32 && group != 64 && group != 128)
      return emitError() << "int4 quantization needs group = 32, 64 or 128, got " << group;
  } else if (group != 0) {
    return emitError() << "group = " << group << " only applies to int4 (scheme \"" << scheme
                       << "\" is " << (isFloat ? "a plain cast" : "per output channel") << ")";
  }
  if (isFloat && !symmetric)
    return emitError() << "symmetric = false only applies to int8/int4, not \"" << scheme << "\"";
  return success();
}

bool QuantAttr::isInteger() const {
  return getScheme() == "int8" || getScheme() == "int4";
}

int64_t QuantAttr::getBitsPerElement() const {
  return llvm::StringSwitch<int64_t>(getScheme())
      .Case("f32", 32)
      .Cases("bf16", "f16", 16)
      .Case("int8", 8)
      .Case("int4", 4)
      .Default(0);
}

//===----------------------------------------------------------------------===//
// #kt.storage
//===----------------------------------------------------------------------===//

LogicalResult StorageAttr::verify(llvm::function_ref<InFlightDiagnostic()> emitError,
                                  llvm::StringRef file, uint64_t offset, uint64_t size) {
  if (file.empty())
    return emitError() << "storage file name must not be empty";
  if (size == 0)
    return emitError() << "storage range in \"" << file << "\" has size 0";
  if (offset + size < offset)
    return emitError() << "storage range in \"" << file << "\" overflows: offset " << offset
                       << " + size " << size;
  return success();
}

//===----------------------------------------------------------------------===//
// #kt.rope
//===----------------------------------------------------------------------===//

LogicalResult RopeAttr::verify(llvm::function_ref<InFlightDiagnostic()> emitError, int64_t dim,
                               double theta, llvm::StringRef type, double factor,
                               int64_t originalMaxPosition, double betaFast, double betaSlow,
                               double mscale, double mscaleAllDim, double attentionFactor,
                               double lowFreqFactor, double highFreqFactor, bool interleaved) {
  if (dim <= 0 || dim % 2 != 0)
    return emitError() << "rope dim must be a positive even number, got " << dim;
  if (!(theta > 0) || !std::isfinite(theta))
    return emitError() << "rope theta must be positive and finite, got " << theta;
  if (type != "default" && type != "linear" && type != "yarn" && type != "llama3")
    return emitError() << "unknown rope type \"" << type
                       << "\" (expected default, linear, yarn or llama3)";
  if (!(factor > 0) || !std::isfinite(factor))
    return emitError() << "rope factor must be positive and finite, got " << factor;
  if (originalMaxPosition < 0)
    return emitError() << "rope original_max_position must be >= 0, got " << originalMaxPosition;
  const std::pair<const char*, double> nonNegative[] = {{"beta_fast", betaFast},
                                                        {"beta_slow", betaSlow},
                                                        {"mscale", mscale},
                                                        {"mscale_all_dim", mscaleAllDim},
                                                        {"attention_factor", attentionFactor},
                                                        {"low_freq_factor", lowFreqFactor},
                                                        {"high_freq_factor", highFreqFactor}};
  for (auto [name, value] : nonNegative)
    if (!(value >= 0) || !std::isfinite(value))
      return emitError() << "rope " << name << " must be finite and >= 0, got " << value;
  if ((type == "yarn" || type == "llama3") && originalMaxPosition <= 0)
    return emitError() << "rope type \"" << type << "\" needs original_max_position > 0";
  if (type == "llama3" && !(lowFreqFactor > 0 && highFreqFactor > lowFreqFactor))
    return emitError() << "rope type \"llama3\" needs 0 < low_freq_factor < high_freq_factor, got "
                       << lowFreqFactor << " and " << highFreqFactor;
  return success();
}

RopeParams RopeAttr::getParams() const {
  RopeParams p;
  p.dim = getDim();
  p.theta = getTheta();
  p.type = getType().str();
  p.factor = getFactor();
  p.originalMaxPosition = getOriginalMaxPosition();
  p.betaFast = getBetaFast();
  p.betaSlow = getBetaSlow();
  p.mscale = getMscale();
  p.mscaleAllDim = getMscaleAllDim();
  p.attentionFactor = getAttentionFactor();
  p.lowFreqFactor = getLowFreqFactor();
  p.highFreqFactor = getHighFreqFactor();
  p.interleaved = getInterleaved();
  return p;
}

//===----------------------------------------------------------------------===//
// Parameter parsers used by the generated code
//===----------------------------------------------------------------------===//

FailureOr<double> mlir::kt::detail::parseF64Parameter(AsmParser& parser) {
  // Accept `10000` as well as `10000.0`: config.json writes both, and MLIR's
  // float parser alone rejects a decimal integer literal.
  int64_t asInt;
  OptionalParseResult intResult = parser.parseOptionalInteger(asInt);
  if (intResult.has_value()) {
    if (failed(*intResult))
      return failure();
    return static_cast<double>(asInt);
  }
  double value;
  if (parser.parseFloat(value))
    return failure();
  return value;
}

FailureOr<bool> mlir::kt::detail::parseBoolParameter(AsmParser& parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(), "expected 'true' or 'false'");
}

//===----------------------------------------------------------------------===//
// RopeAttr storage
//===----------------------------------------------------------------------===//

namespace mlir {
namespace kt {
namespace detail {

// Written by hand (with the accessors below) because the generated storage would hash `double` with
// llvm::hash_value, which does not exist. Doubles are compared and hashed by
// their bit patterns, which is what uniquing needs (1.0 and 1.0 are the same
// attribute; there are no NaNs, the verifier rejects them).
struct RopeAttrStorage : public AttributeStorage {
  using KeyTy = std::tuple<int64_t, double, llvm::StringRef, double, int64_t, double, double,
                           double, double, double, double, double, bool>;

  explicit RopeAttrStorage(const KeyTy& key)
      : dim(std::get<0>(key)), theta(std::get<1>(key)), type(std::get<2>(key)),
        factor(std::get<3>(key)), original_max_position(std::get<4>(key)),
        beta_fast(std::get<5>(key)), beta_slow(std::get<6>(key)), mscale(std::get<7>(key)),
        mscale_all_dim(std::get<8>(key)), attention_factor(std::get<9>(key)),
        low_freq_factor(std::get<10>(key)), high_freq_factor(std::get<11>(key)),
        interleaved(std::get<12>(key)) {}

  KeyTy getAsKey() const {
    return KeyTy(dim, theta, type, factor, original_max_position, beta_fast, beta_slow, mscale,
                 mscale_all_dim, attention_factor, low_freq_factor, high_freq_factor, interleaved);
  }

  static uint64_t bits(double d) { return llvm::bit_cast<uint64_t>(d); }

  bool operator==(const KeyTy& key) const {
    KeyTy self = getAsKey();
    return std::get<0>(self) == std::get<0>(key) && std::get<2>(self) == std::get<2>(key) &&
           std::get<4>(self) == std::get<4>(key) && std::get<12>(self) == std::get<12>(key) &&
           bits(std::get<1>(self)) == bits(std::get<1>(key)) &&
           bits(std::get<3>(self)) == bits(std::get<3>(key)) &&
           bits(std::get<5>(self)) == bits(std::get<5>(key)) &&
           bits(std::get<6>(self)) == bits(std::get<6>(key)) &&
           bits(std::get<7>(self)) == bits(std::get<7>(key)) &&
           bits(std::get<8>(self)) == bits(std::get<8>(key)) &&
           bits(std::get<9>(self)) == bits(std::get<9>(key)) &&
           bits(std::get<10>(self)) == bits(std::get<10>(key)) &&
           bits(std::get<11>(self)) == bits(std::get<11>(key));
  }

  static llvm::hash_code hashKey(const KeyTy& key) {
    return llvm::hash_combine(std::get<0>(key), bits(std::get<1>(key)), std::get<2>(key),
                              bits(std::get<3>(key)), std::get<4>(key), bits(std::get<5>(key)),
                              bits(std::get<6>(key)), bits(std::get<7>(key)),
                              bits(std::get<8>(key)), bits(std::get<9>(key)),
                              bits(std::get<10>(key)), bits(std::get<11>(key)), std::get<12>(key));
  }

  static RopeAttrStorage* construct(AttributeStorageAllocator& allocator, KeyTy&& key) {
    std::get<2>(key) = allocator.copyInto(std::get<2>(key));
    return new (allocator.allocate<RopeAttrStorage>()) RopeAttrStorage(key);
  }

  // Names match the ODS parameters: the generated accessors read them.
  int64_t dim;
  double theta;
  llvm::StringRef type;
  double factor;
  int64_t original_max_position;
  double beta_fast;
  double beta_slow;
  double mscale;
  double mscale_all_dim;
  double attention_factor;
  double low_freq_factor;
  double high_freq_factor;
  bool interleaved;
};

} // namespace detail
} // namespace kt
} // namespace mlir

//===----------------------------------------------------------------------===//
// Generated code and registration
//===----------------------------------------------------------------------===//

#define GET_ATTRDEF_CLASSES
#include "dialects/kt/IR/KTAttrs.cpp.inc"

// Accessors of RopeAttr (not generated when the storage class is hand-written).
int64_t RopeAttr::getDim() const {
  return getImpl()->dim;
}
double RopeAttr::getTheta() const {
  return getImpl()->theta;
}
llvm::StringRef RopeAttr::getType() const {
  return getImpl()->type;
}
double RopeAttr::getFactor() const {
  return getImpl()->factor;
}
int64_t RopeAttr::getOriginalMaxPosition() const {
  return getImpl()->original_max_position;
}
double RopeAttr::getBetaFast() const {
  return getImpl()->beta_fast;
}
double RopeAttr::getBetaSlow() const {
  return getImpl()->beta_slow;
}
double RopeAttr::getMscale() const {
  return getImpl()->mscale;
}
double RopeAttr::getMscaleAllDim() const {
  return getImpl()->mscale_all_dim;
}
double RopeAttr::getAttentionFactor() const {
  return getImpl()->attention_factor;
}
double RopeAttr::getLowFreqFactor() const {
  return getImpl()->low_freq_factor;
}
double RopeAttr::getHighFreqFactor() const {
  return getImpl()->high_freq_factor;
}
bool RopeAttr::getInterleaved() const {
  return getImpl()->interleaved;
}

void KTDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/kt/IR/KTAttrs.cpp.inc"
      >();
}
