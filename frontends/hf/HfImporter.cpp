#include "frontends/hf/HfImporter.h"

#include "dialects/kt/IR/KTOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace kt::hf {

namespace {

class Importer {
public:
  Importer(mlir::MLIRContext& ctx, const ModelDesc& m)
      : ctx_(ctx), m_(m), b_(&ctx), loc_(b_.getUnknownLoc()) {}

  mlir::OwningOpRef<mlir::ModuleOp> run() {
    mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(loc_);
    module->getOperation()->setAttr("kt.model", modelAttr());
    b_.setInsertionPointToEnd(module->getBody());
    for (const WeightDesc& w : m_.weights)
      declareWeight(w);

    const ModelConfig& c = m_.config;
    auto ids = mlir::RankedTensorType::get({mlir::ShapedType::kDynamic}, b_.getI32Type());
    auto logitsType = act(c.vocabSize);
    auto fn = b_.create<mlir::func::FuncOp>(loc_, "forward",
                                            b_.getFunctionType({ids, ids}, {logitsType}));
    mlir::Block* entry = fn.addEntryBlock();
    b_.setInsertionPointToStart(entry);
    mlir::Value tokenIds = entry->getArgument(0), positions = entry->getArgument(1);

    mlir::Value h =
        b_.create<mlir::kt::EmbeddingOp>(loc_, act(c.hiddenSize), ref(m_.embed), tokenIds, nullptr);
    h = tap(h, "hidden.0");
    for (const LayerDesc& L : m_.layers) {
      mlir::Value n = rmsNorm(h, L.inputNorm);
      h = add(h, c.mla ? mla(L, n, positions) : attention(L, n, positions));
      n = rmsNorm(h, L.postNorm);
      h = add(h, L.moe ? moe(L, n) : mlp(L, n));
      if (L.index + 1 < c.numLayers)
        h = tap(h, "hidden." + std::to_string(L.index + 1));
    }
    // Hugging Face's last hidden state is taken after the final norm.
    h = tap(rmsNorm(h, m_.finalNorm), "hidden." + std::to_string(c.numLayers));
    mlir::Value logits =
        b_.create<mlir::kt::LmHeadOp>(loc_, logitsType, h, ref(m_.lmHead), nullptr);
    b_.create<mlir::func::ReturnOp>(loc_, logits);
    return module;
  }

private:
  mlir::RankedTensorType act(int64_t cols) {
    return mlir::RankedTensorType::get({mlir::ShapedType::kDynamic, cols}, b_.getF32Type());
  }

  mlir::Type elementType(DType t) {
    switch (t) {
    case DType::BF16:
      return b_.getBF16Type();
    case DType::F16:
      return b_.getF16Type();
    default:
      return b_.getF32Type();
    }
  }

  mlir::DictionaryAttr modelAttr() {
    const ModelConfig& c = m_.config;
    llvm::SmallVector<mlir::NamedAttribute> a;
    a.push_back(b_.getNamedAttr("arch", b_.getStringAttr(c.arch)));
    a.push_back(b_.getNamedAttr("source", b_.getStringAttr(m_.dir)));
    a.push_back(b_.getNamedAttr("vocab_size", b_.getI64IntegerAttr(c.vocabSize)));
    a.push_back(b_.getNamedAttr("hidden_size", b_.getI64IntegerAttr(c.hiddenSize)));
    a.push_back(b_.getNamedAttr("num_layers", b_.getI64IntegerAttr(c.numLayers)));
    a.push_back(b_.getNamedAttr("max_position", b_.getI64IntegerAttr(c.maxPosition)));
    a.push_back(b_.getNamedAttr("bos_id", b_.getI64IntegerAttr(c.bosId)));
    a.push_back(b_.getNamedAttr("eos_ids", b_.getDenseI64ArrayAttr(llvm::SmallVector<int64_t>(
                                               c.eosIds.begin(), c.eosIds.end()))));
    llvm::SmallVector<mlir::Attribute> sizes;
    for (uint64_t s : m_.fileSizes)
      sizes.push_back(b_.getI64IntegerAttr(int64_t(s)));
    llvm::SmallVector<mlir::Attribute> files;
    for (const std::string& f : m_.files)
      files.push_back(b_.getStringAttr(f));
    a.push_back(b_.getNamedAttr("weight_files", b_.getArrayAttr(files)));
    a.push_back(b_.getNamedAttr("weight_file_sizes", b_.getArrayAttr(sizes)));
    return b_.getDictionaryAttr(a);
  }

  void declareWeight(const WeightDesc& w) {
    llvm::SmallVector<mlir::Attribute> storage;
    for (const WeightSegment& s : w.segments)
      storage.push_back(mlir::kt::StorageAttr::get(&ctx_, m_.files[size_t(s.file)],
                                                   int64_t(s.offset), int64_t(s.size)));
    auto type = mlir::RankedTensorType::get(w.shape, elementType(w.dtype));
    b_.create<mlir::kt::WeightOp>(loc_, b_.getStringAttr(w.symbol), mlir::TypeAttr::get(type),
                                  b_.getArrayAttr(storage), b_.getStringAttr(w.hfName), nullptr,
                                  nullptr);
  }

  mlir::Value ref(int weight) {
    const WeightDesc& w = m_.weights[size_t(weight)];
    auto type = mlir::RankedTensorType::get(w.shape, elementType(w.dtype));
    return b_.create<mlir::kt::WeightRefOp>(loc_, type,
                                            mlir::FlatSymbolRefAttr::get(&ctx_, w.symbol));
  }
  mlir::Value optRef(const std::map<std::string, int>& roles, const std::string& role) {
    auto it = roles.find(role);
    return it == roles.end() ? mlir::Value() : ref(it->second);
  }
  mlir::Value tap(mlir::Value v, const std::string& name) {
    return b_.create<mlir::kt::TapOp>(loc_, v.getType(), v, b_.getStringAttr(name));
  }
  mlir::Value add(mlir::Value a, mlir::Value c) {
    return b_.create<mlir::kt::AddOp>(loc_, a.getType(), a, c, nullptr);
  }
  mlir::Value rmsNorm(mlir::Value x, int weight) {
    return b_.create<mlir::kt::RmsNormOp>(loc_, x.getType(), x, ref(weight),
                                          b_.getF64FloatAttr(m_.config.rmsNormEps), nullptr);
  }

  mlir::kt::RopeAttr ropeAttr() {
    const RopeConfig& r = m_.config.rope;
    return mlir::kt::RopeAttr::get(&ctx_, r.dim, r.theta, r.type, r.factor, r.originalMaxPosition,
                                   r.betaFast, r.betaSlow, r.mscale, r.mscaleAllDim,
                                   r.attentionFactor, r.lowFreqFactor, r.highFreqFactor,
                                   r.interleaved);
  }

  mlir::Value attention(const LayerDesc& L, mlir::Value x, mlir::Value pos) {
    const ModelConfig& c = m_.config;
    const auto& w = L.attention;
    return b_.create<mlir::kt::AttentionOp>(
        loc_, x.getType(), x, pos, optRef(w, "q_proj"), optRef(w, "k_proj"), optRef(w, "v_proj"),
        optRef(w, "o_proj"), optRef(w, "q_bias"), optRef(w, "k_bias"), optRef(w, "v_bias"),
        optRef(w, "q_norm"), optRef(w, "k_norm"), b_.getI64IntegerAttr(c.numHeads),
        b_.getI64IntegerAttr(c.numKvHeads), b_.getI64IntegerAttr(c.headDim),
        b_.getF64FloatAttr(c.softmaxScale), ropeAttr(), b_.getI64IntegerAttr(L.index),
        c.qkNorm ? b_.getF64FloatAttr(c.rmsNormEps) : mlir::FloatAttr(), nullptr);
  }

  mlir::Value mla(const LayerDesc& L, mlir::Value x, mlir::Value pos) {
    const ModelConfig& c = m_.config;
    const MlaConfig& m = c.mlaConfig;
    const auto& w = L.attention;
    return b_.create<mlir::kt::MlaAttentionOp>(
        loc_, x.getType(), x, pos, optRef(w, "q_proj"), optRef(w, "q_a_proj"),
        optRef(w, "q_a_norm"), optRef(w, "q_b_proj"), optRef(w, "kv_a_proj"),
        optRef(w, "kv_a_norm"), optRef(w, "kv_b_proj"), optRef(w, "o_proj"),
        b_.getI64IntegerAttr(c.numHeads), b_.getI64IntegerAttr(m.qLoraRank),
        b_.getI64IntegerAttr(m.kvLoraRank), b_.getI64IntegerAttr(m.qkNopeHeadDim),
        b_.getI64IntegerAttr(m.qkRopeHeadDim), b_.getI64IntegerAttr(m.vHeadDim),
        b_.getF64FloatAttr(c.softmaxScale), ropeAttr(), b_.getI64IntegerAttr(L.index),
        b_.getF64FloatAttr(c.rmsNormEps), nullptr);
  }

  mlir::Value mlp(const LayerDesc& L, mlir::Value x) {
    const auto& w = L.ffn;
    return b_.create<mlir::kt::MlpOp>(loc_, x.getType(), x, optRef(w, "gate"), optRef(w, "up"),
                                      optRef(w, "down"), b_.getStringAttr("silu"), nullptr);
  }

  mlir::Value moe(const LayerDesc& L, mlir::Value x) {
    const MoeConfig& m = m_.config.moe;
    const auto& w = L.ffn;
    return b_.create<mlir::kt::MoeOp>(
        loc_, x.getType(), x, optRef(w, "router"), optRef(w, "correction_bias"), optRef(w, "gate"),
        optRef(w, "up"), optRef(w, "down"), optRef(w, "shared_gate"), optRef(w, "shared_up"),
        optRef(w, "shared_down"), optRef(w, "shared_expert_gate"),
        b_.getI64IntegerAttr(m.numExperts), b_.getI64IntegerAttr(m.expertsPerToken),
        b_.getStringAttr(m.scoring), b_.getStringAttr(m.topkMethod), b_.getI64IntegerAttr(m.nGroup),
        b_.getI64IntegerAttr(m.topkGroup), b_.getBoolAttr(m.normTopkProb),
        b_.getF64FloatAttr(m.routedScalingFactor), b_.getI64IntegerAttr(L.index), nullptr);
  }

  mlir::MLIRContext& ctx_;
  const ModelDesc& m_;
  mlir::OpBuilder b_;
  mlir::Location loc_;
};

} // namespace

mlir::OwningOpRef<mlir::ModuleOp> importModel(mlir::MLIRContext& ctx, const ModelDesc& model) {
  ctx.loadDialect<mlir::kt::KTDialect, mlir::func::FuncDialect>();
  return Importer(ctx, model).run();
}

} // namespace kt::hf
