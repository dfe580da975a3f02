// TrainDevice on CUDA (CudaTrainDevice.h): weights, buffers and adapters in GPU memory, each GPU
// step run by kernels/cuda/grad with the PreparedStep's parameters.
#include "runtime/train/cuda/CudaTrainDevice.h"

#include "kernels/cpu/Rope.h"
#include "kernels/cuda/CudaKernels.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"
#include "runtime/train/AdapterSet.h"

#include <algorithm>
#include <deque>
#include <map>

namespace kt::train {

namespace {

namespace cg = cuda::grad;
using plan::OpKind;

class CudaTrainDevice final : public TrainDevice {
public:
  CudaTrainDevice(const LoadedPlan& plan, AdapterSet& adapters, ThreadPool& pool,
                  const cuda::GpuInfo& gpu, const std::string& gpuName)
      : plan_(plan), adapters_(adapters), pool_(pool) {
    mem_.device = gpu.name + " (" + gpuName + ")";
    ctx_ = std::make_unique<cg::Context>();
    devAdapters_.resize(adapters.size());
  }

  ~CudaTrainDevice() override {
    std::string err;
    cuda::synchronize(&err);
    for (auto& [p, bytes] : allocations_)
      cuda::release(p);
    cuda::releasePinned(pinned_);
  }

  void prepare(const PreparedStep& p) override;
  void beginRun(const TrainBatch& batch, bool train, size_t numBuffers) override;
  void run(const PreparedStep& p, const TrainBatch& batch, int64_t normalizer, bool forwardOnly,
           std::vector<Activation>& buffers, LossOut* loss, std::vector<float>* logits) override;
  void toHost(uint32_t buffer, std::vector<Activation>& buffers) override;
  void hostWrote(uint32_t buffer) override {
    if (buffer < bufs_.size()) {
      bufs_[buffer].dev = false;
      bufs_[buffer].host = true;
    }
  }
  void endRun(bool train) override;
  void sync() override {
    std::string err;
    ctx_->check(cuda::synchronize(&err), err, "synchronize");
  }
  TrainDeviceMemory memory() const override {
    TrainDeviceMemory m = mem_;
    m.scratchBytes = ctx_->scratchBytes();
    m.peakBytes = std::max(peak_, current_ + m.scratchBytes);
    return m;
  }

private:
  struct GpuStep {
    const float* w = nullptr; // embedding table, norm weight, lm_head
    int64_t wRows = 0, wCols = 0;
    float eps = 0;
    cg::DevProjection proj;
    cg::DevMlp mlp;
    cg::DevAttention attn;
    cg::DevMla mla;
  };
  struct Buf {
    float* p = nullptr;
    int64_t cap = 0;  // floats
    bool dev = false; // the device holds the current value
    bool host = true; // the host Activation holds it
  };
  struct DevAdapter {
    bool used = false;
    float *A = nullptr, *B = nullptr, *dA = nullptr, *dB = nullptr;
  };

  void* alloc(size_t bytes, const std::string& what, size_t* counter);
  void release(void* p, size_t* counter);
  const float* weight(const cpu::MatrixView& m, const std::string& what);
  const cg::DevLora* lora(const cpu::grad::Lora* l, const std::string& what);
  cg::DevProjection projection(const cpu::grad::Projection& p, const std::string& what);
  cg::DevRope rope(const cpu::RopeParams& r, const std::string& what);
  float* devicePtr(const float* host, bool grad, const std::string& what);
  float* input(const PreparedStep& p, std::vector<Activation>& b, int i, int64_t T, int64_t cols,
               const char* what);
  float* output(const PreparedStep& p, std::vector<Activation>& b, int i, int64_t T, int64_t cols);
  void growBuf(Buf& b, int64_t floats);

  const LoadedPlan& plan_;
  AdapterSet& adapters_;
  ThreadPool& pool_;
  std::unique_ptr<cg::Context> ctx_;
  std::map<const PreparedStep*, GpuStep> steps_;
  std::map<const void*, const float*> weights_; // host weight data -> its f32 copy
  std::vector<DevAdapter> devAdapters_;
  std::deque<cg::DevLora> loras_;
  std::vector<Buf> bufs_;
  Buf spare_;  // an output whose buffer is also the step's input is computed here, then swapped
  Buf pruned_; // outputs the plan pruned
  int32_t* ids_ = nullptr;
  int64_t idsCap_ = 0;
  // Page-locked staging of the rows an MoE step (on the CPU) reads and writes: DMA copies.
  float* pinned_ = nullptr;
  size_t pinnedBytes_ = 0;
  float* staging(size_t bytes);
  std::map<void*, size_t> allocations_;
  size_t current_ = 0, peak_ = 0;
  TrainDeviceMemory mem_;
};

void* CudaTrainDevice::alloc(size_t bytes, const std::string& what, size_t* counter) {
  std::string err;
  void* p = cuda::allocate(std::max<size_t>(bytes, 4), &err);
  if (!p) {
    size_t freeB = 0, total = 0;
    std::string e2;
    cuda::memoryInfo(&freeB, &total, &e2);
    throw Error("GPU training: cannot allocate " + std::to_string(bytes >> 20) + " MiB for " +
                what + " (" + std::to_string(freeB >> 20) + " MiB free of " +
                std::to_string(total >> 20) + "; this process holds " +
                std::to_string(current_ >> 20) + " MiB): " + err);
  }
  allocations_[p] = bytes;
  current_ += bytes;
  *counter += bytes;
  peak_ = std::max(peak_, current_ + ctx_->scratchBytes());
  return p;
}

void CudaTrainDevice::release(void* p, size_t* counter) {
  auto it = allocations_.find(p);
  if (it == allocations_.end())
    return;
  std::string err;
  ctx_->check(cuda::synchronize(&err), err, "release");
  current_ -= it->second;
  *counter -= it->second;
  cuda::release(p);
  allocations_.erase(it);
}

const float* CudaTrainDevice::weight(const cpu::MatrixView& m, const std::string& what) {
  if (!m.data)
    return nullptr;
  auto it = weights_.find(m.data);
  if (it != weights_.end())
    return it->second;
  const int64_t rows = m.rows, cols = m.cols;
  float* d =
      static_cast<float*>(alloc(size_t(rows * cols) * 4, "weight " + what, &mem_.weightBytes));
  // Widened on the host in blocks of ~64 MiB (rowToF32: exactly the CPU's values).
  const int64_t block = std::max<int64_t>(1, (int64_t(16) << 20) / std::max<int64_t>(cols, 1));
  std::vector<float> host(static_cast<size_t>(std::min(block, rows) * cols));
  std::string err;
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t n = std::min(block, rows - r0);
    pool_.parallelFor(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        m.rowToF32(r0 + r, host.data() + r * cols);
    });
    ctx_->check(cuda::toDevice(d + r0 * cols, host.data(), size_t(n * cols) * 4, &err), err,
                ("upload of " + what).c_str());
  }
  weights_[m.data] = d;
  return d;
}

// The device address of a host pointer into an adapter's A, B (grad: dA, dB) vectors.
float* CudaTrainDevice::devicePtr(const float* host, bool grad, const std::string& what) {
  for (size_t i = 0; i < adapters_.size(); ++i) {
    AdapterState& a = adapters_[i];
    DevAdapter& d = devAdapters_[i];
    const std::vector<float>* vs[2] = {grad ? &a.dA : &a.A, grad ? &a.dB : &a.B};
    for (int k = 0; k < 2; ++k) {
      const std::vector<float>& v = *vs[k];
      if (v.empty() || host < v.data() || host >= v.data() + v.size())
        continue;
      if (!d.used) {
        d.used = true;
        d.A = static_cast<float*>(alloc(a.A.size() * 4, "adapter " + a.name, &mem_.adapterBytes));
        d.B = static_cast<float*>(alloc(a.B.size() * 4, "adapter " + a.name, &mem_.adapterBytes));
        d.dA = static_cast<float*>(alloc(a.dA.size() * 4, "adapter " + a.name, &mem_.adapterBytes));
        d.dB = static_cast<float*>(alloc(a.dB.size() * 4, "adapter " + a.name, &mem_.adapterBytes));
      }
      float* base = k == 0 ? (grad ? d.dA : d.A) : (grad ? d.dB : d.B);
      return base + (host - v.data());
    }
  }
  throw Error("GPU training: " + what + ": adapter memory not found in the adapter set");
}

const cg::DevLora* CudaTrainDevice::lora(const cpu::grad::Lora* l, const std::string& what) {
  if (!l || !l->A || !l->B || l->r <= 0)
    return nullptr;
  cg::DevLora d;
  d.A = devicePtr(l->A, false, what);
  d.B = devicePtr(l->B, false, what);
  d.r = l->r;
  d.scale = l->scale;
  d.dA = l->dA ? devicePtr(l->dA, true, what) : nullptr;
  d.dB = l->dB ? devicePtr(l->dB, true, what) : nullptr;
  return &loras_.emplace_back(d);
}

cg::DevProjection CudaTrainDevice::projection(const cpu::grad::Projection& p,
                                              const std::string& what) {
  cg::DevProjection d;
  if (!p.w.data)
    return d;
  d.w = weight(p.w, what);
  d.bias = weight(p.bias, what + " bias");
  d.out = p.w.rows;
  d.in = p.w.cols;
  if (p.bias.data && p.bias.rows * p.bias.cols != d.out)
    throw Error("GPU training: " + what + ": bias of " + std::to_string(p.bias.rows * p.bias.cols) +
                " values for " + std::to_string(d.out) + " outputs");
  d.lora = lora(p.lora, what);
  return d;
}

cg::DevRope CudaTrainDevice::rope(const cpu::RopeParams& r, const std::string& what) {
  cg::DevRope d;
  d.dim = r.dim;
  d.attentionFactor = float(r.attentionFactor);
  d.interleaved = r.interleaved;
  std::vector<float> inv = cpu::ropeInvFreq(r);
  float* p = static_cast<float*>(
      alloc(std::max<size_t>(inv.size(), 1) * 4, what + " rope", &mem_.weightBytes));
  std::string err;
  if (!inv.empty())
    ctx_->check(cuda::toDevice(p, inv.data(), inv.size() * 4, &err), err, "rope upload");
  d.invFreq = p;
  return d;
}

void CudaTrainDevice::prepare(const PreparedStep& p) {
  GpuStep g;
  const std::string& n = p.name;
  switch (forwardKind(p.step->op())) {
  case OpKind::Embedding:
  case OpKind::LmHead:
  case OpKind::CrossEntropyLoss:
  case OpKind::RmsNorm:
    g.w = weight(p.w, n);
    g.wRows = p.w.rows;
    g.wCols = p.w.cols;
    g.eps = float(p.eps);
    break;
  case OpKind::Linear:
    g.proj = projection(p.proj, n);
    break;
  case OpKind::Attention: {
    const cpu::grad::AttentionParams& a = p.attnP;
    g.attn.numHeads = a.numHeads;
    g.attn.numKvHeads = a.numKvHeads;
    g.attn.headDim = a.headDim;
    g.attn.scale = float(a.scale);
    g.attn.rope = rope(a.rope, n);
    g.attn.normEps = float(a.normEps);
    g.attn.q = projection(p.attnW.q, n + " q_proj");
    g.attn.k = projection(p.attnW.k, n + " k_proj");
    g.attn.v = projection(p.attnW.v, n + " v_proj");
    g.attn.o = projection(p.attnW.o, n + " o_proj");
    g.attn.qNorm = weight(p.attnW.qNorm, n + " q_norm");
    g.attn.kNorm = weight(p.attnW.kNorm, n + " k_norm");
    if (a.numHeads <= 0 || a.numKvHeads <= 0 || a.numHeads % a.numKvHeads ||
        a.rope.dim > a.headDim || g.attn.q.out != int64_t(a.numHeads) * a.headDim)
      throw Error("GPU training: step '" + n + "': attention heads do not fit its weights");
    break;
  }
  case OpKind::MlaAttention: {
    const cpu::grad::MlaParams& a = p.mlaP;
    g.mla.numHeads = a.numHeads;
    g.mla.qLoraRank = a.qLoraRank;
    g.mla.kvLoraRank = a.kvLoraRank;
    g.mla.qkNopeHeadDim = a.qkNopeHeadDim;
    g.mla.qkRopeHeadDim = a.qkRopeHeadDim;
    g.mla.vHeadDim = a.vHeadDim;
    g.mla.scale = float(a.scale);
    g.mla.rope = rope(a.rope, n);
    g.mla.normEps = float(a.normEps);
    g.mla.q = projection(p.mlaW.q, n + " q_proj");
    g.mla.qA = projection(p.mlaW.qA, n + " q_a_proj");
    g.mla.qANorm = weight(p.mlaW.qANorm, n + " q_a_layernorm");
    g.mla.qB = projection(p.mlaW.qB, n + " q_b_proj");
    g.mla.kvA = projection(p.mlaW.kvA, n + " kv_a_proj_with_mqa");
    g.mla.kvANorm = weight(p.mlaW.kvANorm, n + " kv_a_layernorm");
    g.mla.kvB = projection(p.mlaW.kvB, n + " kv_b_proj");
    g.mla.o = projection(p.mlaW.o, n + " o_proj");
    const int64_t qk = a.qkNopeHeadDim + a.qkRopeHeadDim;
    const bool qOk = a.qLoraRank > 0 ? g.mla.qB.out == a.numHeads * qk && g.mla.qANorm
                                     : g.mla.q.out == a.numHeads * qk;
    if (!qOk || !g.mla.kvANorm || g.mla.kvA.out != a.kvLoraRank + a.qkRopeHeadDim ||
        g.mla.kvB.out != int64_t(a.numHeads) * (a.qkNopeHeadDim + a.vHeadDim) ||
        a.rope.dim != a.qkRopeHeadDim)
      throw Error("GPU training: step '" + n + "': MLA dimensions do not fit its weights");
    break;
  }
  case OpKind::Mlp:
    g.mlp = {projection(p.mlp.gate, n + " gate_proj"), projection(p.mlp.up, n + " up_proj"),
             projection(p.mlp.down, n + " down_proj")};
    break;
  case OpKind::Add:
  case OpKind::Tap:
    break;
  default:
    throw Error(plan_.origin() + ": train_step step '" + n + "' runs " +
                plan::opSignature(p.step->op())->name + ", which kt-rt train cannot run on a GPU");
  }
  steps_[&p] = g;
}

void CudaTrainDevice::growBuf(Buf& b, int64_t floats) {
  if (floats <= b.cap)
    return;
  if (b.p)
    release(b.p, &mem_.activationBytes);
  b.p = nullptr;
  b.cap = 0;
  b.p = static_cast<float*>(alloc(size_t(floats) * 4, "activations", &mem_.activationBytes));
  b.cap = floats;
}

void CudaTrainDevice::beginRun(const TrainBatch& batch, bool train, size_t numBuffers) {
  if (bufs_.size() < numBuffers)
    bufs_.resize(numBuffers);
  for (Buf& b : bufs_) {
    b.dev = false;
    b.host = true;
  }
  std::string err;
  const int64_t T = int64_t(batch.ids.size());
  if (T > idsCap_) {
    if (ids_)
      release(ids_, &mem_.activationBytes);
    ids_ = static_cast<int32_t*>(alloc(size_t(T) * 4, "token ids", &mem_.activationBytes));
    idsCap_ = T;
  }
  ctx_->check(cuda::toDevice(ids_, batch.ids.data(), size_t(T) * 4, &err), err, "ids upload");
  // The adapters as the optimizer left them; gradients of this micro-batch start at zero here and
  // are added into the host's at endRun.
  for (size_t i = 0; i < adapters_.size(); ++i) {
    DevAdapter& d = devAdapters_[i];
    if (!d.used)
      continue;
    const AdapterState& a = adapters_[i];
    ctx_->check(cuda::toDevice(d.A, a.A.data(), a.A.size() * 4, &err), err, "adapter upload");
    ctx_->check(cuda::toDevice(d.B, a.B.data(), a.B.size() * 4, &err), err, "adapter upload");
    if (train) {
      ctx_->check(cuda::fillZero(d.dA, a.dA.size() * 4, &err), err, "adapter gradient zero");
      ctx_->check(cuda::fillZero(d.dB, a.dB.size() * 4, &err), err, "adapter gradient zero");
    }
  }
}

void CudaTrainDevice::endRun(bool train) {
  if (!train)
    return;
  std::string err;
  std::vector<float> tmp;
  for (size_t i = 0; i < adapters_.size(); ++i) {
    DevAdapter& d = devAdapters_[i];
    if (!d.used)
      continue;
    AdapterState& a = adapters_[i];
    for (int k = 0; k < 2; ++k) {
      std::vector<float>& g = k ? a.dB : a.dA;
      tmp.resize(g.size());
      ctx_->check(cuda::toHost(tmp.data(), k ? d.dB : d.dA, g.size() * 4, &err), err,
                  "adapter gradient download");
      for (size_t j = 0; j < g.size(); ++j)
        g[j] += tmp[j];
    }
  }
}

float* CudaTrainDevice::staging(size_t bytes) {
  if (bytes <= pinnedBytes_)
    return pinned_;
  std::string err;
  ctx_->check(cuda::synchronize(&err), err, "staging growth");
  cuda::releasePinned(pinned_);
  pinnedBytes_ = 0;
  pinned_ = static_cast<float*>(cuda::allocatePinned(bytes, &err));
  if (!pinned_)
    throw Error("GPU training: cannot allocate " + std::to_string(bytes >> 20) +
                " MiB of page-locked host memory for the MoE steps' rows: " + err);
  pinnedBytes_ = bytes;
  return pinned_;
}

void CudaTrainDevice::toHost(uint32_t index, std::vector<Activation>& buffers) {
  if (index >= bufs_.size())
    return;
  Buf& b = bufs_[index];
  if (!b.dev || b.host)
    return;
  Activation& a = buffers[index];
  a.f.resize(size_t(a.rows * a.cols));
  const size_t bytes = a.f.size() * 4;
  float* st = staging(bytes);
  std::string err;
  ctx_->check(cuda::toHostAsync(st, b.p, bytes, &err) && cuda::synchronizeStream(&err), err,
              "activation download");
  std::copy(st, st + a.f.size(), a.f.begin());
  b.host = true;
}

float* CudaTrainDevice::input(const PreparedStep& p, std::vector<Activation>& buffers, int i,
                              int64_t T, int64_t cols, const char* what) {
  const uint32_t index = p.step->inputs()->Get(uint32_t(i));
  Activation& a = buffers[index];
  Buf& b = bufs_[index];
  if (a.rows != T || (cols > 0 && a.cols != cols) || (!b.dev && int64_t(a.f.size()) != T * a.cols))
    throw Error(plan_.origin() + ": train_step step '" + p.name + "': " + what + " is [" +
                std::to_string(a.rows) + ", " + std::to_string(a.cols) + "], expected [" +
                std::to_string(T) + ", " + (cols > 0 ? std::to_string(cols) : "*") + "]");
  if (!b.dev) { // produced on the host (an MoE step): upload through the pinned staging
    growBuf(b, T * a.cols);
    const size_t bytes = a.f.size() * 4;
    float* st = staging(bytes);
    std::copy(a.f.begin(), a.f.end(), st);
    std::string err;
    // Waits for the copy: the staging is reused by the next transfer.
    ctx_->check(cuda::toDeviceAsync(b.p, st, bytes, &err) && cuda::synchronizeStream(&err), err,
                "activation upload");
    b.dev = true;
  }
  return b.p;
}

float* CudaTrainDevice::output(const PreparedStep& p, std::vector<Activation>& buffers, int i,
                               int64_t T, int64_t cols) {
  const int nout = p.step->outputs() ? int(p.step->outputs()->size()) : 0;
  if (i >= nout) { // pruned: computed, then dropped
    growBuf(pruned_, T * cols);
    return pruned_.p;
  }
  const uint32_t index = p.step->outputs()->Get(uint32_t(i));
  Activation& a = buffers[index];
  a.rows = T;
  a.cols = cols;
  std::vector<float>().swap(a.f); // stale while the device holds the value
  for (uint32_t k = 0; k < p.step->inputs()->size(); ++k)
    if (p.step->inputs()->Get(k) == index) { // in place: compute into the spare, swap after
      growBuf(spare_, T * cols);
      std::swap(spare_, bufs_[index]);
      // The input's data now sits in spare_; the op reads it through the pointer taken before.
      bufs_[index].dev = true;
      bufs_[index].host = false;
      return bufs_[index].p;
    }
  Buf& b = bufs_[index];
  growBuf(b, T * cols);
  b.dev = true;
  b.host = false;
  return b.p;
}

void CudaTrainDevice::run(const PreparedStep& p, const TrainBatch& batch, int64_t normalizer,
                          bool forwardOnly, std::vector<Activation>& buffers, LossOut* loss,
                          std::vector<float>* logits) {
  const GpuStep& g = steps_.at(&p);
  const plan::Step& s = *p.step;
  const OpKind op = s.op();
  const int64_t B = batch.batch, L = batch.seqLen, T = B * L;
  const int nout = s.outputs() ? int(s.outputs()->size()) : 0;
  cg::Context& c = *ctx_;
  switch (op) {
  case OpKind::Embedding: {
    float* y = output(p, buffers, 0, T, g.wCols);
    cuda::embedding(ids_, T, g.w, false, g.wCols, y);
    c.checkLaunch("embedding");
    break;
  }
  case OpKind::RmsNorm: {
    const float* x = input(p, buffers, 0, T, g.wCols, "input");
    cg::rmsNormForward(c, x, T, g.wCols, g.w, g.eps, output(p, buffers, 0, T, g.wCols));
    break;
  }
  case OpKind::RmsNormGrad: {
    const float* x = input(p, buffers, 0, T, g.wCols, "input");
    const float* dy = input(p, buffers, 1, T, g.wCols, "upstream gradient");
    cg::rmsNormBackward(c, x, T, g.wCols, g.w, g.eps, dy, output(p, buffers, 0, T, g.wCols), false);
    break;
  }
  case OpKind::Linear: {
    const float* x = input(p, buffers, 0, T, g.proj.in, "input");
    cg::linearForward(c, g.proj, x, T, output(p, buffers, 0, T, g.proj.out));
    break;
  }
  case OpKind::LinearGrad: {
    const float* x = input(p, buffers, 0, T, g.proj.in, "input");
    const float* dy = input(p, buffers, 1, T, g.proj.out, "upstream gradient");
    cg::linearBackward(c, g.proj, x, T, dy,
                       nout > 0 ? output(p, buffers, 0, T, g.proj.in) : nullptr, false);
    break;
  }
  case OpKind::Attention:
  case OpKind::AttentionGrad:
  case OpKind::MlaAttention:
  case OpKind::MlaAttentionGrad: {
    const bool mla = op == OpKind::MlaAttention || op == OpKind::MlaAttentionGrad;
    const bool back = op == OpKind::AttentionGrad || op == OpKind::MlaAttentionGrad;
    const int64_t H = mla ? g.mla.o.out : g.attn.o.out;
    const int64_t in = mla ? g.mla.kvA.in : g.attn.q.in;
    const float* x = input(p, buffers, 0, T, in, "input");
    if (!back) {
      float* y = output(p, buffers, 0, T, H);
      if (mla)
        cg::mlaForward(c, g.mla, x, B, L, y);
      else
        cg::gqaForward(c, g.attn, x, B, L, y);
    } else {
      const float* dy = input(p, buffers, 2, T, H, "upstream gradient");
      float* dx = output(p, buffers, 0, T, in);
      if (mla)
        cg::mlaBackward(c, g.mla, x, B, L, dy, dx);
      else
        cg::gqaBackward(c, g.attn, x, B, L, dy, dx);
    }
    break;
  }
  case OpKind::Mlp:
  case OpKind::MlpGrad: {
    const int64_t H = g.mlp.down.out;
    const float* x = input(p, buffers, 0, T, g.mlp.gate.in, "input");
    if (op == OpKind::Mlp) {
      cg::mlpForward(c, g.mlp, x, T, output(p, buffers, 0, T, H));
    } else {
      const float* dy = input(p, buffers, 1, T, H, "upstream gradient");
      cg::mlpBackward(c, g.mlp, x, T, dy, output(p, buffers, 0, T, g.mlp.gate.in), false);
    }
    break;
  }
  case OpKind::Add: {
    const float* a = input(p, buffers, 0, T, 0, "first operand");
    const int64_t cols = buffers[s.inputs()->Get(0)].cols;
    const float* b2 = input(p, buffers, 1, T, cols, "second operand");
    cuda::add(a, b2, output(p, buffers, 0, T, cols), T * cols);
    c.checkLaunch("add");
    break;
  }
  case OpKind::Tap: {
    const float* x = input(p, buffers, 0, T, 0, "input");
    const int64_t cols = buffers[s.inputs()->Get(0)].cols;
    cg::copyRows(output(p, buffers, 0, T, cols), cols, x, cols, T, cols, 1, false);
    c.checkLaunch("tap");
    break;
  }
  case OpKind::LmHead: {
    const float* x = input(p, buffers, 0, T, g.wCols, "input");
    c.gemm("lm_head", false, true, T, g.wRows, g.wCols, 1.f, x, g.wCols, g.w, g.wCols, 0.f,
           output(p, buffers, 0, T, g.wRows), g.wRows);
    break;
  }
  case OpKind::CrossEntropyLoss: {
    const float* x = input(p, buffers, 0, T, g.wCols, "input");
    if (forwardOnly) {
      float* l = c.scratch(cg::kOpSlots, T * g.wRows);
      c.gemm("lm_head logits", false, true, T, g.wRows, g.wCols, 1.f, x, g.wCols, g.w, g.wCols, 0.f,
             l, g.wRows);
      logits->resize(static_cast<size_t>(T * g.wRows));
      std::string err;
      c.check(cuda::toHost(logits->data(), l, logits->size() * 4, &err), err, "logits download");
      loss->done = true;
      return;
    }
    float* dx = output(p, buffers, 0, T, g.wCols);
    cg::LossResult r =
        cg::lmHeadLoss(c, g.w, g.wRows, g.wCols, x, B, L, batch.labels.data(), dx, normalizer);
    loss->sum = r.loss * double(normalizer);
    loss->count = r.count;
    if (nout > 1) { // [CE sum, count] on the host
      const uint32_t li = s.outputs()->Get(1);
      Activation& l = buffers[li];
      l.resize(1, 2);
      l.f[0] = float(loss->sum);
      l.f[1] = float(r.count);
      hostWrote(li);
    }
    break;
  }
  default:
    throw Error(plan_.origin() + ": train_step step '" + p.name + "' cannot run on a GPU");
  }
}

} // namespace

std::unique_ptr<TrainDevice> makeCudaTrainDevice(const LoadedPlan& plan, AdapterSet& adapters,
                                                 ThreadPool& pool, const std::string& where) {
  std::string why;
  std::vector<cuda::GpuInfo> gpus = cuda::listGpus(&why);
  if (gpus.empty())
    throw Error(plan.origin() + ": " + where +
                "no GPU was found: " + (why.empty() ? "CUDA reports no device" : why));
  std::string err;
  if (!cuda::setDevice(0, &err))
    throw Error(plan.origin() + ": " + where + "GPU 0 cannot be used: " + err);
  std::string gpuName = "gpu:0";
  for (const plan::Device* d : *plan.root().devices())
    if (d->kind() == plan::DeviceKind::GPU) {
      gpuName = d->name()->str();
      break;
    }
  return std::make_unique<CudaTrainDevice>(plan, adapters, pool, gpus[0], gpuName);
}

} // namespace kt::train
