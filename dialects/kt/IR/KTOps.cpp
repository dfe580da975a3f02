//===- KTOps.cpp - kt dialect ops -----------------------------------------===//
//
// Shape verification. Every message names the operand, its shape and the shape
// the op's attributes (or other operands) require, because the usual reader is
// someone whose importer produced a wrong graph for a new architecture.
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/IR/KTOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <string>

using namespace mlir;
using namespace mlir::kt;

#include "dialects/kt/IR/KTInterfaces.cpp.inc"

namespace {

/// A dimension that matches anything (an unknown token count, or a size that
/// could not be derived because the operand it comes from is dynamic).
constexpr int64_t kAny = ShapedType::kDynamic;

std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleaveComma(shape, os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

llvm::ArrayRef<int64_t> shapeOf(Value v) {
  // ODS constraints guarantee ranked tensors on every kt operand.
  return llvm::cast<RankedTensorType>(v.getType()).getShape();
}

bool dimsCompatible(int64_t a, int64_t b) {
  return a == b || ShapedType::isDynamic(a) || ShapedType::isDynamic(b);
}

bool shapesCompatible(llvm::ArrayRef<int64_t> actual, llvm::ArrayRef<int64_t> expected) {
  if (actual.size() != expected.size())
    return false;
  for (auto [a, e] : llvm::zip_equal(actual, expected))
    if (!dimsCompatible(a, e))
      return false;
  return true;
}

/// A dimension for messages: "?" when dynamic.
std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}

/// "<name> has shape <actual> but <why> requires <expected>".
LogicalResult expectShape(Operation* op, llvm::StringRef name, Value v,
                          llvm::ArrayRef<int64_t> expected, const llvm::Twine& why) {
  llvm::ArrayRef<int64_t> actual = shapeOf(v);
  if (shapesCompatible(actual, expected))
    return success();
  return op->emitOpError() << name << " has shape " << formatShape(actual) << " but " << why
                           << " requires " << formatShape(expected);
}

/// Rank check done before dims are read: "<name> has shape [..] but must be <layout>".
LogicalResult expectRank(Operation* op, llvm::StringRef name, Value v, int64_t rank,
                         llvm::StringRef layout) {
  llvm::ArrayRef<int64_t> actual = shapeOf(v);
  if (static_cast<int64_t>(actual.size()) == rank)
    return success();
  return op->emitOpError() << name << " has shape " << formatShape(actual) << " but must be "
                           << layout << " (rank " << rank << ")";
}

LogicalResult expectPositive(Operation* op, llvm::StringRef name, int64_t value) {
  if (value > 0)
    return success();
  return op->emitOpError() << name << " must be positive, got " << value;
}

LogicalResult expectNonNegative(Operation* op, llvm::StringRef name, int64_t value) {
  if (value >= 0)
    return success();
  return op->emitOpError() << name << " must be >= 0, got " << value;
}

LogicalResult expectPositive(Operation* op, llvm::StringRef name, double value) {
  if (value > 0 && std::isfinite(value))
    return success();
  return op->emitOpError() << name << " must be positive and finite, got " << value;
}

/// The [T, H] activation checks shared by most ops: x is rank 2, the result is
/// [T, `resultCols`].
LogicalResult verifyTokensByHidden(Operation* op, Value x, Value result, int64_t resultCols,
                                   const llvm::Twine& resultWhy) {
  if (failed(expectRank(op, "x", x, 2, "[T, H]")))
    return failure();
  return expectShape(op, "result", result, {shapeOf(x)[0], resultCols}, resultWhy);
}

LogicalResult expectPositionsMatch(Operation* op, Value positions, int64_t tokens) {
  return expectShape(op, "positions", positions, {tokens}, "the token count of x");
}

unsigned elementBytes(Type t) {
  return (t.getIntOrFloatBitWidth() + 7) / 8;
}

} // namespace

//===----------------------------------------------------------------------===//
// kt.weight / kt.weight_ref
//===----------------------------------------------------------------------===//

uint64_t WeightOp::getStorageBytes() {
  uint64_t total = 0;
  for (auto seg : getStorage().getAsRange<StorageAttr>())
    total += seg.getSize();
  return total;
}

LogicalResult WeightOp::verify() {
  auto type = llvm::cast<RankedTensorType>(getType());
  if (!type.hasStaticShape())
    return emitOpError() << "@" << getSymName() << " has type " << type
                         << " but weights need a static shape";
  ArrayAttr storage = getStorage();
  if (storage.empty())
    return emitOpError() << "@" << getSymName() << " has no storage ranges";
  uint64_t elemBytes = elementBytes(type.getElementType());
  uint64_t numElements = type.getNumElements();
  uint64_t slices = type.getRank() > 0 ? type.getDimSize(0) : 1;
  uint64_t perSegment;
  if (storage.size() == 1) {
    perSegment = numElements; // The whole tensor in one range.
  } else if (storage.size() == slices) {
    perSegment = numElements / slices; // Stacked per-expert tensors.
  } else {
    return emitOpError() << "@" << getSymName() << " has " << storage.size()
                         << " storage ranges but " << type << " needs 1 (whole tensor) or "
                         << slices << " (one per slice along dim 0)";
  }
  for (auto [i, seg] : llvm::enumerate(storage.getAsRange<StorageAttr>())) {
    if (seg.getSize() != perSegment * elemBytes)
      return emitOpError() << "storage range " << i << " of @" << getSymName() << " has "
                           << seg.getSize() << " bytes but " << type << " needs "
                           << perSegment * elemBytes << " (" << perSegment << " elements * "
                           << elemBytes << " bytes)";
  }
  if (getHfName().empty())
    return emitOpError() << "@" << getSymName() << " has an empty hf_name";
  if (QuantAttr quant = getQuantAttr()) {
    if (quant.getScheme() == "int4" && type.getRank() > 0 &&
        type.getShape().back() % quant.getGroup() != 0)
      return emitOpError() << "@" << getSymName() << " has shape " << formatShape(type.getShape())
                           << " but int4 group " << quant.getGroup()
                           << " requires the last (input) dimension to be a "
                           << "multiple of " << quant.getGroup();
  }
  return success();
}

LogicalResult WeightRefOp::verifySymbolUses(SymbolTableCollection& symbolTable) {
  Operation* symbol = symbolTable.lookupNearestSymbolFrom(*this, getWeightAttr());
  if (!symbol)
    return emitOpError() << "refers to unknown weight @" << getWeight();
  auto weight = llvm::dyn_cast<WeightOp>(symbol);
  if (!weight)
    return emitOpError() << "@" << getWeight() << " is a '" << symbol->getName()
                         << "', not a kt.weight";
  if (weight.getType() != getType())
    return emitOpError() << "has type " << getType() << " but @" << getWeight()
                         << " is declared as " << weight.getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Basic layers
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(expectRank(*this, "table", getTable(), 2, "[V, H]")))
    return failure();
  int64_t hidden = shapeOf(getTable())[1];
  return expectShape(*this, "result", getResult(), {shapeOf(getIds())[0], hidden},
                     "ids [T] with table [V, H] = " + formatShape(shapeOf(getTable())));
}

LogicalResult RmsNormOp::verify() {
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  if (x.empty())
    return emitOpError() << "x must have rank >= 1, got a scalar";
  if (failed(expectShape(*this, "weight", getWeight(), {x.back()},
                         "x " + formatShape(x) + " (normalized over the last dimension)")))
    return failure();
  if (getResult().getType() != getX().getType())
    return emitOpError() << "result type " << getResult().getType() << " must equal the type of x "
                         << getX().getType();
  return expectPositive(*this, "eps", getEps().convertToDouble());
}

LogicalResult LinearOp::verify() {
  if (failed(expectRank(*this, "x", getX(), 2, "[T, K]")) ||
      failed(expectRank(*this, "weight", getWeight(), 2, "[N, K]")))
    return failure();
  int64_t k = shapeOf(getX())[1], n = shapeOf(getWeight())[0];
  if (failed(
          expectShape(*this, "weight", getWeight(), {n, k}, "x " + formatShape(shapeOf(getX())))))
    return failure();
  if (getBias() && failed(expectShape(*this, "bias", getBias(), {n},
                                      "weight " + formatShape(shapeOf(getWeight())))))
    return failure();
  return expectShape(*this, "result", getResult(), {shapeOf(getX())[0], n},
                     "x [T, K] times weight [N, K] = " + formatShape(shapeOf(getWeight())));
}

LogicalResult RopeOp::verify() {
  if (failed(expectRank(*this, "x", getX(), 3, "[T, heads, D]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t dim = getRope().getDim();
  if (!ShapedType::isDynamic(x[2]) && x[2] < dim)
    return emitOpError() << "x has shape " << formatShape(x) << " but rope.dim = " << dim
                         << " requires a head dimension of at least " << dim;
  if (failed(expectPositionsMatch(*this, getPositions(), x[0])))
    return failure();
  if (getResult().getType() != getX().getType())
    return emitOpError() << "result type " << getResult().getType() << " must equal the type of x "
                         << getX().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// kt.attention
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  Operation* op = *this;
  int64_t nh = getNumHeads(), nkv = getNumKvHeads(), hd = getHeadDim();
  if (failed(expectPositive(op, "num_heads", nh)) ||
      failed(expectPositive(op, "num_kv_heads", nkv)) ||
      failed(expectPositive(op, "head_dim", hd)) ||
      failed(expectPositive(op, "scale", getScale().convertToDouble())) ||
      failed(expectNonNegative(op, "layer", getLayer())))
    return failure();
  if (nh % nkv != 0)
    return emitOpError() << "num_heads = " << nh << " is not a multiple of num_kv_heads = " << nkv
                         << " (each KV head serves num_heads / num_kv_heads query heads)";
  if (getRope().getDim() > hd)
    return emitOpError() << "rope.dim = " << getRope().getDim() << " exceeds head_dim = " << hd;

  if (failed(expectRank(op, "x", getX(), 2, "[T, H]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t tokens = x[0], hidden = x[1];
  if (failed(expectPositionsMatch(op, getPositions(), tokens)))
    return failure();

  std::string qWhy = "num_heads * head_dim = " + std::to_string(nh * hd);
  std::string kvWhy = "num_kv_heads * head_dim = " + std::to_string(nkv * hd);
  std::string withHidden = " with hidden size " + dimStr(hidden);
  if (failed(expectShape(op, "q_proj", getQProj(), {nh * hd, hidden}, qWhy + withHidden)) ||
      failed(expectShape(op, "k_proj", getKProj(), {nkv * hd, hidden}, kvWhy + withHidden)) ||
      failed(expectShape(op, "v_proj", getVProj(), {nkv * hd, hidden}, kvWhy + withHidden)) ||
      failed(expectShape(op, "o_proj", getOProj(), {hidden, nh * hd}, qWhy + withHidden)))
    return failure();

  bool anyBias = getQBias() || getKBias() || getVBias();
  bool allBias = getQBias() && getKBias() && getVBias();
  if (anyBias && !allBias)
    return emitOpError() << "q_bias, k_bias and v_bias must be given together";
  if (allBias && (failed(expectShape(op, "q_bias", getQBias(), {nh * hd}, qWhy)) ||
                  failed(expectShape(op, "k_bias", getKBias(), {nkv * hd}, kvWhy)) ||
                  failed(expectShape(op, "v_bias", getVBias(), {nkv * hd}, kvWhy))))
    return failure();

  bool anyNorm = getQNorm() || getKNorm();
  if (anyNorm && !(getQNorm() && getKNorm()))
    return emitOpError() << "q_norm and k_norm must be given together";
  std::string hdWhy = "head_dim = " + std::to_string(hd);
  if (anyNorm && (failed(expectShape(op, "q_norm", getQNorm(), {hd}, hdWhy)) ||
                  failed(expectShape(op, "k_norm", getKNorm(), {hd}, hdWhy))))
    return failure();
  std::optional<llvm::APFloat> eps = getNormEps();
  if (anyNorm && !eps)
    return emitOpError() << "q_norm/k_norm need a norm_eps attribute";
  if (!anyNorm && eps)
    return emitOpError() << "norm_eps is set but there is no q_norm/k_norm to use it";
  if (eps && failed(expectPositive(op, "norm_eps", eps->convertToDouble())))
    return failure();

  return expectShape(op, "result", getResult(), {tokens, hidden}, "x " + formatShape(x));
}

//===----------------------------------------------------------------------===//
// kt.mla_attention
//===----------------------------------------------------------------------===//

LogicalResult MlaAttentionOp::verify() {
  Operation* op = *this;
  int64_t nh = getNumHeads(), qRank = getQLoraRank(), kvRank = getKvLoraRank();
  int64_t nope = getQkNopeHeadDim(), rope = getQkRopeHeadDim(), vDim = getVHeadDim();
  if (failed(expectPositive(op, "num_heads", nh)) ||
      failed(expectNonNegative(op, "q_lora_rank", qRank)) ||
      failed(expectPositive(op, "kv_lora_rank", kvRank)) ||
      failed(expectPositive(op, "qk_nope_head_dim", nope)) ||
      failed(expectPositive(op, "qk_rope_head_dim", rope)) ||
      failed(expectPositive(op, "v_head_dim", vDim)) ||
      failed(expectPositive(op, "scale", getScale().convertToDouble())) ||
      failed(expectPositive(op, "norm_eps", getNormEps().convertToDouble())) ||
      failed(expectNonNegative(op, "layer", getLayer())))
    return failure();
  if (getRope().getDim() != rope)
    return emitOpError() << "rope.dim = " << getRope().getDim()
                         << " must equal qk_rope_head_dim = " << rope;

  // The query path: one projection, or the LoRA-style down/norm/up triple.
  bool anyLora = getQAProj() || getQANorm() || getQBProj();
  bool allLora = getQAProj() && getQANorm() && getQBProj();
  if (qRank == 0) {
    if (!getQProj() || anyLora)
      return emitOpError() << "q_lora_rank = 0 requires q_proj and no "
                              "q_a_proj/q_a_norm/q_b_proj";
  } else if (getQProj() || !allLora) {
    return emitOpError() << "q_lora_rank = " << qRank
                         << " requires q_a_proj, q_a_norm and q_b_proj and no q_proj";
  }

  if (failed(expectRank(op, "x", getX(), 2, "[T, H]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t tokens = x[0], hidden = x[1];
  if (failed(expectPositionsMatch(op, getPositions(), tokens)))
    return failure();

  int64_t qRows = nh * (nope + rope);
  std::string qWhy = "num_heads * (qk_nope_head_dim + qk_rope_head_dim) = " + std::to_string(qRows);
  std::string withHidden = " with hidden size " + dimStr(hidden);
  std::string qRankWhy = "q_lora_rank = " + std::to_string(qRank);
  if (getQProj() &&
      failed(expectShape(op, "q_proj", getQProj(), {qRows, hidden}, qWhy + withHidden)))
    return failure();
  if (allLora &&
      (failed(expectShape(op, "q_a_proj", getQAProj(), {qRank, hidden}, qRankWhy + withHidden)) ||
       failed(expectShape(op, "q_a_norm", getQANorm(), {qRank}, qRankWhy)) ||
       failed(
           expectShape(op, "q_b_proj", getQBProj(), {qRows, qRank}, qWhy + " with " + qRankWhy))))
    return failure();

  std::string kvRankWhy = "kv_lora_rank = " + std::to_string(kvRank);
  int64_t kvbRows = nh * (nope + vDim);
  if (failed(expectShape(op, "kv_a_proj", getKvAProj(), {kvRank + rope, hidden},
                         kvRankWhy + " + qk_rope_head_dim = " + std::to_string(kvRank + rope) +
                             withHidden)) ||
      failed(expectShape(op, "kv_a_norm", getKvANorm(), {kvRank}, kvRankWhy)) ||
      failed(expectShape(op, "kv_b_proj", getKvBProj(), {kvbRows, kvRank},
                         "num_heads * (qk_nope_head_dim + v_head_dim) = " +
                             std::to_string(kvbRows) + " with " + kvRankWhy)) ||
      failed(expectShape(op, "o_proj", getOProj(), {hidden, nh * vDim},
                         "num_heads * v_head_dim = " + std::to_string(nh * vDim) + withHidden)))
    return failure();

  return expectShape(op, "result", getResult(), {tokens, hidden}, "x " + formatShape(x));
}

//===----------------------------------------------------------------------===//
// kt.moe
//===----------------------------------------------------------------------===//

LogicalResult MoeOp::verify() {
  Operation* op = *this;
  int64_t numExperts = getNumExperts(), topK = getExpertsPerToken();
  int64_t nGroup = getNGroup(), topkGroup = getTopkGroup();
  llvm::StringRef scoring = getScoring(), method = getTopkMethod();
  if (failed(expectPositive(op, "num_experts", numExperts)) ||
      failed(expectNonNegative(op, "layer", getLayer())) ||
      failed(
          expectPositive(op, "routed_scaling_factor", getRoutedScalingFactor().convertToDouble())))
    return failure();
  if (topK < 1 || topK > numExperts)
    return emitOpError() << "experts_per_token = " << topK
                         << " must be in [1, num_experts = " << numExperts << "]";
  if (scoring != "softmax" && scoring != "sigmoid")
    return emitOpError() << "unknown scoring \"" << scoring << "\" (expected softmax or sigmoid)";
  if (method != "greedy" && method != "group_limited_greedy" && method != "noaux_tc")
    return emitOpError() << "unknown topk_method \"" << method
                         << "\" (expected greedy, group_limited_greedy or noaux_tc)";

  // Expert groups (DeepSeek): n_group equal groups, the best topk_group kept.
  if (nGroup < 1 || numExperts % nGroup != 0)
    return emitOpError() << "n_group = " << nGroup
                         << " must be >= 1 and divide num_experts = " << numExperts;
  if (topkGroup < 1 || topkGroup > nGroup)
    return emitOpError() << "topk_group = " << topkGroup << " must be in [1, n_group = " << nGroup
                         << "]";
  int64_t perGroup = numExperts / nGroup;
  if (method == "greedy" && (nGroup != 1 || topkGroup != 1))
    return emitOpError() << "topk_method = \"greedy\" ignores expert groups; n_group = " << nGroup
                         << " and topk_group = " << topkGroup
                         << " must both be 1 (or use group_limited_greedy / noaux_tc)";
  if (method == "group_limited_greedy" && nGroup == 1)
    return emitOpError() << "topk_method = \"group_limited_greedy\" needs n_group > 1 "
                            "(with one group it is \"greedy\")";
  if (topK > topkGroup * perGroup)
    return emitOpError() << "experts_per_token = " << topK << " exceeds the "
                         << topkGroup * perGroup << " experts in the topk_group = " << topkGroup
                         << " selected groups of " << perGroup;
  if (method == "noaux_tc") {
    if (scoring != "sigmoid")
      return emitOpError() << "topk_method = \"noaux_tc\" needs scoring = \"sigmoid\", got \""
                           << scoring << "\"";
    if (!getCorrectionBias())
      return emitOpError() << "topk_method = \"noaux_tc\" needs a correction_bias operand "
                              "(e_score_correction_bias)";
    // Groups are ranked by the sum of their two best biased scores.
    if (nGroup > 1 && perGroup < 2)
      return emitOpError() << "topk_method = \"noaux_tc\" ranks groups by their top-2 experts, so "
                              "each of the n_group = "
                           << nGroup << " groups needs >= 2 experts (has " << perGroup << ")";
  } else if (getCorrectionBias()) {
    return emitOpError() << "correction_bias is only used by topk_method = \"noaux_tc\", not \""
                         << method << "\"";
  }

  if (failed(expectRank(op, "x", getX(), 2, "[T, H]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t tokens = x[0], hidden = x[1];
  std::string eWhy = "num_experts = " + std::to_string(numExperts);
  std::string withHidden = " with hidden size " + dimStr(hidden);
  if (failed(expectShape(op, "router", getRouter(), {numExperts, hidden}, eWhy + withHidden)))
    return failure();
  if (getCorrectionBias() &&
      failed(expectShape(op, "correction_bias", getCorrectionBias(), {numExperts}, eWhy)))
    return failure();

  if (failed(expectRank(op, "gate", getGate(), 3, "[E, I, H]")))
    return failure();
  int64_t inter = shapeOf(getGate())[1];
  std::string iWhy = eWhy + ", moe intermediate size " + dimStr(inter) +
                     " (from gate) and hidden size " + dimStr(hidden);
  if (failed(expectShape(op, "gate", getGate(), {numExperts, inter, hidden}, iWhy)) ||
      failed(expectShape(op, "up", getUp(), {numExperts, inter, hidden}, iWhy)) ||
      failed(expectShape(op, "down", getDown(), {numExperts, hidden, inter}, iWhy)))
    return failure();

  bool anyShared = getSharedGate() || getSharedUp() || getSharedDown();
  if (anyShared && !(getSharedGate() && getSharedUp() && getSharedDown()))
    return emitOpError() << "shared_gate, shared_up and shared_down must be given together";
  if (anyShared) {
    if (failed(expectRank(op, "shared_gate", getSharedGate(), 2, "[S, H]")))
      return failure();
    int64_t shared = shapeOf(getSharedGate())[0];
    std::string sWhy =
        "shared intermediate size " + dimStr(shared) + " (from shared_gate)" + withHidden;
    if (failed(expectShape(op, "shared_gate", getSharedGate(), {shared, hidden}, sWhy)) ||
        failed(expectShape(op, "shared_up", getSharedUp(), {shared, hidden}, sWhy)) ||
        failed(expectShape(op, "shared_down", getSharedDown(), {hidden, shared}, sWhy)))
      return failure();
  }
  if (getSharedExpertGate()) {
    if (!anyShared)
      return emitOpError() << "shared_expert_gate needs shared experts (shared_gate/up/down)";
    if (failed(expectShape(op, "shared_expert_gate", getSharedExpertGate(), {1, hidden},
                           "hidden size " + dimStr(hidden))))
      return failure();
  }
  return expectShape(op, "result", getResult(), {tokens, hidden}, "x " + formatShape(x));
}

//===----------------------------------------------------------------------===//
// kt.mlp / kt.lm_head
//===----------------------------------------------------------------------===//

LogicalResult MlpOp::verify() {
  Operation* op = *this;
  if (getActivation() != "silu")
    return emitOpError() << "unsupported activation \"" << getActivation()
                         << "\" (only \"silu\" is implemented)";
  if (failed(expectRank(op, "x", getX(), 2, "[T, H]")) ||
      failed(expectRank(op, "gate", getGate(), 2, "[I, H]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t hidden = x[1], inter = shapeOf(getGate())[0];
  std::string why =
      "intermediate size " + dimStr(inter) + " (from gate) and hidden size " + dimStr(hidden);
  if (failed(expectShape(op, "gate", getGate(), {inter, hidden}, why)) ||
      failed(expectShape(op, "up", getUp(), {inter, hidden}, why)) ||
      failed(expectShape(op, "down", getDown(), {hidden, inter}, why)))
    return failure();
  return expectShape(op, "result", getResult(), {x[0], hidden}, "x " + formatShape(x));
}

LogicalResult LmHeadOp::verify() {
  Operation* op = *this;
  if (failed(expectRank(op, "x", getX(), 2, "[T, H]")) ||
      failed(expectRank(op, "weight", getWeight(), 2, "[V, H]")))
    return failure();
  llvm::ArrayRef<int64_t> x = shapeOf(getX());
  int64_t vocab = shapeOf(getWeight())[0];
  if (failed(expectShape(op, "weight", getWeight(), {vocab, x[1]}, "hidden size " + dimStr(x[1]))))
    return failure();
  return verifyTokensByHidden(op, getX(), getResult(), vocab,
                              "x [T, H] with weight [V, H] = " + formatShape(shapeOf(getWeight())));
}

#define GET_OP_CLASSES
#include "dialects/kt/IR/KTOps.cpp.inc"
