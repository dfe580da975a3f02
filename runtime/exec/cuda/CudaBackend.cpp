#include "runtime/exec/cuda/CudaBackend.h"

#include "kernels/cpu/Rope.h"
#include "kernels/cuda/CudaKernels.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Graph.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cuda/ActivationMoves.h"
#include "runtime/exec/cuda/ExpertStream.h"
#include "runtime/exec/cuda/GpuFormat.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kt::cudaops {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;

bool isTrainEntry(const plan::EntryPoint& ep) {
  return ep.name() && ep.name()->str() == "train_step";
}

// Which routed experts of a GPU moe step's stacked slot (gate/up/down) the GPU holds: per expert,
// from MoeAttrs.expert_devices when kt-partition split the layer, else all or none by the stacked
// weight's device (hybrid plans keep whole layers on the host). Empty: not an expert slot.
std::vector<char> gpuExperts(const plan::Step& s, int slot, const plan::Plan& p, int32_t id) {
  using namespace plan::slots;
  if (s.op() != plan::OpKind::Moe || (slot != Gate && slot != Up && slot != Down))
    return {};
  const auto* a = s.attrs_as_MoeAttrs();
  const auto onGpu = [&](uint16_t device) {
    return p.devices()->Get(device)->kind() == plan::DeviceKind::GPU;
  };
  if (a->expert_devices() && a->expert_devices()->size() == uint32_t(a->num_experts())) {
    std::vector<char> v;
    for (uint16_t d : *a->expert_devices())
      v.push_back(onGpu(d));
    return v;
  }
  return std::vector<char>(static_cast<size_t>(a->num_experts()),
                           onGpu(p.weights()->Get(uint32_t(id))->device()));
}

// Slots read only as the matrix of a GEMM (cuda linearInto), which --gpu-quant int8/int4 may store
// quantized: not embedding tables (row gathers), routers (routing decisions are sensitive and the
// matrices tiny), Qwen2's shared-expert gate, MLA's kv_b (split per head by f32 batched GEMMs),
// biases and norms.
bool gemmMatrixSlot(plan::OpKind op, int slot) {
  using namespace plan::slots;
  switch (op) {
  case plan::OpKind::Linear:
  case plan::OpKind::LmHead:
    return slot == 0;
  case plan::OpKind::Attention:
    return slot == Q || slot == plan::slots::K || slot == V || slot == O;
  case plan::OpKind::MlaAttention:
    return slot == QProj || slot == QAProj || slot == QBProj || slot == KvAProj || slot == MlaO;
  case plan::OpKind::Moe:
    return slot == Gate || slot == Up || slot == Down || slot == SharedGate || slot == SharedUp ||
           slot == SharedDown;
  case plan::OpKind::Mlp:
    return true;
  default:
    return false;
  }
}

void need(bool ok, const std::string& what, const std::string& err) {
  if (!ok)
    throw Error(what + ": " + err);
}

// Returns a KvCache slot's pages to the pool when the slot resets or its KvCache goes away.
struct PoolListener : KvSlotListener {
  explicit PoolListener(GpuKvPool* p) : pool(p) {}
  void slotReleased(int slot) override { pool->release(slot); }
  GpuKvPool* pool;
};

// The attention layers whose KV cache lives on the GPU (their attention step runs there), with
// the rows the plan's KV layout gives them (KvCache's rule).
std::vector<GpuKvPool::LayerRows> gpuKvLayers(const plan::Plan& p) {
  KvCache rows(p, 0);
  std::map<int, GpuKvPool::LayerRows> layers;
  for (const plan::EntryPoint* ep : *p.entry_points()) {
    if (isTrainEntry(*ep))
      continue;
    for (const plan::Step* s : *ep->steps())
      if ((s->op() == plan::OpKind::Attention || s->op() == plan::OpKind::MlaAttention) &&
          p.devices()->Get(s->device())->kind() == plan::DeviceKind::GPU)
        layers[s->layer()] = {s->layer(), rows.kRow(s->layer()), rows.vRow(s->layer())};
  }
  std::vector<GpuKvPool::LayerRows> v;
  for (const auto& [layer, r] : layers)
    v.push_back(r);
  return v;
}
} // namespace

CudaBackend::CudaBackend(const LoadedPlan& plan, const WeightStore& weights, ThreadPool* pool)
    : plan_(plan), weights_(weights), pool_(pool) {
  const plan::Plan& p = plan.root();
  // Checked before anything is allocated (a constructor that throws runs no destructor).
  const plan::QuantScheme quant = p.model()->gpu_quant();
  if (quant != plan::QuantScheme::None && quant != plan::QuantScheme::Int8PerChannel &&
      quant != plan::QuantScheme::Int4Group)
    throw Error(plan.origin() + ": ModelInfo.gpu_quant " + std::to_string(int(quant)) +
                " is not a GPU weight format this kt-rt knows");
  // The first GPU step names the device in every error below.
  const plan::Step* first = nullptr;
  const plan::Device* dev = nullptr;
  for (const plan::EntryPoint* ep : *p.entry_points())
    for (const plan::Step* s : *ep->steps())
      if (!isTrainEntry(*ep) && p.devices()->Get(s->device())->kind() == plan::DeviceKind::GPU) {
        const plan::Device* d = p.devices()->Get(s->device());
        if (dev && d != dev)
          throw Error(plan.origin() + ": plan places steps on " + dev->name()->str() + " and " +
                      d->name()->str() + "; this kt-rt runs one GPU per plan");
        first = first ? first : s;
        dev = d;
      }
  const std::string needs = plan.origin() + ": plan needs a GPU (step '" + first->name()->str() +
                            "' runs on " + dev->name()->str() + ")";
  std::string why;
  std::vector<cuda::GpuInfo> gpus = cuda::listGpus(&why);
  if (gpus.empty())
    throw Error(needs + ", but " + why);
  if (dev->index() < 0 || dev->index() >= int(gpus.size()))
    throw Error(needs + ", but this machine has " + std::to_string(gpus.size()) + " GPU(s)");
  gpuName_ = dev->name()->str() + " (" + gpus[size_t(dev->index())].name + ")";
  budget_ = dev->memory_budget();
  std::string err;
  need(cuda::setDevice(dev->index(), &err), needs, err);
  // One non-blocking stream for every kernel, copy and cuBLAS call of this backend: it never
  // waits for other work on the legacy default stream, and it can be captured into CUDA graphs.
  stream_ = cuda::createStream(&err);
  need(stream_ != nullptr, needs, err);
  cuda::setCurrentStream(stream_);
  const char* graphsEnv = std::getenv("KT_CUDA_GRAPHS");
  graphsOn_ = !(graphsEnv && std::strcmp(graphsEnv, "0") == 0);
  blas_ = cuda::Blas::create(&err);
  need(blas_ != nullptr, needs, err);

  // Which weights the GPU steps read, and which of them must stay f32 in a bf16 plan (MLA's kv_b,
  // split per head by the f32 batched GEMMs).
  std::vector<int> wanted(p.weights() ? p.weights()->size() : 0, -1); // -1 no, 0 any, 1 f32
  subset_.clear();
  // With --gpu-quant int8/int4: whether every GPU use of the weight is a GEMM matrix.
  const plan::QuantScheme gpuQuant = p.model()->gpu_quant();
  std::vector<char> quantOk(wanted.size(), 1);
  for (const plan::EntryPoint* ep : *p.entry_points()) {
    if (isTrainEntry(*ep))
      continue;
    for (const plan::Step* s : *ep->steps()) {
      if (p.devices()->Get(s->device())->kind() != plan::DeviceKind::GPU || !s->weights())
        continue;
      for (uint32_t slot = 0; slot < s->weights()->size(); ++slot) {
        int32_t id = s->weights()->Get(slot);
        if (id < 0)
          continue;
        std::vector<char> experts = gpuExperts(*s, int(slot), p, id);
        if (!experts.empty()) { // a routed-expert stack: only the GPU's experts go up
          if (std::find(experts.begin(), experts.end(), 1) == experts.end())
            continue;
          if (std::find(experts.begin(), experts.end(), 0) != experts.end())
            subset_[id] = experts;
        }
        bool f32 = s->op() == plan::OpKind::MlaAttention && int(slot) == plan::slots::KvBProj;
        wanted[size_t(id)] = std::max(wanted[size_t(id)], f32 ? 1 : 0);
        if (!gemmMatrixSlot(s->op(), int(slot)))
          quantOk[size_t(id)] = 0;
      }
    }
  }
  gpuWeights_.resize(wanted.size());
  uint64_t total = 0;
  for (size_t id = 0; id < wanted.size(); ++id)
    if (wanted[id] >= 0) {
      const plan::Weight& w = weights.weight(int32_t(id));
      uint64_t n = 1;
      for (int64_t d : *w.shape())
        n *= uint64_t(d);
      total += n * 4;
    }
  auto t0 = std::chrono::steady_clock::now();
  int lastTenth = 0, count = 0;
  const bool showProgress = total >= (256ull << 20);
  for (size_t id = 0; id < wanted.size(); ++id) {
    if (wanted[id] < 0)
      continue;
    upload(int32_t(id), wanted[id] == 1,
           quantOk[id] && wanted[id] != 1 ? gpuQuant : plan::QuantScheme::None);
    ++count;
    int tenth = total ? int(10.0 * double(weightBytes_) / double(total)) : 10;
    if (showProgress && tenth > lastTenth) {
      lastTenth = tenth;
      std::fprintf(stderr, "[kt-rt] %s: uploading weights %3d%% (%.0f MiB)\n", gpuName_.c_str(),
                   std::min(100, tenth * 10), double(weightBytes_) / kMiB);
    }
  }
  std::fprintf(stderr, "[kt-rt] %s: %d weights (%.1f MiB) uploaded in %.2f s\n", gpuName_.c_str(),
               count, double(weightBytes_) / kMiB,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  // Prefill offload's two expert slots (allocated now when some step streams, so that a plan
  // that cannot hold them fails at load, not in the middle of a prompt).
  experts_ = std::make_unique<ExpertStream>(
      plan, weights, first->device(), gemmFormat(gpuQuant, p.model()->compute_dtype()), gpuName_);
  if (experts_->deviceBytes() > 0)
    std::fprintf(stderr,
                 "[kt-rt] %s: %.1f MiB for streaming CPU-held experts during long prefills "
                 "(2 experts, %s)\n",
                 gpuName_.c_str(), double(experts_->deviceBytes()) / kMiB,
                 gpuFormatName(experts_->format()));
  // The paged KV cache: no memory until the first run reserves pages.
  kvPool_ = std::make_unique<GpuKvPool>(gpuKvLayers(p), p.model()->max_position(),
                                        GpuKvPool::pageTokensFromEnv(), gpuName_);
  kvListener_ = std::make_shared<PoolListener>(kvPool_.get());
  const uint64_t fixed = weightBytes_ + experts_->deviceBytes();
  if (budget_ > 0 && fixed > budget_)
    std::fprintf(stderr,
                 "[kt-rt] warning: %s: the weights%s alone (%.1f MiB) exceed the %.1f MiB the plan "
                 "was partitioned for (the cost model sized them differently)\n",
                 gpuName_.c_str(), experts_->deviceBytes() ? " and expert staging" : "",
                 double(fixed) / kMiB, double(budget_) / kMiB);
}

CudaBackend::~CudaBackend() {
  std::string err;
  if (stream_)
    cuda::setCurrentStream(stream_);
  cuda::synchronize(&err); // nothing of ours may still run when its memory goes
  for (auto& [key, g] : graphs_)
    cuda::destroyGraph(g.exec);
  blas_.reset(); // its handle is bound to our stream
  experts_.reset();
  for (GpuWeight& w : gpuWeights_) {
    cuda::release(w.data);
    cuda::release(w.scales);
    cuda::release(w.groupScales);
    cuda::release(w.localDev);
  }
  for (GpuBuffer& b : buffers_)
    cuda::release(b.data);
  for (auto& [id, b] : scratch_)
    cuda::release(b.data);
  kvListener_.reset(); // KvCaches that outlive us call nothing
  kvPool_.reset();
  for (auto& [s, b] : invFreq_)
    cuda::release(b.data);
  for (auto& [id, b] : pinned_)
    cuda::releasePinned(b.data);
  for (Timer& t : timers_) {
    cuda::destroyEvent(&t.start);
    cuda::destroyEvent(&t.end);
  }
  for (auto& [id, e] : events_)
    cuda::destroyEvent(&e);
  for (auto& [rows, b] : rowIds_)
    cuda::release(b.data);
  cuda::release(stepParamsBuf_.data);
  cuda::setCurrentStream(nullptr);
  cuda::destroyStream(stream_);
}

cpu::MatrixView CudaBackend::hostSlice(int32_t id, int64_t e) const {
  return weights_.weight(id).shape()->size() >= 3 ? weights_.slice(id, e) : weights_.matrix(id);
}

void CudaBackend::upload(int32_t id, bool forceF32, plan::QuantScheme quant) {
  const plan::Weight& w = weights_.weight(id);
  const std::string what = plan_.origin() + ": weight '" + w.name()->str() + "' on " + gpuName_;
  const auto part = subset_.find(id);
  // A split expert layer's stack is usually held (and packed) for the CPU; the GPU's experts are
  // then dequantized as they go up, so both sides compute with the same weights.
  if (w.layout() == plan::Layout::Packed && part == subset_.end())
    throw Error(what +
                " is packed for the CPU kernels (--cpu-quant); GPU steps need plain weights");
  const int rank = int(w.shape()->size());
  const bool bf16 =
      !forceF32 && rank >= 2 && plan_.root().model()->compute_dtype() == plan::DType::BF16;
  GpuWeight g;
  g.bf16 = bf16;
  std::vector<int64_t> slices; // the stack's slices to upload, in GPU order
  if (part != subset_.end())
    g.local.assign(part->second.size(), -1);
  for (int64_t e = 0; e < (rank >= 3 ? w.shape()->Get(0) : 1); ++e)
    if (part == subset_.end() || part->second[size_t(e)]) {
      if (!g.local.empty())
        g.local[size_t(e)] = int32_t(slices.size());
      slices.push_back(e);
    }
  g.count = int64_t(slices.size());
  cpu::MatrixView first = hostSlice(id, 0);
  g.rows = first.rows;
  g.cols = first.cols;
  if (quant != plan::QuantScheme::None && rank >= 2) {
    if (quant == plan::QuantScheme::Int4Group)
      uploadInt4(id, g, slices, what);
    else
      uploadInt8(id, g, slices, what);
    uploadLocal(id, what);
    return;
  }
  const size_t sliceElems = size_t(g.rows * g.cols), elemBytes = bf16 ? 2 : 4;
  std::string err;
  g.data = cuda::allocate(sliceElems * size_t(g.count) * elemBytes, &err);
  need(g.data != nullptr, what, err);
  gpuWeights_[size_t(id)] = g; // owned from here (freed by the destructor on a later throw)
  std::vector<uint8_t> staging;
  for (int64_t e = 0; e < g.count; ++e) {
    cpu::MatrixView v = hostSlice(id, slices[size_t(e)]);
    const void* src = v.data;
    const bool sameType = v.packed < 0 && v.dtype == (bf16 ? DType::BF16 : DType::F32);
    if (!sameType) { // converted into the GPU's dtype (GpuFormat.h, shared with ExpertStream)
      staging.resize(sliceElems * elemBytes);
      packForGpu(v, bf16 ? GpuFormat::BF16 : GpuFormat::F32, staging.data(), nullptr, pool_);
      src = staging.data();
    }
    need(cuda::toDevice(static_cast<char*>(g.data) + size_t(e) * sliceElems * elemBytes, src,
                        sliceElems * elemBytes, &err),
         what, err);
  }
  weightBytes_ += sliceElems * size_t(g.count) * elemBytes;
  uploadLocal(id, what);
}

// A split expert stack's expert -> slice map goes up too: the decode MoE kernels skip the experts
// the GPU does not hold without asking the host.
void CudaBackend::uploadLocal(int32_t id, const std::string& what) {
  GpuWeight& g = gpuWeights_[size_t(id)];
  if (g.local.empty())
    return;
  std::string err;
  g.localDev = static_cast<int32_t*>(cuda::allocate(g.local.size() * 4, &err));
  need(g.localDev != nullptr, what, err);
  need(cuda::toDevice(g.localDev, g.local.data(), g.local.size() * 4, &err), what, err);
}

// Symmetric per-row int8 (the CPU's Int8 format: scale = max|w| / 127, q = round(w / scale)),
// quantized slice by slice on the host from the checkpoint's values.
void CudaBackend::uploadInt8(int32_t id, GpuWeight& g, const std::vector<int64_t>& slices,
                             const std::string& what) {
  const size_t sliceElems = size_t(g.rows * g.cols);
  std::string err;
  g.data = cuda::allocate(sliceElems * size_t(g.count), &err);
  need(g.data != nullptr, what, err);
  gpuWeights_[size_t(id)] = g; // owned from here (freed by the destructor on a later throw)
  g.scales = static_cast<float*>(cuda::allocate(size_t(g.rows * g.count) * 4, &err));
  need(g.scales != nullptr, what, err);
  gpuWeights_[size_t(id)] = g;
  std::vector<float> scales(size_t(g.rows));
  std::vector<int8_t> q(sliceElems);
  for (int64_t e = 0; e < g.count; ++e) {
    packForGpu(hostSlice(id, slices[size_t(e)]), GpuFormat::Int8, q.data(), scales.data(), pool_);
    need(cuda::toDevice(static_cast<int8_t*>(g.data) + size_t(e) * sliceElems, q.data(), sliceElems,
                        &err) &&
             cuda::toDevice(g.scales + e * g.rows, scales.data(), scales.size() * 4, &err),
         what, err);
  }
  weightBytes_ += (sliceElems + size_t(g.rows) * 4) * size_t(g.count);
}

// Weight-only int4 in the layout of kernels/cuda/Int4Format.h (the CPU's int4:g128 rule: one f16
// scale per row and 128-column group, q in -8..7), quantized slice by slice on the host.
void CudaBackend::uploadInt4(int32_t id, GpuWeight& g, const std::vector<int64_t>& slices,
                             const std::string& what) {
  const int64_t rowBytes = cuda::int4RowBytes(g.cols), groups = cuda::int4Groups(g.cols);
  const size_t sliceBytes = size_t(g.rows * rowBytes), sliceScales = size_t(g.rows * groups);
  std::string err;
  g.data = cuda::allocate(sliceBytes * size_t(g.count), &err);
  need(g.data != nullptr, what, err);
  gpuWeights_[size_t(id)] = g; // owned from here (freed by the destructor on a later throw)
  g.groupScales = static_cast<uint16_t*>(cuda::allocate(sliceScales * size_t(g.count) * 2, &err));
  need(g.groupScales != nullptr, what, err);
  gpuWeights_[size_t(id)] = g;
  std::vector<uint8_t> packed(sliceBytes);
  std::vector<uint16_t> scales(sliceScales);
  for (int64_t e = 0; e < g.count; ++e) {
    if (!packForGpu(hostSlice(id, slices[size_t(e)]), GpuFormat::Int4, packed.data(), scales.data(),
                    pool_))
      throw Error(what +
                  (g.count > 1 ? " (expert " + std::to_string(slices[size_t(e)]) + ")" : "") +
                  ": non-finite values; --gpu-quant int4 needs finite weights");
    need(cuda::toDevice(static_cast<uint8_t*>(g.data) + size_t(e) * sliceBytes, packed.data(),
                        sliceBytes, &err) &&
             cuda::toDevice(g.groupScales + size_t(e) * sliceScales, scales.data(), sliceScales * 2,
                            &err),
         what, err);
  }
  weightBytes_ += (sliceBytes + sliceScales * 2) * size_t(g.count);
}

void CudaBackend::registerOps(OpRegistry& r) {
  using plan::DeviceKind;
  using plan::OpKind;
  r.add(OpKind::Embedding, DeviceKind::GPU, embedding);
  r.add(OpKind::RmsNorm, DeviceKind::GPU, rmsNorm);
  r.add(OpKind::Linear, DeviceKind::GPU, linear);
  r.add(OpKind::Rope, DeviceKind::GPU, rope);
  r.add(OpKind::Attention, DeviceKind::GPU, attention);
  r.add(OpKind::MlaAttention, DeviceKind::GPU, mlaAttention);
  r.add(OpKind::Moe, DeviceKind::GPU, moe);
  r.add(OpKind::Mlp, DeviceKind::GPU, mlp);
  r.add(OpKind::Swiglu, DeviceKind::GPU, swiglu);
  r.add(OpKind::Add, DeviceKind::GPU, add);
  r.add(OpKind::LmHead, DeviceKind::GPU, lmHead);
  r.add(OpKind::Tap, DeviceKind::GPU, tap);
}

void CudaBackend::ensure(GpuBuffer& b, size_t bytes) {
  if (b.bytes >= bytes)
    return;
  // A captured graph must not allocate (nor free what earlier launches use): the capture is
  // abandoned and the step runs eagerly (Graphs.cpp).
  if (capturing_)
    throw Error(gpuName_ + ": a buffer would grow while capturing a CUDA graph");
  std::string err;
  if (b.data) {
    ++generation_; // graphs captured with the old buffer are stale
    // Kernels queued on our stream may still read the old buffer.
    need(cuda::synchronizeStream(&err), gpuName_ + ": activation memory", err);
  }
  // Grow with headroom so that prefill then decode, or a growing batch, rarely reallocates.
  size_t cap = std::max(bytes, b.bytes * 2);
  cuda::release(b.data);
  b.bytes = 0;
  b.data = cuda::allocate(cap, &err);
  need(b.data != nullptr, gpuName_ + ": activation memory", err);
  b.bytes = cap;
}

void CudaBackend::beginRun(std::vector<Activation>& buffers) {
  cuda::setCurrentStream(stream_); // another model's backend may have run in between
  lastHybridEnd_.reset();          // host issue is counted between hybrid steps of one run
  buffers_.resize(buffers.size());
  where_.assign(buffers.size(), Where::Nowhere);
  for (size_t i = 0; i < buffers.size(); ++i)
    if (!buffers[i].i.empty() || !buffers[i].f.empty())
      where_[i] = Where::Host;
}

void CudaBackend::toGpu(uint32_t index, std::vector<Activation>& buffers) {
  if (where_[index] != Where::Host)
    return;
  const Activation& a = buffers[index];
  const bool ints = !a.i.empty();
  const size_t bytes = ints ? a.i.size() * 4 : a.f.size() * 4;
  ensure(buffers_[index], bytes);
  const void* src = ints ? static_cast<const void*>(a.i.data()) : a.f.data();
  std::string err;
  need(moveToDevice(buffers_[index].data, src, bytes, stage(bytes), pool_, &err),
       gpuName_ + ": moving an activation to the GPU", err);
  where_[index] = Where::Both;
}

void CudaBackend::toHost(uint32_t index, std::vector<Activation>& buffers) {
  if (where_[index] != Where::Gpu)
    return;
  Activation& a = buffers[index];
  const size_t bytes = size_t(a.rows * a.cols) * 4;
  void* staging = stage(bytes); // before the resize: a failed pinned allocation changes nothing
  a.resizeForOverwrite(a.rows, a.cols);
  std::string err;
  need(moveToHost(a.f.data(), buffers_[index].data, bytes, staging, pool_, &err),
       gpuName_ + ": moving an activation to the host", err);
  where_[index] = Where::Both;
}

void* CudaBackend::stage(size_t bytes) {
  return pool_ && bytes >= stagedMoveThreshold() ? pinned(kMoveStage, bytes) : nullptr;
}

size_t CudaBackend::beforeStep(const plan::Step& step, bool onBackend,
                               std::vector<Activation>& buffers) {
  size_t moved = 0;
  for (uint32_t i : *step.inputs()) {
    const Where before = where_[i];
    if (onBackend)
      toGpu(i, buffers);
    else
      toHost(i, buffers);
    if (where_[i] != before)
      moved += (buffers[i].i.empty() ? buffers[i].f.size() : buffers[i].i.size()) * 4;
  }
  for (uint32_t o : *step.outputs())
    where_[o] = onBackend ? Where::Gpu : Where::Host;
  return moved;
}

const GpuWeight* CudaBackend::weight(const OpContext& c, int slot) const {
  if (!c.step.weights() || slot >= int(c.step.weights()->size()))
    return nullptr;
  int32_t id = c.step.weights()->Get(uint32_t(slot));
  if (id < 0 || !gpuWeights_[size_t(id)].data)
    return nullptr;
  return &gpuWeights_[size_t(id)];
}

const float* CudaBackend::in(OpContext& c, int i) {
  return static_cast<const float*>(buffers_[c.step.inputs()->Get(uint32_t(i))].data);
}

const int32_t* CudaBackend::inIds(OpContext& c, int i) {
  return static_cast<const int32_t*>(buffers_[c.step.inputs()->Get(uint32_t(i))].data);
}

float* CudaBackend::out(OpContext& c, int i, int64_t rows, int64_t cols) {
  uint32_t index = c.step.outputs()->Get(uint32_t(i));
  Activation& a = c.buffers[index];
  a.rows = rows;
  a.cols = cols;
  a.f.clear(); // the value lives on the GPU until someone asks for it
  a.i.clear();
  ensure(buffers_[index], size_t(rows * cols) * 4);
  return static_cast<float*>(buffers_[index].data);
}

void* CudaBackend::scratch(int id, size_t bytes) {
  GpuBuffer& b = scratch_[id];
  ensure(b, bytes);
  return b.data;
}

void* CudaBackend::pinned(int id, size_t bytes) {
  GpuBuffer& b = pinned_[id];
  if (b.bytes < bytes) {
    std::string err;
    const size_t cap = std::max(bytes, b.bytes * 2);
    cuda::releasePinned(b.data);
    b.bytes = 0;
    b.data = cuda::allocatePinned(cap, &err);
    need(b.data != nullptr, gpuName_ + ": host staging memory", err);
    b.bytes = cap;
  }
  return b.data;
}

void CudaBackend::timeStep(const std::string& key, bool start) {
  mark(key, start);
  timedStep_ = start ? key : std::string();
}

void CudaBackend::mark(const std::string& key, bool start) {
  std::string err;
  if (start) {
    if (timersUsed_ == timers_.size()) {
      Timer t;
      need(cuda::createEvent(&t.start, &err) && cuda::createEvent(&t.end, &err),
           gpuName_ + ": profiling events", err);
      timers_.push_back(std::move(t));
    }
    Timer& t = timers_[timersUsed_];
    t.key = key;
    need(cuda::recordEvent(t.start, &err), gpuName_ + ": profiling event", err);
    openTimers_.push_back(timersUsed_++);
    return;
  }
  if (openTimers_.empty() || timers_[openTimers_.back()].key != key)
    throw Error(gpuName_ + ": profiling timer '" + key + "' stopped without being started");
  need(cuda::recordEvent(timers_[openTimers_.back()].end, &err), gpuName_ + ": profiling event",
       err);
  openTimers_.pop_back();
}

void CudaBackend::deviceTimes(std::map<std::string, double>* seconds) {
  std::string err;
  need(cuda::synchronizeStream(&err), gpuName_ + ": waiting for the profiled work", err);
  for (size_t i = 0; i < timersUsed_; ++i) {
    float ms = 0;
    need(cuda::elapsedMs(timers_[i].start, timers_[i].end, &ms, &err),
         gpuName_ + ": profiling event", err);
    (*seconds)[timers_[i].key] += ms * 1e-3;
  }
  timersUsed_ = 0;
  openTimers_.clear();
}

const cuda::GpuEvent& CudaBackend::event(int id) {
  cuda::GpuEvent& e = events_[id];
  if (!e.handle) {
    std::string err;
    need(cuda::createEvent(&e, &err), gpuName_ + ": timing event", err);
  }
  return e;
}

uint64_t CudaBackend::activationBytes() const {
  uint64_t act = 0;
  for (const GpuBuffer& b : buffers_)
    act += b.bytes;
  for (const auto& [id, b] : scratch_)
    act += b.bytes;
  return act;
}

GpuKvPool::Limit CudaBackend::kvLimit() const {
  GpuKvPool::Limit l;
  const uint64_t staging = experts_ ? experts_->deviceBytes() : 0;
  const uint64_t act = activationBytes(), pool = kvPool_->bytes();
  char line[400];
  if (budget_ > 0) {
    const uint64_t others = weightBytes_ + staging + act;
    l.bytes = budget_ > others + pool ? budget_ - others - pool : 0;
    std::snprintf(line, sizeof line,
                  "the plan's GPU budget of %.2f GiB (weights %.2f GiB, activations and scratch "
                  "%.2f GiB, expert staging %.2f GiB, KV cache %.2f GiB)",
                  double(budget_) / (kMiB * 1024), double(weightBytes_) / (kMiB * 1024),
                  double(act) / (kMiB * 1024), double(staging) / (kMiB * 1024),
                  double(pool) / (kMiB * 1024));
    l.what = line;
    l.remedy = "Compile the plan with a larger --gpu-mem, run fewer sequences at once (--batch), "
               "or shorter prompts and --gen-len.";
    return l;
  }
  // No budget in the plan: the device's free memory, less room for activations to grow.
  size_t freeB = 0, totalB = 0;
  std::string err;
  const uint64_t margin = std::max<uint64_t>(256ull << 20, act);
  if (cuda::memoryInfo(&freeB, &totalB, &err))
    l.bytes = freeB > margin ? freeB - margin : 0;
  std::snprintf(line, sizeof line,
                "the GPU's free memory (%.2f of %.2f GiB, less %.2f GiB kept for activations; the "
                "plan records no budget)",
                double(freeB) / (kMiB * 1024), double(totalB) / (kMiB * 1024),
                double(margin) / (kMiB * 1024));
  l.what = line;
  l.remedy = "Run fewer sequences at once (--batch) or shorter prompts and --gen-len, or free GPU "
             "memory.";
  return l;
}

void CudaBackend::prepareKv(const Batch& batch) {
  // A moved page table (more slots than it had rows) invalidates every captured graph.
  if (kvPool_->prepare(batch, [this] { return kvLimit(); }))
    ++generation_;
}

const int32_t* CudaBackend::rowIds(const std::vector<int64_t>& rows) {
  // Prefills of many prompt lengths would collect lists without end: start over now and then.
  if (rowIds_.size() >= 256 && !capturing_ && !rowIds_.count(rows)) {
    for (auto& [r, b] : rowIds_)
      cuda::release(b.data);
    rowIds_.clear();
    ++generation_;
  }
  GpuBuffer& b = rowIds_[rows];
  if (!b.data) {
    std::vector<int32_t> ids(rows.begin(), rows.end());
    ensure(b, ids.size() * 4);
    std::string err;
    need(cuda::toDevice(b.data, ids.data(), ids.size() * 4, &err), gpuName_ + ": lm_head rows",
         err);
  }
  return static_cast<const int32_t*>(b.data);
}

DeviceBackend::Overlap CudaBackend::overlap() const {
  Overlap o = overlap_;
  o.hostLaunches = int64_t(cuda::launchCount() - launchBase_);
  o.graphReplays = graphReplays_;
  o.deviceLaunches = o.hostLaunches - graphReplays_ + graphNodes_;
  return o;
}

void CudaBackend::resetOverlap() {
  overlap_ = {};
  launchBase_ = cuda::launchCount();
  graphReplays_ = graphNodes_ = 0;
}

const float* CudaBackend::invFreq(const plan::Step& step, const plan::Rope& rope) {
  GpuBuffer& b = invFreq_[&step];
  if (!b.data) {
    std::vector<float> inv = cpu::ropeInvFreq(cpuops::ropeParams(rope));
    ensure(b, inv.size() * 4);
    std::string err;
    need(cuda::toDevice(b.data, inv.data(), inv.size() * 4, &err), gpuName_ + ": rope", err);
  }
  return static_cast<const float*>(b.data);
}

void CudaBackend::check(const OpContext& c, bool ok, const std::string& err) const {
  if (!ok)
    throw Error(c.where() + " on " + gpuName_ + ": " + err);
}

void CudaBackend::checkLaunch(const OpContext& c) const {
  std::string err;
  check(c, cuda::launchOk(&err), err);
}

std::string CudaBackend::summary() const {
  const uint64_t act = activationBytes(), kvBytes = kvPool_->bytes();
  size_t freeB = 0, totalB = 0;
  std::string err;
  cuda::memoryInfo(&freeB, &totalB, &err);
  char line[512];
  std::snprintf(line, sizeof line,
                "%s: weights %.1f MiB, activations %.1f MiB, %s; device memory in use %.1f of "
                "%.1f GiB",
                gpuName_.c_str(), double(weightBytes_) / kMiB, double(act) / kMiB,
                kvPool_->report().c_str(), double(totalB - freeB) / (kMiB * 1024),
                double(totalB) / (kMiB * 1024));
  std::string text = line;
  size_t captured = 0;
  for (const auto& [key, g] : graphs_)
    captured += g.exec != nullptr;
  text += graphsOn_ ? "; CUDA graphs on (" + std::to_string(captured) + " captured)"
                    : std::string("; CUDA graphs off");
  const uint64_t staging = experts_ ? experts_->deviceBytes() : 0;
  if (staging > 0) {
    const ExpertStream::Stats& st = experts_->stats();
    std::snprintf(line, sizeof line,
                  "; prefill offload: staging %.1f MiB (2 experts, %s), streamed %lld experts "
                  "(%.1f MiB) in %lld MoE steps (host conversion %.3f s, slot waits %.3f s)",
                  double(staging) / kMiB, gpuFormatName(experts_->format()), (long long)st.experts,
                  double(st.bytes) / kMiB, (long long)st.steps, st.packSeconds, st.waitSeconds);
    text += line;
  }
  if (budget_ > 0) {
    const uint64_t ours = weightBytes_ + act + kvBytes + staging;
    std::snprintf(line, sizeof line, "; KT holds %.2f GiB of the plan's %.2f GiB budget (%s)",
                  double(ours) / (kMiB * 1024), double(budget_) / (kMiB * 1024),
                  ours <= budget_ ? "within" : "OVER");
    text += line;
  }
  return text;
}

std::unique_ptr<DeviceBackend>
makeCudaBackendIfNeeded(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool) {
  const plan::Plan& p = plan.root();
  for (const plan::EntryPoint* ep : *p.entry_points())
    for (const plan::Step* s : *ep->steps())
      if (!isTrainEntry(*ep) && p.devices()->Get(s->device())->kind() == plan::DeviceKind::GPU)
        return std::make_unique<CudaBackend>(plan, weights, &pool);
  return nullptr;
}

CudaBackend& backendOf(OpContext& c) {
  return *static_cast<CudaBackend*>(c.backend);
}

void linearInto(OpContext& c, const float* x, int64_t tokens, const GpuWeight& w, int64_t e,
                float* y, const GpuWeight* bias) {
  CudaBackend& b = backendOf(c);
  std::string err;
  if (w.int8())
    b.check(c,
            b.blas().linearInt8(x, tokens, static_cast<const int8_t*>(w.slice(e)), w.sliceScales(e),
                                w.rows, w.cols, y, &err),
            err);
  else if (w.int4())
    b.check(c,
            b.blas().linearInt4(x, tokens, static_cast<const uint8_t*>(w.slice(e)),
                                w.sliceGroupScales(e), w.rows, w.cols, y, &err),
            err);
  else
    b.check(c, b.blas().linear(x, tokens, w.slice(e), w.bf16, w.rows, w.cols, y, &err), err);
  if (bias)
    cuda::addBias(y, bias->f32(), tokens, w.rows);
}

} // namespace kt::cudaops
