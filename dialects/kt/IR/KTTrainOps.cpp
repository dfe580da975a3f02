//===- KTTrainOps.cpp - kt ops of the LoRA training graph -----------------===//
//
// The checks on kt.lora_adapter: that its targets exist and that the adapter's
// shape agrees with the rows and columns of the weights it updates, so that an
// adapter that does not fit its weight is an IR error with both shapes, not a
// wrong gradient at run time.
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/IR/KTOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::kt;

// I64Attr getters return the value unsigned; read them signed so a negative rank is caught.
static int64_t sint(IntegerAttr a) {
  return a ? a.getInt() : 0;
}

LogicalResult LoraAdapterOp::verify() {
  if (getLayout() != "linear" && getLayout() != "experts_fused")
    return emitOpError("layout must be \"linear\" or \"experts_fused\", not \"")
           << getLayout() << "\"";
  if (sint(getRAttr()) <= 0)
    return emitOpError("rank r must be positive, got ") << sint(getRAttr());
  if (getAlpha().convertToDouble() <= 0)
    return emitOpError("alpha must be positive, got ") << getAlpha().convertToDouble();
  if (sint(getInFeaturesAttr()) <= 0 || sint(getOutFeaturesAttr()) <= 0)
    return emitOpError("in_features and out_features must be positive");
  if ((getLayout() == "experts_fused") != (sint(getNumExpertsAttr()) > 0))
    return emitOpError("num_experts must be set exactly for the experts_fused layout");
  size_t n = getTargets().size();
  if (n == 0 || getRowOffsets().size() != n || getRows().size() != n)
    return emitOpError("needs one row_offsets and rows entry per target (")
           << n << " targets, " << getRowOffsets().size() << " offsets, " << getRows().size()
           << " rows)";
  int64_t next = 0;
  for (size_t i = 0; i < n; ++i) {
    if (getRowOffsets()[i] != next)
      return emitOpError("target ") << i << " starts at output row " << getRowOffsets()[i]
                                    << ", expected " << next << " (targets tile the output rows)";
    next += getRows()[i];
  }
  if (next != sint(getOutFeaturesAttr()))
    return emitOpError("targets cover ")
           << next << " output rows, out_features is " << sint(getOutFeaturesAttr());
  return success();
}

LogicalResult LoraAdapterOp::verifySymbolUses(SymbolTableCollection& symbols) {
  for (auto [i, ref] : llvm::enumerate(getTargets().getAsRange<FlatSymbolRefAttr>())) {
    auto w = symbols.lookupNearestSymbolFrom<WeightOp>(*this, ref);
    if (!w)
      return emitOpError("target ") << ref << " is not a kt.weight";
    llvm::ArrayRef<int64_t> shape = w.getTensorType().getShape();
    const bool stacked = getLayout() == "experts_fused";
    if (shape.size() != (stacked ? 3u : 2u))
      return emitOpError("target ")
             << ref << " must be a " << (stacked ? "3-D [E, out, in]" : "2-D")
             << " weight for layout " << getLayout();
    if (stacked && shape[0] != sint(getNumExpertsAttr()))
      return emitOpError("target ")
             << ref << " stacks " << shape[0] << " experts, adapter has " << getNumExperts();
    if (shape[shape.size() - 2] != getRows()[i] || shape.back() != sint(getInFeaturesAttr()))
      return emitOpError("target ")
             << ref << " has " << shape[shape.size() - 2] << " rows x " << shape.back()
             << " columns, adapter expects " << getRows()[i] << " x " << getInFeatures();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Gradient shapes. A backward op's dy has the shape of its forward op's result
// and its dx (when present) the shape of x; the forward op's own operands were
// checked by the forward verifier the backward op was derived from.
//===----------------------------------------------------------------------===//

namespace {

LogicalResult sameType(Operation* op, Value v, llvm::StringRef name, Type want,
                       llvm::StringRef wantName) {
  if (v.getType() != want)
    return op->emitOpError() << name << " has type " << v.getType() << ", expected " << want
                             << " (the type of " << wantName << ")";
  return success();
}

// dy and dx both like x: ops whose forward maps [T, H] to [T, H].
template <typename Op> LogicalResult verifyResidualGrad(Op op) {
  if (failed(sameType(op, op.getDy(), "dy", op.getX().getType(), "x")))
    return failure();
  if (Value dx = op.getDx())
    return sameType(op, dx, "dx", op.getX().getType(), "x");
  return success();
}

} // namespace

LogicalResult CrossEntropyLossOp::verify() {
  if (failed(sameType(*this, getDx(), "dx", getX().getType(), "x")))
    return failure();
  auto loss = llvm::cast<RankedTensorType>(getLoss().getType());
  if (loss.getShape() != llvm::ArrayRef<int64_t>{2})
    return emitOpError("loss must be tensor<2xf32> (CE sum, predicted positions), got ") << loss;
  auto x = llvm::cast<RankedTensorType>(getX().getType()).getShape();
  auto w = llvm::cast<RankedTensorType>(getWeight().getType()).getShape();
  if (x.size() != 2 || w.size() != 2 || (!ShapedType::isDynamic(x[1]) && x[1] != w[1]))
    return emitOpError("x [T, H] and weight [V, H] must agree on H");
  return success();
}

LogicalResult RmsNormGradOp::verify() {
  return verifyResidualGrad(*this);
}
LogicalResult AttentionGradOp::verify() {
  return verifyResidualGrad(*this);
}
LogicalResult MlaAttentionGradOp::verify() {
  return verifyResidualGrad(*this);
}
LogicalResult MoeGradOp::verify() {
  return verifyResidualGrad(*this);
}
LogicalResult MlpGradOp::verify() {
  return verifyResidualGrad(*this);
}

LogicalResult LinearGradOp::verify() {
  if (Value dx = getDx())
    if (failed(sameType(*this, dx, "dx", getX().getType(), "x")))
      return failure();
  auto dy = llvm::cast<RankedTensorType>(getDy().getType()).getShape();
  auto w = llvm::cast<RankedTensorType>(getWeight().getType()).getShape();
  if (dy.size() != 2 || w.size() != 2 || (!ShapedType::isDynamic(dy[1]) && dy[1] != w[0]))
    return emitOpError("dy [T, N] must have the weight's N = ") << w[0] << " columns";
  return success();
}
