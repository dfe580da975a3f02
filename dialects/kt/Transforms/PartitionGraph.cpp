//===- PartitionGraph.cpp - kt module -> cost-model graph -----------------===//

#include "dialects/kt/Transforms/PartitionGraph.h"

#include "dialects/kt/Transforms/PlacementAttrs.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::kt;
namespace cost = ::kt::cost;

namespace {

cost::WeightFormat elementFormat(Type t) {
  if (t.isBF16())
    return cost::WeightFormat::BF16;
  if (t.isF16())
    return cost::WeightFormat::F16;
  return cost::WeightFormat::F32;
}

/// How the plan stores `w`: its #kt.quant, else the checkpoint dtype.
cost::QuantSpec quantOf(WeightOp w) {
  cost::QuantSpec q;
  q.format = elementFormat(w.getTensorType().getElementType());
  if (QuantAttr qa = w.getQuantAttr()) {
    (void)cost::parseWeightFormat(qa.getScheme().str(), &q.format); // verified scheme
    q.group = qa.getGroup();
    q.symmetric = qa.getSymmetric();
  }
  return q;
}

/// Run-time bytes of `w` (all experts of a stacked weight).
double bytesOf(WeightOp w, const cost::QuantSpec& q) {
  ArrayRef<int64_t> s = w.getTensorType().getShape();
  if (s.size() == 2)
    return cost::matrixBytes(s[0], s[1], q);
  if (s.size() == 3)
    return double(s[0]) * cost::matrixBytes(s[1], s[2], q);
  // Vectors (norms, biases) are never quantized: integer schemes keep the checkpoint dtype.
  int64_t n = w.getTensorType().getNumElements();
  bool integer = q.format == cost::WeightFormat::Int8 || q.format == cost::WeightFormat::Int4;
  return cost::plainBytes(n,
                          integer ? elementFormat(w.getTensorType().getElementType()) : q.format);
}

/// The operands of `op` that the CPU kernels read as (possibly packed)
/// matrices: a weight is repacked by --cpu-quant only if every use is one of
/// these. Mirrors packableOperands() in compiler/passes/QuantizeWeights.cpp.
llvm::SmallVector<Value> packableOperands(Operation* op) {
  return llvm::TypeSwitch<Operation*, llvm::SmallVector<Value>>(op)
      .Case([](LinearOp o) { return llvm::SmallVector<Value>{o.getWeight()}; })
      .Case([](AttentionOp o) {
        return llvm::SmallVector<Value>{o.getQProj(), o.getKProj(), o.getVProj(), o.getOProj()};
      })
      .Case([](MlaAttentionOp o) {
        return llvm::SmallVector<Value>{o.getQProj(), o.getQAProj(), o.getQBProj(), o.getKvAProj(),
                                        o.getOProj()};
      })
      .Case([](MoeOp o) {
        return llvm::SmallVector<Value>{o.getGate(),       o.getUp(),       o.getDown(),
                                        o.getSharedGate(), o.getSharedUp(), o.getSharedDown()};
      })
      .Case([](MlpOp o) {
        return llvm::SmallVector<Value>{o.getGate(), o.getUp(), o.getDown()};
      })
      .Case([](LmHeadOp o) { return llvm::SmallVector<Value>{o.getWeight()}; })
      .Case([](EmbeddingOp o) { return llvm::SmallVector<Value>{o.getTable()}; })
      .Default([](Operation*) { return llvm::SmallVector<Value>{}; });
}

/// Multiply-adds x2 per token of a matrix weight (0 for vectors).
double flopsOf(WeightOp w) {
  return w.getTensorType().getRank() >= 2 ? 2.0 * double(w.getTensorType().getNumElements()) : 0;
}

int64_t lastDim(Value v) {
  auto t = llvm::cast<RankedTensorType>(v.getType());
  return t.getRank() ? t.getShape().back() : 1;
}

bool isGlue(Operation* op) {
  return llvm::isa<RmsNormOp, AddOp, RopeOp, SwigluOp>(op);
}

std::string opKindOf(Operation* op) {
  return llvm::TypeSwitch<Operation*, std::string>(op)
      .Case([](EmbeddingOp) { return "embedding"; })
      .Case([](AttentionOp) { return "attention"; })
      .Case([](MlaAttentionOp) { return "mla_attention"; })
      .Case([](MlpOp) { return "mlp"; })
      .Case([](MoeOp) { return "shared_experts"; })
      .Case([](LmHeadOp) { return "lm_head"; })
      .Case([](LinearOp) { return "linear"; })
      .Case([](RmsNormOp) { return "rms_norm"; })
      .Case([](AddOp) { return "add"; })
      .Case([](RopeOp) { return "rope"; })
      .Case([](SwigluOp) { return "swiglu"; })
      .Default([](Operation*) { return "other"; });
}

class GraphBuilder {
public:
  GraphBuilder(ModuleOp module, const cost::ExpertStats* stats, const cost::QuantSpec* cpuQuant,
               cost::GpuDtype gpuDtype, cost::GpuQuant gpuQuant, cost::ModelGraph& g,
               PartitionBinding& b)
      : module_(module), symbols_(module), stats_(stats), cpuQuant_(cpuQuant), gpuDtype_(gpuDtype),
        gpuQuant_(gpuQuant), g_(g), b_(b) {}

  LogicalResult build() {
    readModelInfo();
    // Weights a GPU reads other than as a GEMM's matrix keep the dtype under --gpu-quant int8
    // (CudaBackend's gemmMatrixSlot): embedding tables, routers and Qwen2's shared gate.
    module_.walk([&](EmbeddingOp e) {
      if (WeightOp w = weightOf(e.getTable()))
        notGemmOnGpu_.insert(w.getOperation());
    });
    module_.walk([&](MoeOp m) {
      for (Value v : {m.getRouter(), m.getCorrectionBias(), m.getSharedExpertGate()})
        if (WeightOp w = v ? weightOf(v) : WeightOp())
          notGemmOnGpu_.insert(w.getOperation());
    });
    // MLA's kv_b_proj stays f32 on a GPU whatever the compute dtype (CudaBackend's upload rule).
    module_.walk([&](MlaAttentionOp m) {
      if (WeightOp w = weightOf(m.getKvBProj()))
        f32OnGpu_.insert(w.getOperation());
    });
    if (cpuQuant_)
      findPackable();
    for (auto func : module_.getOps<func::FuncOp>()) {
      for (Operation& op : func.getBody().getOps()) {
        if (!llvm::isa<PlacementOpInterface>(op))
          continue;
        if (isGlue(&op)) {
          pendingGlue_.push_back(&op);
          continue;
        }
        if (failed(addUnit(&op)))
          return failure();
      }
    }
    // Ops after the last big one (rare: a final norm with no lm_head) join it.
    if (!pendingGlue_.empty()) {
      if (g_.units.empty())
        newUnit(pendingGlue_.front(), cost::UnitKind::Other);
      for (Operation* op : pendingGlue_)
        addGlue(g_.units.size() - 1, op);
      pendingGlue_.clear();
    }
    for (WeightOp w : module_.getOps<WeightOp>())
      if (!owner_.count(w.getOperation()))
        b_.unused.push_back(w);
    if (g_.numLayers == 0)
      g_.numLayers = maxLayer_ + 1;
    return success();
  }

private:
  void readModelInfo() {
    auto info = module_->getAttrOfType<DictionaryAttr>("kt.model");
    if (!info)
      return;
    auto str = [&](llvm::StringRef k) {
      auto a = info.getAs<StringAttr>(k);
      return a ? a.getValue().str() : std::string();
    };
    auto num = [&](llvm::StringRef k) -> int64_t {
      auto a = info.getAs<IntegerAttr>(k);
      return a ? a.getInt() : 0;
    };
    g_.name = !str("name").empty() ? str("name") : str("arch");
    g_.numLayers = int(num("num_layers") ? num("num_layers") : num("num_hidden_layers"));
    g_.maxPosition = num("max_position") ? num("max_position") : num("max_position_embeddings");
  }

  size_t newUnit(Operation* main, cost::UnitKind kind) {
    cost::Unit u;
    u.kind = kind;
    u.opKind = opKindOf(main);
    u.layer = layer_;
    u.residentBytes = 0;
    // Always: besides --cpu-quant's packed sizes, the CPU form says which FLOPs run on plain
    // (unpacked) rows.
    u.hasCpuStorage = true;
    u.cpuStorage.residentBytes = 0;
    g_.units.push_back(u);
    largest_.push_back(0);
    largestCpu_.push_back(0);
    PartitionBinding::UnitOps ops;
    ops.main = main;
    b_.units.push_back(ops);
    return g_.units.size() - 1;
  }

  WeightOp weightOf(Value v) {
    if (!v)
      return {};
    auto ref = v.getDefiningOp<WeightRefOp>();
    return ref ? symbols_.lookup<WeightOp>(ref.getWeight()) : WeightOp();
  }

  /// Weights kt-quantize-weights may repack: every use reads a packable
  /// operand (QuantizeWeights.cpp applies the same rule).
  void findPackable() {
    llvm::DenseMap<Operation*, bool> ok;
    module_.walk([&](WeightRefOp ref) {
      WeightOp w = symbols_.lookup<WeightOp>(ref.getWeight());
      if (!w)
        return;
      bool all = true;
      for (OpOperand& use : ref.getResult().getUses())
        all &= llvm::is_contained(packableOperands(use.getOwner()), use.get());
      auto it = ok.try_emplace(w.getOperation(), true).first;
      it->second &= all;
    });
    for (auto [op, all] : ok)
      if (all)
        packable_.insert(op);
  }

  /// Whether the CPU kernels read `w` packed (a #kt.quant, or --cpu-quant will
  /// pack it); otherwise the runtime multiplies its plain rows.
  bool packedOnCpu(WeightOp w) {
    return w.getQuantAttr() ||
           (cpuQuant_ && w.getTensorType().getRank() >= 2 && packable_.count(w.getOperation()));
  }

  /// How `w` is stored if it stays on a CPU node: --cpu-quant packs matrices
  /// that have no #kt.quant yet and that every user reads packed.
  cost::QuantSpec cpuQuantOf(WeightOp w) {
    cost::QuantSpec q = quantOf(w);
    if (!cpuQuant_ || w.getQuantAttr() || w.getTensorType().getRank() < 2 ||
        !packable_.count(w.getOperation()))
      return q;
    return cost::effectiveCpuQuant(*cpuQuant_, w.getTensorType().getShape().back());
  }

  /// How `w` is held on an accelerator: the CUDA backend converts every weight it uploads into
  /// the plan's compute dtype (cost::gpuFormat); without one (kt-opt), as stored.
  cost::QuantSpec gpuQuantOf(WeightOp w) {
    cost::QuantSpec q = quantOf(w);
    if (gpuDtype_ == cost::GpuDtype::AsStored)
      return q;
    cost::QuantSpec g;
    g.format = cost::gpuFormat(gpuDtype_, int(w.getTensorType().getRank()),
                               f32OnGpu_.count(w.getOperation()) > 0, q.format,
                               notGemmOnGpu_.count(w.getOperation()) == 0);
    if (g.format == cost::WeightFormat::Int8 && gpuInt8()) // a --gpu-quant matrix
      return cost::gpuQuantSpec(gpuQuant_);
    return g;
  }

  /// Adds weight `v` (if any) to unit `i`: it reads the bytes every step; the
  /// first unit to use a weight holds it, later ones are tied to that unit.
  void useWeight(size_t i, Value v, double* flops) {
    WeightOp w = weightOf(v);
    if (!w)
      return;
    cost::Unit& u = g_.units[i];
    cost::QuantSpec q = gpuQuantOf(w), cq = cpuQuantOf(w);
    double bytes = bytesOf(w, q), cpuBytes = bytesOf(w, cq);
    if (gpuQuantized(q)) {
      ArrayRef<int64_t> shape = w.getTensorType().getShape();
      u.gpuInt8.add(shape[shape.size() - 2], shape.back(), cost::linearLaunches(gpuBf16()),
                    q.format);
    }
    u.weightBytes += bytes;
    u.cpuStorage.weightBytes += cpuBytes;
    if (flops) {
      if (w.getTensorType().getRank() >= 2) // one product per matrix (decode_gemv_gbs by size)
        u.matrices += 1;
      *flops += flopsOf(w);
      if (gpuDtype_ != cost::GpuDtype::AsStored && f32OnGpu_.count(w.getOperation()) > 0)
        u.gpuF32FlopsPerToken += flopsOf(w);
      if (!packedOnCpu(w))
        u.cpuStorage.unpackedFlopsPerToken += flopsOf(w);
    }
    if (bytes > largest_[i]) {
      largest_[i] = bytes;
      u.format = q.format;
    }
    if (cpuBytes > largestCpu_[i]) {
      largestCpu_[i] = cpuBytes;
      u.cpuStorage.format = cq.format;
    }
    u.names.push_back(w.getSymName().str());
    u.names.push_back(w.getHfName().str());
    auto [it, fresh] = owner_.try_emplace(w.getOperation(), i);
    if (fresh) {
      u.residentBytes += bytes;
      u.cpuStorage.residentBytes += cpuBytes;
      b_.units[i].weights.push_back(w);
      if (DeviceAttr p = w.getPlacementAttr(); p && u.pinned.empty())
        u.pinned = p.getSpec().str();
    } else if (it->second != i && u.tiedTo < 0) {
      u.tiedTo = int(it->second);
    }
  }

  /// Adds what the CUDA backend launches for a piece of unit `u` (cost::GpuLaunches). Only
  /// when the plan's compute dtype is known (kt-compile always passes it): a hand-written module
  /// under kt-opt keeps the abstract model, one launch overhead per kt op.
  void addLaunches(cost::Unit& u, const cost::GpuLaunches& l) const {
    if (gpuDtype_ == cost::GpuDtype::AsStored)
      return;
    u.gpu += l; // every field, the decode form included (GpuLaunches.h)
  }

  /// --gpu-quant int8 or int4: the GPU's GEMM matrices are quantized (cost::GpuInt8Work).
  bool gpuInt8() const {
    return gpuDtype_ == cost::GpuDtype::F32Int8 || gpuDtype_ == cost::GpuDtype::BF16Int8;
  }
  /// Whether a weight held on the GPU as `q` is one of those matrices.
  bool gpuQuantized(const cost::QuantSpec& q) const {
    return gpuInt8() &&
           (q.format == cost::WeightFormat::Int8 || q.format == cost::WeightFormat::Int4);
  }

  /// The unit's matrices are bf16 on a GPU (the runtime then rounds activations per linear).
  bool gpuBf16() const {
    return gpuDtype_ == cost::GpuDtype::BF16 || gpuDtype_ == cost::GpuDtype::BF16Int8;
  }

  void addGlue(size_t i, Operation* op) {
    cost::Unit& u = g_.units[i];
    ++u.numOps;
    cost::GpuLaunches glue;
    glue.perStep = cost::glueLaunches(opKindOf(op));
    addLaunches(u, glue);
    u.glueOpKinds.push_back(opKindOf(op));
    b_.units[i].glue.push_back(op);
    for (Value v : op->getOperands())
      useWeight(i, v, /*flops=*/nullptr);
  }

  LogicalResult addUnit(Operation* op) {
    if (auto a = llvm::dyn_cast<AttentionOp>(op))
      layer_ = int(a.getLayer());
    else if (auto m = llvm::dyn_cast<MlaAttentionOp>(op))
      layer_ = int(m.getLayer());
    else if (auto m = llvm::dyn_cast<MoeOp>(op))
      layer_ = int(m.getLayer());
    bool outside = llvm::isa<EmbeddingOp, LmHeadOp>(op);
    int savedLayer = layer_;
    if (outside)
      layer_ = -1;
    cost::UnitKind kind = llvm::TypeSwitch<Operation*, cost::UnitKind>(op)
                              .Case([](EmbeddingOp) { return cost::UnitKind::Embedding; })
                              .Case([](AttentionOp) { return cost::UnitKind::Attention; })
                              .Case([](MlaAttentionOp) { return cost::UnitKind::MlaAttention; })
                              .Case([](MlpOp) { return cost::UnitKind::DenseMlp; })
                              .Case([](MoeOp) { return cost::UnitKind::Moe; })
                              .Case([](LmHeadOp) { return cost::UnitKind::LmHead; })
                              .Case([](LinearOp) { return cost::UnitKind::Linear; })
                              .Default([](Operation*) { return cost::UnitKind::Other; });
    size_t i = newUnit(op, kind);
    layer_ = savedLayer;
    maxLayer_ = std::max(maxLayer_, g_.units[i].layer);
    if (auto p = llvm::cast<PlacementOpInterface>(op).getPlacementAttr())
      g_.units[i].pinned = p.getSpec().str();
    for (Operation* glue : pendingGlue_)
      addGlue(i, glue);
    pendingGlue_.clear();

    cost::Unit& u = g_.units[i];
    u.hidden = lastDim(op->getResult(0));
    if (auto moe = llvm::dyn_cast<MoeOp>(op)) {
      addLaunches(u, cost::moeLaunches(gpuBf16(), bool(moe.getSharedGate()),
                                       bool(moe.getSharedExpertGate())));
      return addMoe(i, moe);
    }
    addLaunches(u, llvm::TypeSwitch<Operation*, cost::GpuLaunches>(op)
                       .Case([&](AttentionOp a) {
                         int biases = int(bool(a.getQBias())) + int(bool(a.getKBias())) +
                                      int(bool(a.getVBias()));
                         return cost::attentionLaunches(gpuBf16(), biases, bool(a.getQNorm()));
                       })
                       .Case([&](MlaAttentionOp m) {
                         return cost::mlaLaunches(gpuBf16(), bool(m.getQAProj()));
                       })
                       .Case([&](MlpOp) { return cost::mlpLaunches(gpuBf16()); })
                       .Case([&](LmHeadOp) { return cost::lmHeadLaunches(gpuBf16()); })
                       .Case([&](EmbeddingOp) { return cost::embeddingLaunches(); })
                       .Case([&](LinearOp l) {
                         cost::GpuLaunches g;
                         g.perStep = cost::linearLaunches(gpuBf16(), bool(l.getBias()));
                         return g;
                       })
                       .Default([](Operation*) {
                         cost::GpuLaunches g;
                         g.perStep = 1;
                         return g;
                       }));
    double flops = 0;
    for (Value v : op->getOperands())
      useWeight(i, v, &flops);
    u.flopsPerToken += flops;
    if (auto e = llvm::dyn_cast<EmbeddingOp>(op)) {
      // A lookup reads one row per token, not the table (and multiplies nothing).
      u.readsWholeWeights = false;
      u.flopsPerToken = 0;
      int64_t rows = llvm::cast<RankedTensorType>(e.getTable().getType()).getShape()[0];
      u.bytesPerToken = u.weightBytes / double(std::max<int64_t>(1, rows));
      u.cpuStorage.bytesPerToken = u.cpuStorage.weightBytes / double(std::max<int64_t>(1, rows));
    } else if (auto a = llvm::dyn_cast<AttentionOp>(op)) {
      // The runtime's KV cache is f32: K and V per KV head.
      u.kvBytesPerToken = 2.0 * double(a.getNumKvHeads() * a.getHeadDim()) * 4.0;
      u.attnFlopsPerPair = 4.0 * double(a.getNumHeads() * a.getHeadDim());
      u.attnHeads = int(a.getNumHeads());
    } else if (auto m = llvm::dyn_cast<MlaAttentionOp>(op)) {
      // MLA caches the compressed latent and the shared rope key; the absorbed form scores
      // against latent+rope and mixes values in latent space.
      int64_t latent = m.getKvLoraRank(), rope = m.getQkRopeHeadDim(), heads = m.getNumHeads();
      u.kvBytesPerToken = double(latent + rope) * 4.0;
      u.attnFlopsPerPair = 2.0 * double(heads * (latent + rope)) + 2.0 * double(heads * latent);
      u.attnHeads = int(heads);
    }
    return success();
  }

  LogicalResult addMoe(size_t i, MoeOp moe) {
    double flops = 0, sharedFlops = 0;
    for (Value v : {moe.getRouter(), moe.getCorrectionBias()})
      useWeight(i, v, &flops);
    double before = g_.units[i].weightBytes, cpuBefore = g_.units[i].cpuStorage.weightBytes;
    const cost::GpuInt8Work int8Before = g_.units[i].gpuInt8;
    for (Value v :
         {moe.getSharedGate(), moe.getSharedUp(), moe.getSharedDown(), moe.getSharedExpertGate()})
      useWeight(i, v, &sharedFlops);
    cost::Unit& u = g_.units[i];
    u.gpuInt8Shared = u.gpuInt8.minus(int8Before);
    u.gpuInt8 = int8Before;
    u.sharedBytes = u.weightBytes - before;
    u.cpuStorage.sharedBytes = u.cpuStorage.weightBytes - cpuBefore;
    if (WeightOp sg = weightOf(moe.getSharedGate()))
      u.cpuStorage.sharedUnpacked = !packedOnCpu(sg);
    u.sharedFlopsPerToken = sharedFlops;
    u.flopsPerToken = flops + sharedFlops;

    u.numExperts = int(moe.getNumExperts());
    u.topK = int(moe.getExpertsPerToken());
    u.expertNames.assign(size_t(u.numExperts), {});
    double largest = 0, largestCpu = 0;
    for (Value v : {moe.getGate(), moe.getUp(), moe.getDown()}) {
      WeightOp w = weightOf(v);
      if (!w)
        return moe.emitError()
               << "kt-partition: routed expert weights must come from kt.weight_ref";
      cost::QuantSpec q = gpuQuantOf(w);
      ArrayRef<int64_t> s = w.getTensorType().getShape();
      double perExpert = cost::matrixBytes(s[1], s[2], q);
      u.expertBytes += perExpert;
      if (gpuQuantized(q))
        u.gpuInt8Expert.add(s[1], s[2], cost::linearLaunches(gpuBf16()), q.format);
      cost::QuantSpec cq = cpuQuantOf(w);
      u.cpuStorage.expertsUnpacked = !packedOnCpu(w);
      double perExpertCpu = cost::matrixBytes(s[1], s[2], cq);
      u.cpuStorage.expertBytes += perExpertCpu;
      if (perExpertCpu > largestCpu) {
        largestCpu = perExpertCpu;
        u.cpuStorage.expertFormat = cq.format;
      }
      // What --cpu-quant int4 (group 32, symmetric) would make of it.
      u.expertBytesInt4 += cost::matrixBytes(s[1], s[2], {cost::WeightFormat::Int4, 32, true});
      u.expertFlopsPerToken += 2.0 * double(s[1] * s[2]);
      if (perExpert > largest) {
        largest = perExpert;
        u.expertFormat = q.format;
      }
      owner_.try_emplace(w.getOperation(), i);
      b_.units[i].expertWeights.push_back(w);
      std::string sym = w.getSymName().str(), hf = w.getHfName().str();
      for (int e = 0; e < u.numExperts; ++e) {
        std::string name = hf;
        size_t at = name.find("{e}");
        if (at != std::string::npos)
          name.replace(at, 3, std::to_string(e));
        auto& names = u.expertNames[size_t(e)];
        names.push_back(sym);
        names.push_back(sym + "[" + std::to_string(e) + "]");
        names.push_back(name);
      }
    }
    std::string why;
    if (!cost::expertProbabilities(stats_, int(moe.getLayer()), u.numExperts, u.topK, &u.expertProb,
                                   &why))
      return moe.emitError() << "kt-partition: " << why;
    u.windowBusiestQuarter = cost::windowBusiestQuarter(stats_, int(moe.getLayer()));
    if (failed(verifyExpertPlacement(moe)))
      return failure();
    u.expertPinned.assign(size_t(u.numExperts), "");
    for (auto [e, d] : llvm::enumerate(getExpertDevices(moe)))
      u.expertPinned[e] = d.getSpec().str();
    return success();
  }

  ModuleOp module_;
  SymbolTable symbols_;
  const cost::ExpertStats* stats_;
  const cost::QuantSpec* cpuQuant_; // null: CPU weights stay as stored
  cost::GpuDtype gpuDtype_;         // how accelerator-held weights are sized
  cost::GpuQuant gpuQuant_;         // what a +int8 gpuDtype_ quantizes GEMM matrices to
  llvm::DenseSet<Operation*> f32OnGpu_;
  llvm::DenseSet<Operation*> notGemmOnGpu_; // kept in the dtype under --gpu-quant int8
  llvm::DenseSet<Operation*> packable_;
  cost::ModelGraph& g_;
  PartitionBinding& b_;
  llvm::DenseMap<Operation*, size_t> owner_; // weight -> unit that holds it
  std::vector<double> largest_;              // per unit: bytes of its largest weight
  std::vector<double> largestCpu_;           // the same in the CPU form
  llvm::SmallVector<Operation*> pendingGlue_;
  int layer_ = -1, maxLayer_ = -1;
};

} // namespace

LogicalResult mlir::kt::buildPartitionGraph(ModuleOp module, const cost::ExpertStats* stats,
                                            const cost::QuantSpec* cpuQuant,
                                            cost::GpuDtype gpuDtype, cost::ModelGraph& graph,
                                            PartitionBinding& binding, cost::GpuQuant gpuQuant) {
  return GraphBuilder(module, stats, cpuQuant, gpuDtype, gpuQuant, graph, binding).build();
}
