#include "compiler/emit/PlanEmitter.h"

#include "compiler/plan/PlanWriter.h"
#include "compiler/plan/WeightPacker.h"
#include "dialects/kt/IR/KTOps.h"
#include "dialects/kt/Transforms/LoraSlots.h"
#include "runtime/pack/SourceSlices.h"
#include "runtime/plan/OpSignature.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <map>

namespace kt::compiler {

namespace {

using namespace mlir;
namespace P = ::kt::plan;
namespace ktd = mlir::kt;

P::DType planDType(Type t) {
  if (t.isBF16())
    return P::DType::BF16;
  if (t.isF16())
    return P::DType::F16;
  if (t.isInteger(32))
    return P::DType::I32;
  return P::DType::F32;
}

std::unique_ptr<P::RopeT> planRope(ktd::RopeAttr r) {
  auto o = std::make_unique<P::RopeT>();
  llvm::StringRef type = r.getType();
  o->type = type == "yarn"     ? P::RopeType::Yarn
            : type == "linear" ? P::RopeType::Linear
            : type == "llama3" ? P::RopeType::Llama3
                               : P::RopeType::Default;
  o->dim = int32_t(r.getDim());
  o->theta = r.getTheta();
  o->factor = r.getFactor();
  o->original_max_position = r.getOriginalMaxPosition();
  o->beta_fast = r.getBetaFast();
  o->beta_slow = r.getBetaSlow();
  o->mscale = r.getMscale();
  o->mscale_all_dim = r.getMscaleAllDim();
  o->attention_factor = r.getAttentionFactor();
  o->low_freq_factor = r.getLowFreqFactor();
  o->high_freq_factor = r.getHighFreqFactor();
  o->interleaved = r.getInterleaved();
  return o;
}

class Emitter {
public:
  Emitter(ModuleOp module, PlanBuilder& b, WeightPacker* packer)
      : module_(module), b_(b), symbols_(module), packer_(packer) {}

  LogicalResult run() {
    auto fn = symbols_.lookup<func::FuncOp>("forward");
    if (!fn)
      return module_.emitError("kt module has no func.func @forward");
    if (failed(emitModelInfo()))
      return failure();
    if (fn.getNumArguments() != 2)
      return fn.emitError("@forward must take (ids, positions)");
    auto train = symbols_.lookup<func::FuncOp>("train_step");
    // Unmerged inference adapters (kt-attach-lora without a train_step): @forward's ops name
    // them, so Plan.adapters must exist before prefill/decode's Step.adapters refer to them.
    const bool forwardAdapters = !train && !module_.getOps<ktd::LoraAdapterOp>().empty();
    if (forwardAdapters && failed(emitAdapters()))
      return failure();
    // Prefill and decode run the same graph today; the partitioner will specialize them.
    for (const char* entry : {"prefill", "decode"})
      if (failed(emitEntry(fn, entry)))
        return failure();
    // LoRA training (kt-derive-train-step): the adapters, then the train_step entry point.
    if (train) {
      if (failed(emitAdapters()) || failed(emitTraining()))
        return failure();
      if (train.getNumArguments() != 3)
        return train.emitError("@train_step must take (ids, positions, labels)");
      if (failed(emitEntry(train, "train_step")))
        return failure();
    }
    emitMemoryBudgets();
    return success();
  }

private:
  // The budgets kt-partition sized each device's share for (kt.partition's "budgets").
  void emitMemoryBudgets() {
    auto partition = module_->getAttrOfType<DictionaryAttr>("kt.partition");
    auto budgets = partition ? partition.getAs<DictionaryAttr>("budgets") : nullptr;
    if (!budgets)
      return;
    for (auto& d : b_.plan().devices)
      if (auto bytes = budgets.getAs<IntegerAttr>(d->name))
        d->memory_budget = uint64_t(std::max<int64_t>(0, bytes.getInt()));
  }

  LogicalResult emitModelInfo() {
    auto dict = module_->getAttrOfType<DictionaryAttr>("kt.model");
    if (!dict)
      return module_.emitError("kt module lacks the kt.model attribute");
    auto info = std::make_unique<P::ModelInfoT>();
    auto str = [&](const char* k) {
      auto a = dict.getAs<StringAttr>(k);
      return a ? a.str() : std::string();
    };
    auto num = [&](const char* k, int64_t d) {
      auto a = dict.getAs<IntegerAttr>(k);
      return a ? a.getInt() : d;
    };
    info->arch = str("arch");
    info->source = str("source");
    info->vocab_size = num("vocab_size", 0);
    info->hidden_size = num("hidden_size", 0);
    info->num_layers = int32_t(num("num_layers", 0));
    info->max_position = num("max_position", 4096);
    info->bos_id = int32_t(num("bos_id", -1));
    if (auto eos = dict.getAs<DenseI64ArrayAttr>("eos_ids"))
      for (int64_t id : eos.asArrayRef())
        info->eos_ids.push_back(int32_t(id));
    info->compute_dtype = P::DType::F32;
    auto files = dict.getAs<ArrayAttr>("weight_files");
    auto sizes = dict.getAs<ArrayAttr>("weight_file_sizes");
    if (files && sizes && files.size() == sizes.size())
      for (auto [f, s] : llvm::zip(files, sizes))
        fileSizes_[llvm::cast<StringAttr>(f).str()] = uint64_t(llvm::cast<IntegerAttr>(s).getInt());
    b_.plan().model = std::move(info);
    return success();
  }

  uint16_t deviceOf(Operation* op) {
    if (auto attr = op->getAttrOfType<ktd::DeviceAttr>("placement"))
      return b_.device(attr.getSpec().str());
    return b_.device("cpu:numa0");
  }

  FailureOr<int32_t> weightIndex(ktd::WeightRefOp ref) {
    auto decl = symbols_.lookup<ktd::WeightOp>(ref.getWeight());
    if (!decl)
      return ref.emitError("unknown weight");
    return weightIndex(decl);
  }

  FailureOr<int32_t> weightIndex(ktd::WeightOp decl) {
    auto it = weights_.find(decl.getOperation());
    if (it != weights_.end())
      return it->second;
    auto w = std::make_unique<P::WeightT>();
    w->name = decl.getHfName().str();
    RankedTensorType type = decl.getTensorType();
    w->dtype = planDType(type.getElementType());
    w->shape.assign(type.getShape().begin(), type.getShape().end());
    auto storage = decl.getStorage().getAsRange<ktd::StorageAttr>();
    for (ktd::StorageAttr s : storage) {
      auto size = fileSizes_.find(s.getFile().str());
      if (size == fileSizes_.end())
        return decl.emitError("storage file '")
               << s.getFile() << "' is not listed in kt.model weight_files";
      uint32_t file = b_.weightFile(s.getFile().str(), size->second);
      w->segments.push_back(P::Segment(file, uint64_t(s.getOffset()), uint64_t(s.getSize())));
    }
    w->layout = w->segments.size() > 1 ? P::Layout::Stacked : P::Layout::RowMajor;
    w->device = deviceOf(decl);
    if (auto q = decl.getQuantAttr()) {
      w->quant = std::make_unique<P::QuantT>();
      llvm::StringRef s = q.getScheme();
      w->quant->scheme = s == "int8"   ? P::QuantScheme::Int8PerChannel
                         : s == "int4" ? P::QuantScheme::Int4Group
                                       : P::QuantScheme::None;
      w->quant->group_size = int32_t(q.getGroup());
      w->quant->symmetric = q.getSymmetric();
      if (b_.plan().devices[w->device]->kind == P::DeviceKind::CPU && failed(pack(decl, q, *w)))
        return failure();
    }
    int32_t id = int32_t(b_.weight(std::move(w)));
    weights_[decl.getOperation()] = id;
    return id;
  }

  // Plan.adapters from the module's kt.lora_adapter declarations, in declaration order.
  LogicalResult emitAdapters() {
    for (auto a : module_.getOps<ktd::LoraAdapterOp>()) {
      auto o = std::make_unique<P::AdapterT>();
      o->name = a.getPeftName().str();
      o->layout = a.getLayout() == "experts_fused" ? P::AdapterLayout::ExpertsFused
                                                   : P::AdapterLayout::Linear;
      o->r = int32_t(a.getR());
      o->alpha = a.getAlpha().convertToDouble();
      o->in_features = a.getInFeatures();
      o->out_features = a.getOutFeatures();
      o->num_experts = int32_t(a.getNumExperts());
      for (auto [i, ref] : llvm::enumerate(a.getTargets().getAsRange<FlatSymbolRefAttr>())) {
        auto decl = symbols_.lookup<ktd::WeightOp>(ref.getValue());
        if (!decl)
          return a.emitError("target ") << ref << " is not a kt.weight";
        auto w = weightIndex(decl);
        if (failed(w))
          return failure();
        auto t = std::make_unique<P::AdapterTargetT>();
        t->weight = uint32_t(*w);
        t->row_offset = a.getRowOffsets()[i];
        t->rows = a.getRows()[i];
        o->targets.push_back(std::move(t));
      }
      adapterIndex_[a.getSymName()] = int32_t(b_.plan().adapters.size());
      b_.plan().adapters.push_back(std::move(o));
    }
    return success();
  }

  LogicalResult emitTraining() {
    auto t = module_->getAttrOfType<DictionaryAttr>(ktd::kTrainingAttr);
    if (!t)
      return module_.emitError("a module with @train_step needs the kt.training attribute");
    auto o = std::make_unique<P::TrainingT>();
    if (auto m = t.getAs<StringAttr>("method"))
      o->method = m.str();
    if (auto r = t.getAs<IntegerAttr>("r"))
      o->r = int32_t(r.getInt());
    if (auto a = t.getAs<FloatAttr>("alpha"))
      o->alpha = a.getValueAsDouble();
    auto strings = [&](const char* key, std::vector<std::string>& out) {
      if (auto arr = t.getAs<ArrayAttr>(key))
        for (auto s : arr.getAsRange<StringAttr>())
          out.push_back(s.str());
    };
    strings("target_modules", o->target_modules);
    strings("target_parameters", o->target_parameters);
    if (auto b = t.getAs<IntegerAttr>("saved_activation_bytes_per_token"))
      o->saved_activation_bytes_per_token = b.getInt();
    b_.plan().training = std::move(o);
    return success();
  }

  // Step.adapters: the Plan.adapters index of each weight slot's adapter (-1 none), from the
  // op's kt.adapters = {slot = @adapter}; left empty when the op has none.
  LogicalResult fillAdapters(Operation* op, P::StepT& s) {
    auto dict = op->getAttrOfType<DictionaryAttr>(ktd::kAdaptersAttr);
    if (!dict || dict.empty())
      return success();
    const P::OpSignature* sig = P::opSignature(s.op);
    if (!sig || !sig->slotNames[0])
      return op->emitError("op kind takes no weights but has LoRA adapters");
    s.adapters.assign(s.weights.size(), -1);
    size_t found = 0;
    for (size_t i = 0; i < s.weights.size(); ++i) {
      auto ref = dict.getAs<FlatSymbolRefAttr>(sig->slotNames[i]);
      if (!ref)
        continue;
      auto it = adapterIndex_.find(ref.getValue());
      if (it == adapterIndex_.end())
        return op->emitError("adapter ")
               << ref << " of slot " << sig->slotNames[i] << " is not a kt.lora_adapter";
      s.adapters[i] = it->second;
      ++found;
    }
    if (found != dict.size())
      return op->emitError("kt.adapters names a slot this op does not have: ") << dict;
    return success();
  }

  // Repacks a CPU weight for the quantized kernels: one blob per matrix (per expert for stacked
  // weights) appended to the sidecar; the plan's segments then point into the sidecar.
  LogicalResult pack(ktd::WeightOp decl, ktd::QuantAttr q, P::WeightT& w) {
    if (!packer_)
      return decl.emitError("quantized weights need a sidecar (internal: no packer given)");
    llvm::StringRef s = q.getScheme();
    P::PackedFormat fmt;
    if (s == "f32")
      fmt = P::PackedFormat::F32;
    else if (s == "bf16")
      fmt = P::PackedFormat::BF16;
    else if (s == "int8")
      fmt = P::PackedFormat::Int8;
    else if (s == "int4" && q.getGroup() == 32)
      fmt = q.getSymmetric() ? P::PackedFormat::Int4G32Sym : P::PackedFormat::Int4G32Asym;
    else if (s == "int4" && q.getGroup() == 128)
      fmt = q.getSymmetric() ? P::PackedFormat::Int4G128Sym : P::PackedFormat::Int4G128Asym;
    else
      return decl.emitError("no CPU kernel format for quantization ") << q;
    // The checkpoint ranges stay in the plan as the weight's source, so `kt-rt pack` can rebuild
    // the sidecar elsewhere; both cut them into matrices by the same rule (runtime/pack).
    ::kt::pack::MatrixStack m;
    if (!::kt::pack::matrixStack(w.shape, &m))
      return decl.emitError("only a matrix or a stack of matrices can be packed");
    std::vector<::kt::pack::ByteRange> source, slices;
    for (const P::Segment& seg : w.segments)
      source.push_back({seg.file(), seg.offset(), seg.size()});
    std::string why;
    if (!::kt::pack::sourceSlices(m, dtypeSize(::kt::DType(w.dtype)), source, &slices, &why))
      return decl.emitError("cannot pack: ") << why;
    std::vector<P::Segment> packed;
    for (const ::kt::pack::ByteRange& src : slices) {
      uint64_t outOffset = 0, outSize = 0;
      std::string err;
      const std::string& file = b_.plan().weight_files[src.file]->path;
      if (!packer_->pack(file, src.offset, ::kt::DType(w.dtype), m.n, m.k, int(fmt), &outOffset,
                         &outSize, &err))
        return decl.emitError("packing failed: ") << err;
      packed.push_back(P::Segment(sidecarIndex(), outOffset, outSize));
    }
    w.source = std::move(w.segments);
    w.segments = std::move(packed);
    w.layout = P::Layout::Packed;
    w.packed_format = fmt;
    return success();
  }

  // The sidecar's entry in the plan's weight files (its size is set when packing finishes).
  uint32_t sidecarIndex() {
    if (sidecar_ < 0) {
      std::string name = packer_->path();
      if (auto slash = name.find_last_of('/'); slash != std::string::npos)
        name = name.substr(slash + 1);
      sidecar_ = int32_t(b_.weightFile(name, 0));
    }
    return uint32_t(sidecar_);
  }

public:
  LogicalResult finishSidecar() {
    if (!packer_)
      return success();
    uint64_t size = 0;
    std::string err;
    if (!packer_->finish(&size, &err))
      return module_.emitError(err);
    if (sidecar_ >= 0)
      b_.plan().weight_files[size_t(sidecar_)]->size = size;
    return success();
  }

private:
  // A readable step name: the weight symbol's prefix ("layers.1.attn") or op name + counter.
  std::string stepName(Operation* op) {
    if (llvm::isa<ktd::CrossEntropyLossOp>(op))
      return "loss";
    if (llvm::isa<ktd::AdamWOp>(op))
      return "adamw";
    if (op->getName().getStringRef().ends_with("_grad"))
      return stepName(op, /*grad=*/true);
    return stepName(op, false);
  }
  std::string stepName(Operation* op, bool grad) {
    const char* suffix = grad ? ".grad" : "";
    for (Value v : op->getOperands())
      if (auto ref = v.getDefiningOp<ktd::WeightRefOp>()) {
        std::string s = ref.getWeight().str();
        auto dot = s.rfind('.');
        return (dot == std::string::npos ? s : s.substr(0, dot)) + suffix;
      }
    if (auto t = llvm::dyn_cast<ktd::TapOp>(op))
      return "tap." + t.getName().str();
    return op->getName().stripDialect().str() + "." + std::to_string(counter_++);
  }

  // Buffer for a new activation value: a dead buffer of the same type when one is free.
  uint32_t allocate(Value v, uint16_t device, const std::string& dedicatedName = "") {
    auto type = llvm::cast<RankedTensorType>(v.getType());
    if (!dedicatedName.empty()) { // an entry's result: its own buffer, never reused
      std::vector<int64_t> shape;
      for (int64_t d : type.getShape())
        shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
      return b_.buffer(dedicatedName, planDType(type.getElementType()), shape, device,
                       P::BufferKind::Output);
    }
    std::string key = std::to_string(device) + ":";
    llvm::raw_string_ostream os(key);
    type.print(os);
    os.flush();
    auto& pool = free_[key];
    uint32_t id;
    if (!pool.empty()) {
      id = pool.back();
      pool.pop_back();
    } else {
      std::vector<int64_t> shape;
      for (int64_t d : type.getShape())
        shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
      // Named by slot, not by first user: a buffer is reused by many values.
      id = b_.buffer("t" + std::to_string(b_.plan().buffers.size()),
                     planDType(type.getElementType()), shape, device);
    }
    bufferKey_[id] = key;
    return id;
  }

  LogicalResult emitEntry(func::FuncOp fn, const std::string& name) {
    P::EntryPointT& ep = b_.entryPoint(name);
    entry_ = name;
    values_.clear();
    free_.clear();
    Block& body = fn.getBody().front();
    uint16_t cpu = b_.device("cpu:numa0");
    // Inference entries prefix their buffer names; train_step binds "ids", "positions", "labels"
    // and returns "loss" (plan.fbs).
    const bool train = name == "train_step";
    const std::string prefix = train ? "" : name + ".";
    const char* argNames[] = {"ids", "positions", "labels"};
    for (unsigned i = 0; i < body.getNumArguments() && i < 3; ++i) {
      uint32_t id = b_.buffer(prefix + argNames[i], P::DType::I32, {-1}, cpu, P::BufferKind::Input);
      values_[body.getArgument(i)] = id;
      ep.inputs.push_back(id);
    }
    llvm::DenseSet<Value> returned;
    if (train)
      for (Value v : body.getTerminator()->getOperands())
        returned.insert(v);

    // Liveness: the last op that reads each value.
    llvm::DenseMap<Value, Operation*> lastUse;
    for (Operation& op : body)
      for (Value v : op.getOperands())
        lastUse[v] = &op;

    for (Operation& op : body) {
      if (auto ref = llvm::dyn_cast<ktd::WeightRefOp>(op)) {
        auto id = weightIndex(ref);
        if (failed(id))
          return failure();
        weightOf_[ref.getResult()] = *id;
        continue;
      }
      if (auto ret = llvm::dyn_cast<func::ReturnOp>(op)) {
        if (ret.getNumOperands() != 1 || !values_.count(ret.getOperand(0)))
          return ret.emitError(train ? "@train_step must return the loss"
                                     : "@forward must return the logits");
        uint32_t out = values_[ret.getOperand(0)];
        b_.plan().buffers[out]->kind = P::BufferKind::Output;
        ep.outputs = {out};
        continue;
      }
      auto step = std::make_unique<P::StepT>();
      if (failed(fillStep(op, *step)))
        return failure();
      if (failed(fillAdapters(&op, *step)))
        return failure();
      step->name = stepName(&op);
      step->device = llvm::isa<ktd::TapOp>(op)     ? b_.plan().buffers[step->inputs[0]]->device
                     : llvm::isa<ktd::AdamWOp>(op) ? cpu
                                                   : deviceOf(&op);
      // Inputs dying here free their buffers only after the outputs are allocated (no aliasing).
      for (Value r : op.getResults()) {
        uint32_t out = allocate(r, step->device, returned.contains(r) ? "loss" : "");
        values_[r] = out;
        step->outputs.push_back(out);
      }
      for (Value v : op.getOperands())
        if (lastUse[v] == &op && values_.count(v) && v.getParentBlock() == &body &&
            !llvm::isa<BlockArgument>(v))
          free_[bufferKey_[values_[v]]].push_back(values_[v]);
      ep.steps.push_back(std::move(step));
    }
    if (ep.outputs.empty())
      return fn.emitError("@") << fn.getName() << " has no return";
    return success();
  }

  LogicalResult activation(Operation* op, Value v, P::StepT& s) {
    auto it = values_.find(v);
    if (it == values_.end())
      return op->emitError("operand is not an activation produced in @forward");
    s.inputs.push_back(it->second);
    return success();
  }
  int32_t weight(Value v) {
    if (!v)
      return -1;
    auto it = weightOf_.find(v);
    return it == weightOf_.end() ? -2 : it->second;
  }
  LogicalResult weights(Operation* op, P::StepT& s, std::initializer_list<Value> slots) {
    for (Value v : slots) {
      int32_t id = weight(v);
      if (id == -2)
        return op->emitError("weight operand must come from kt.weight_ref");
      s.weights.push_back(id);
    }
    return success();
  }

  void addKvLayer(int layer, P::KvKind kind, int heads, int k, int v, uint16_t device) {
    for (auto& kv : b_.plan().kv_layers)
      if (kv->layer == layer)
        return;
    auto kv = std::make_unique<P::KvLayerT>();
    kv->layer = layer;
    kv->kind = kind;
    kv->num_kv_heads = heads;
    kv->k_dim = k;
    kv->v_dim = v;
    kv->device = device;
    b_.plan().kv_layers.push_back(std::move(kv));
  }

  // Attributes and weights shared by a model op and its backward op (same accessors).
  template <typename Op> LogicalResult fillRmsNorm(Op o, P::StepT& s) {
    P::RmsNormAttrsT a;
    a.eps = o.getEps().convertToDouble();
    s.attrs.Set(a);
    return weights(o, s, {o.getWeight()});
  }
  template <typename Op> LogicalResult fillAttention(Op o, P::StepT& s) {
    s.layer = int32_t(o.getLayer());
    P::AttentionAttrsT a;
    a.num_heads = int32_t(o.getNumHeads());
    a.num_kv_heads = int32_t(o.getNumKvHeads());
    a.head_dim = int32_t(o.getHeadDim());
    a.scale = o.getScale().convertToDouble();
    a.rope = planRope(o.getRope());
    a.norm_eps = o.getNormEps() ? o.getNormEps()->convertToDouble() : 1e-6;
    s.attrs.Set(std::move(a));
    return weights(o, s,
                   {o.getQProj(), o.getKProj(), o.getVProj(), o.getOProj(), o.getQBias(),
                    o.getKBias(), o.getVBias(), o.getQNorm(), o.getKNorm()});
  }
  template <typename Op> LogicalResult fillMla(Op o, P::StepT& s) {
    s.layer = int32_t(o.getLayer());
    P::MlaAttrsT a;
    a.num_heads = int32_t(o.getNumHeads());
    a.q_lora_rank = int32_t(o.getQLoraRank());
    a.kv_lora_rank = int32_t(o.getKvLoraRank());
    a.qk_nope_head_dim = int32_t(o.getQkNopeHeadDim());
    a.qk_rope_head_dim = int32_t(o.getQkRopeHeadDim());
    a.v_head_dim = int32_t(o.getVHeadDim());
    a.scale = o.getScale().convertToDouble();
    a.rope = planRope(o.getRope());
    a.norm_eps = o.getNormEps().convertToDouble();
    s.attrs.Set(std::move(a));
    return weights(o, s,
                   {o.getQProj(), o.getQAProj(), o.getQANorm(), o.getQBProj(), o.getKvAProj(),
                    o.getKvANorm(), o.getKvBProj(), o.getOProj()});
  }
  // kt-partition's prefill-offload decision (kt.prefill_offload_min_tokens / _device): written on
  // the prefill entry's inference MoE steps only, because the partitioner prices streaming for
  // prefill; decode steps keep their CPU experts whatever the batch. The runtime streams inside
  // the GPU's moe op, so the offload device must be the step's own device.
  template <typename Op>
  LogicalResult fillPrefillOffload(Op o, const P::StepT& s, P::MoeAttrsT& a) {
    Operation* op = o.getOperation();
    auto minTokens = op->getAttrOfType<IntegerAttr>("kt.prefill_offload_min_tokens");
    auto device = op->getAttrOfType<ktd::DeviceAttr>("kt.prefill_offload_device");
    if (!minTokens || !device || entry_ != "prefill" || s.op != P::OpKind::Moe)
      return success();
    if (minTokens.getInt() < 1)
      return o.emitError("kt.prefill_offload_min_tokens must be >= 1, got ") << minTokens.getInt();
    const uint16_t d = b_.device(device.getSpec().str()), own = deviceOf(op); // s.device: not yet
    if (d != own)
      return o.emitError("kt.prefill_offload_device ")
             << device.getSpec() << " is not the op's placement (" << b_.plan().devices[own]->name
             << "): kt-rt streams CPU-held experts only to the GPU that runs the moe op";
    a.prefill_offload_min_tokens = minTokens.getInt();
    a.prefill_offload_device = int32_t(d);
    return success();
  }

  template <typename Op> LogicalResult fillMoe(Op o, P::StepT& s) {
    s.layer = int32_t(o.getLayer());
    P::MoeAttrsT a;
    a.num_experts = int32_t(o.getNumExperts());
    a.experts_per_token = int32_t(o.getExpertsPerToken());
    a.scoring = o.getScoring() == "sigmoid" ? P::MoeScoring::Sigmoid : P::MoeScoring::Softmax;
    llvm::StringRef m = o.getTopkMethod();
    a.topk_method = m == "noaux_tc"               ? P::MoeTopk::NoauxTc
                    : m == "group_limited_greedy" ? P::MoeTopk::GroupLimitedGreedy
                                                  : P::MoeTopk::Greedy;
    a.n_group = int32_t(o.getNGroup());
    a.topk_group = int32_t(o.getTopkGroup());
    a.norm_topk_prob = o.getNormTopkProb();
    a.routed_scaling_factor = o.getRoutedScalingFactor().convertToDouble();
    a.layer = int32_t(o.getLayer()); // keys the "route.<layer>" tap and expert stats (kt-tune)
    // kt-partition's per-expert placement, when it split the layer over several devices.
    Operation* op = o.getOperation();
    auto expertDevices = op->getAttrOfType<ArrayAttr>("kt.expert_devices");
    auto expertPlacement = op->getAttrOfType<DenseI32ArrayAttr>("kt.expert_placement");
    if (expertDevices && expertPlacement && expertDevices.size() > 1)
      for (int32_t d : expertPlacement.asArrayRef())
        a.expert_devices.push_back(
            b_.device(llvm::cast<ktd::DeviceAttr>(expertDevices[size_t(d)]).getSpec().str()));
    if (failed(fillPrefillOffload(o, s, a)))
      return failure();
    s.attrs.Set(a);
    return weights(o, s,
                   {o.getRouter(), o.getCorrectionBias(), o.getGate(), o.getUp(), o.getDown(),
                    o.getSharedGate(), o.getSharedUp(), o.getSharedDown(),
                    o.getSharedExpertGate()});
  }
  template <typename Op> LogicalResult fillMlp(Op o, P::StepT& s) {
    P::MlpAttrsT a;
    a.activation = o.getActivation().str();
    s.attrs.Set(a);
    return weights(o, s, {o.getGate(), o.getUp(), o.getDown()});
  }

  // The activation inputs of a step: its first `n` operands (x[, positions][, dy] / labels).
  LogicalResult activations(Operation* op, P::StepT& s, unsigned n) {
    for (unsigned i = 0; i < n; ++i)
      if (failed(activation(op, op->getOperand(i), s)))
        return failure();
    return success();
  }

  LogicalResult fillStep(Operation& op, P::StepT& s) {
    return llvm::TypeSwitch<Operation*, LogicalResult>(&op)
        .Case([&](ktd::EmbeddingOp o) {
          s.op = P::OpKind::Embedding;
          if (failed(activation(o, o.getIds(), s)))
            return failure();
          return weights(o, s, {o.getTable()});
        })
        .Case([&](ktd::RmsNormOp o) {
          s.op = P::OpKind::RmsNorm;
          return failed(activations(o, s, 1)) ? failure() : fillRmsNorm(o, s);
        })
        .Case([&](ktd::RmsNormGradOp o) {
          s.op = P::OpKind::RmsNormGrad;
          return failed(activations(o, s, 2)) ? failure() : fillRmsNorm(o, s);
        })
        .Case([&](ktd::LinearOp o) {
          s.op = P::OpKind::Linear;
          if (failed(activation(o, o.getX(), s)))
            return failure();
          return weights(o, s, {o.getWeight(), o.getBias()});
        })
        .Case([&](ktd::LinearGradOp o) {
          s.op = P::OpKind::LinearGrad;
          if (failed(activations(o, s, 2)))
            return failure();
          return weights(o, s, {o.getWeight(), o.getBias()});
        })
        .Case([&](ktd::RopeOp o) {
          s.op = P::OpKind::Rope;
          P::RopeAttrsT a;
          a.rope = planRope(o.getRope());
          a.head_dim = int32_t(llvm::cast<RankedTensorType>(o.getX().getType()).getShape().back());
          s.attrs.Set(std::move(a));
          if (failed(activation(o, o.getX(), s)) || failed(activation(o, o.getPositions(), s)))
            return failure();
          return success();
        })
        .Case([&](ktd::AttentionOp o) {
          s.op = P::OpKind::Attention;
          addKvLayer(int(o.getLayer()), P::KvKind::Gqa, int(o.getNumKvHeads()), int(o.getHeadDim()),
                     int(o.getHeadDim()), deviceOf(o));
          return failed(activations(o, s, 2)) ? failure() : fillAttention(o, s);
        })
        .Case([&](ktd::AttentionGradOp o) {
          s.op = P::OpKind::AttentionGrad;
          return failed(activations(o, s, 3)) ? failure() : fillAttention(o, s);
        })
        .Case([&](ktd::MlaAttentionOp o) {
          s.op = P::OpKind::MlaAttention;
          addKvLayer(int(o.getLayer()), P::KvKind::Mla, 1, int(o.getKvLoraRank()),
                     int(o.getQkRopeHeadDim()), deviceOf(o));
          return failed(activations(o, s, 2)) ? failure() : fillMla(o, s);
        })
        .Case([&](ktd::MlaAttentionGradOp o) {
          s.op = P::OpKind::MlaAttentionGrad;
          return failed(activations(o, s, 3)) ? failure() : fillMla(o, s);
        })
        .Case([&](ktd::MoeOp o) {
          s.op = P::OpKind::Moe;
          return failed(activations(o, s, 1)) ? failure() : fillMoe(o, s);
        })
        .Case([&](ktd::MoeGradOp o) {
          s.op = P::OpKind::MoeGrad;
          return failed(activations(o, s, 2)) ? failure() : fillMoe(o, s);
        })
        .Case([&](ktd::MlpOp o) {
          s.op = P::OpKind::Mlp;
          return failed(activations(o, s, 1)) ? failure() : fillMlp(o, s);
        })
        .Case([&](ktd::MlpGradOp o) {
          s.op = P::OpKind::MlpGrad;
          return failed(activations(o, s, 2)) ? failure() : fillMlp(o, s);
        })
        .Case([&](ktd::SwigluOp o) {
          s.op = P::OpKind::Swiglu;
          if (failed(activation(o, o.getGate(), s)) || failed(activation(o, o.getUp(), s)))
            return failure();
          return success();
        })
        .Case([&](ktd::AddOp o) {
          s.op = P::OpKind::Add;
          if (failed(activation(o, o.getLhs(), s)) || failed(activation(o, o.getRhs(), s)))
            return failure();
          return success();
        })
        .Case([&](ktd::LmHeadOp o) {
          s.op = P::OpKind::LmHead;
          if (failed(activation(o, o.getX(), s)))
            return failure();
          return weights(o, s, {o.getWeight()});
        })
        .Case([&](ktd::CrossEntropyLossOp o) {
          s.op = P::OpKind::CrossEntropyLoss;
          if (failed(activations(o, s, 2)))
            return failure();
          return weights(o, s, {o.getWeight()});
        })
        .Case([&](ktd::AdamWOp o) {
          s.op = P::OpKind::AdamW;
          P::AdamWAttrsT a;
          a.lr = o.getLr().convertToDouble();
          a.beta1 = o.getBeta1().convertToDouble();
          a.beta2 = o.getBeta2().convertToDouble();
          a.eps = o.getEps().convertToDouble();
          a.weight_decay = o.getWeightDecay().convertToDouble();
          a.max_grad_norm = o.getMaxGradNorm().convertToDouble();
          s.attrs.Set(a);
          return success();
        })
        .Case([&](ktd::TapOp o) {
          s.op = P::OpKind::Tap;
          P::TapAttrsT a;
          a.name = o.getName().str();
          s.attrs.Set(a);
          return activation(o, o.getInput(), s);
        })
        .Default([&](Operation* other) {
          return other->emitError("op cannot be lowered to a plan step");
        });
  }

  ModuleOp module_;
  PlanBuilder& b_;
  SymbolTable symbols_;
  std::map<std::string, uint64_t> fileSizes_;
  llvm::DenseMap<Operation*, int32_t> weights_;
  llvm::DenseMap<Value, int32_t> weightOf_;
  llvm::DenseMap<Value, uint32_t> values_;
  std::map<std::string, std::vector<uint32_t>> free_;
  std::map<uint32_t, std::string> bufferKey_;
  llvm::StringMap<int32_t> adapterIndex_; // kt.lora_adapter symbol -> Plan.adapters index
  int counter_ = 0;
  std::string entry_; // the entry point being emitted ("prefill", "decode", "train_step")
  WeightPacker* packer_ = nullptr;
  int32_t sidecar_ = -1;
};

} // namespace

LogicalResult emitPlan(ModuleOp module, PlanBuilder& builder, WeightPacker* packer) {
  Emitter e(module, builder, packer);
  if (failed(e.run()))
    return failure();
  return e.finishSidecar();
}

} // namespace kt::compiler
