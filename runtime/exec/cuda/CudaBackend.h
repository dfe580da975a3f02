#pragma once
// The CUDA backend of the executor: owns GPU 0's copy of the weights that GPU steps use (uploaded
// once at load), the activation buffers and the paged KV cache of GPU attention layers
// (GpuKvPool.h) in GPU memory, and moves a buffer between host and GPU when a step's input was
// produced on the other side (hybrid plans: routed experts on the CPU, everything else on the GPU).
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/OpContext.h"
#include "runtime/exec/cuda/GpuKvPool.h"
#include "runtime/plan/PlanReader.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kt::cudaops {

class ExpertStream; // ExpertStream.h: CPU-held experts streamed to the GPU for long prefills

// A weight in GPU memory: f32, or bf16 for the matrices of a bf16 plan, or int8 with one f32
// scale per row (--gpu-quant int8; `scales` set), or int4 with one f16 scale per row and
// 128-column group (--gpu-quant int4; `groupScales` set; layout in kernels/cuda/Int4Format.h).
// Stacked (expert) weights are `count` slices of [rows, cols].
struct GpuWeight {
  void* data = nullptr;
  bool bf16 = false;
  float* scales = nullptr;         // int8 weights: rows * count scales
  uint16_t* groupScales = nullptr; // int4 weights: count * rows * int4Groups(cols) f16 scales
  int64_t count = 1, rows = 0, cols = 0;
  // A split expert layer: the GPU holds only some experts; local[e] is expert e's slice here, or
  // -1 when the CPU runs it. Empty: every slice, in order.
  std::vector<int32_t> local;
  int32_t* localDev = nullptr; // `local` on the GPU (the decode MoE kernels read it); null: all
  bool int8() const { return scales != nullptr; }
  bool int4() const { return groupScales != nullptr; }
  bool holds(int64_t e) const { return local.empty() || local[size_t(e)] >= 0; }
  int64_t at(int64_t e) const { return local.empty() ? e : local[size_t(e)]; }
  // Bytes of one slice's data (int4: packed rows of cuda::int4RowBytes(cols)).
  size_t sliceBytes() const {
    return int4() ? size_t(rows * cuda::int4RowBytes(cols))
                  : size_t(rows * cols) * (int8() ? 1
                                           : bf16 ? 2
                                                  : 4);
  }
  const void* slice(int64_t e) const {
    return static_cast<const char*>(data) + size_t(at(e)) * sliceBytes();
  }
  const float* sliceScales(int64_t e) const { return scales + at(e) * rows; }
  const uint16_t* sliceGroupScales(int64_t e) const {
    return groupScales + at(e) * rows * cuda::int4Groups(cols);
  }
  const float* f32() const { return static_cast<const float*>(data); }
};

// A growable GPU allocation.
struct GpuBuffer {
  void* data = nullptr;
  size_t bytes = 0;
};

class CudaBackend : public DeviceBackend {
public:
  // Throws kt::Error "plan needs a GPU ..." when no GPU is usable, or naming the weight that
  // cannot be placed on it.
  // `pool` (optional) quantizes --gpu-quant int8/int4 weights in parallel while uploading.
  CudaBackend(const LoadedPlan& plan, const WeightStore& weights, ThreadPool* pool = nullptr);
  ~CudaBackend() override;

  bool runs(plan::DeviceKind kind) const override { return kind == plan::DeviceKind::GPU; }
  void registerOps(OpRegistry& registry) override;
  void beginRun(std::vector<Activation>& buffers) override;
  size_t beforeStep(const plan::Step& step, bool onBackend,
                    std::vector<Activation>& buffers) override;
  void toHost(uint32_t index, std::vector<Activation>& buffers) override;
  // Reserves the run's KV pages (prepareKv) and uploads its step parameters, then replays (or
  // captures) a CUDA graph of a decode step when the plan allows it (Graphs.cpp); false: the
  // executor runs the steps.
  bool runEntry(const plan::EntryPoint& ep, const Batch& batch, bool plain,
                std::vector<Activation>& buffers, const std::function<void()>& runSteps) override;
  std::string summary() const override;
  // Told when a KvCache slot resets or its KvCache goes away: the slot's KV pages return.
  std::shared_ptr<KvSlotListener> kvListener() override { return kvListener_; }
  Overlap overlap() const override;
  void resetOverlap() override;
  void addHostStep(double seconds) override {
    overlap_.gpuIdleSeconds += seconds;
    overlap_.cpuSeconds += seconds;
    ++overlap_.hostSteps;
  }
  void timeStep(const std::string& key, bool start) override;
  void deviceTimes(std::map<std::string, double>* seconds) override;
  // A part of the step being timed (kt-rt bench --profile), as "entry/op:part"; no-op otherwise.
  void timePart(const char* part, bool start) {
    if (!timedStep_.empty())
      mark(timedStep_ + ":" + part, start);
  }

  // ---- for the GPU ops (runtime/exec/cuda/*Ops.cpp) ----
  cuda::Blas& blas() { return *blas_; }
  // The uploaded weight in `slot` of the running step; nullptr when the slot is empty or the
  // weight stays on the host (routed experts placed on the CPU).
  const GpuWeight* weight(const OpContext& c, int slot) const;
  // Device pointers of the step's buffers. out() sizes the output to [rows, cols].
  const float* in(OpContext& c, int i);
  const int32_t* inIds(OpContext& c, int i);
  float* out(OpContext& c, int i, int64_t rows, int64_t cols);
  // Scratch space `id` of at least `bytes` (reused by every step; ops use distinct ids).
  void* scratch(int id, size_t bytes);
  float* scratchF(int id, int64_t floats) {
    return static_cast<float*>(scratch(id, size_t(floats) * 4));
  }
  // Page-locked host buffer `id` of at least `bytes` (staging for activations that cross to the
  // CPU and back; reused by every step, so a step must finish its async copies before the next
  // step's host code writes the buffer).
  void* pinned(int id, size_t bytes);
  // A timing event `id`, created on first use.
  const cuda::GpuEvent& event(int id);
  // Overlap accounting of hybrid steps (the moe op adds to it).
  Overlap& overlapStats() { return overlap_; }
  // When the run's last hybrid step queued its CPU result back (unset: none yet in this run);
  // the next hybrid step charges the host time since then to Overlap::hostIssueSeconds.
  std::optional<std::chrono::steady_clock::time_point>& lastHybridEnd() { return lastHybridEnd_; }
  // Prefill offload: the streaming of CPU-held experts (the moe op asks it whether a step
  // streams at its token count; ExpertStream.h). Never null after construction.
  ExpertStream& expertStream() { return *experts_; }
  const ExpertStream& expertStream() const { return *experts_; }
  // The paged KV cache: runEntry reserves every chunk's pages before the steps run, so the ops
  // only look up their slot's page table and their layer's offsets (GpuKvPool.h); nothing
  // allocates inside a step (or a CUDA graph capture).
  const GpuKvPool& kvPool() const { return *kvPool_; }
  cuda::KvPages kvPages(int slot) const { return kvPool_->pages(slot); }
  // Device int32: the first position of the run's chunk `chunk` (batch.chunks[chunk].pos0),
  // uploaded by runEntry before the steps; attention reads it on the GPU so that a captured
  // graph is valid at every position.
  const int32_t* chunkPos0(size_t chunk) const { return stepParams_ + chunk; }
  // The sampled rows `rows` as device ids, uploaded once per distinct list (lm_head's gather).
  const int32_t* rowIds(const std::vector<int64_t>& rows);
  // The step's rope inverse frequencies on the GPU (computed once per step).
  const float* invFreq(const plan::Step& step, const plan::Rope& rope);
  // Throws kt::Error naming the step when the last launch or copy failed.
  void check(const OpContext& c, bool ok, const std::string& err) const;
  void checkLaunch(const OpContext& c) const;

private:
  enum class Where : uint8_t { Nowhere, Host, Gpu, Both };
  // Expert slice e of a stacked weight, or the whole matrix of an unstacked one (host view).
  cpu::MatrixView hostSlice(int32_t id, int64_t e) const;
  // quant: the plan's --gpu-quant scheme for a GEMM matrix (None: the plan's dtype).
  void upload(int32_t id, bool forceF32, plan::QuantScheme quant);
  void uploadInt8(int32_t id, GpuWeight& g, const std::vector<int64_t>& slices,
                  const std::string& what);
  void uploadInt4(int32_t id, GpuWeight& g, const std::vector<int64_t>& slices,
                  const std::string& what);
  void uploadLocal(int32_t id, const std::string& what);
  void ensure(GpuBuffer& b, size_t bytes);
  void toGpu(uint32_t index, std::vector<Activation>& buffers);
  // Pinned staging for an activation move of `bytes` (ActivationMoves.h), or nullptr: direct.
  static constexpr int kMoveStage = 40; // pinned_ id, apart from the MoE op's staging ids
  void* stage(size_t bytes);

  // Reserves the run's KV pages (growing the pool within the budget) and uploads the page table
  // rows that changed; a moved table makes captured graphs stale.
  void prepareKv(const Batch& batch);
  // What the KV pool may still grow into: the plan's budget less what KT holds, or (no budget)
  // the device's free memory less a margin for activations.
  GpuKvPool::Limit kvLimit() const;
  uint64_t activationBytes() const;

  // ---- CUDA graphs (Graphs.cpp) ----
  // One captured decode step per token shape (slots, chunk lengths, sampled rows).
  struct Captured {
    void* exec = nullptr;    // the instantiated graph (null: not captured yet)
    size_t nodes = 0;        // launches it replays
    uint64_t generation = 0; // memoryGeneration() when captured
    int runs = 0;            // eager runs of this shape so far (the first sizes the buffers)
    std::vector<std::pair<uint32_t, std::pair<int64_t, int64_t>>> shapes; // outputs' rows, cols
  };
  // Whether `ep` may be captured: every step on the GPU, no host work inside a step.
  bool capturable(const plan::EntryPoint& ep);
  std::string graphKey(const plan::EntryPoint& ep, const Batch& batch) const;
  // Bumped whenever a device buffer that a captured graph may point to is freed.
  uint64_t memoryGeneration() const { return generation_ + (blas_ ? blas_->reallocations() : 0); }
  void uploadStepParams(const Batch& batch);
  void uploadInputs(const plan::EntryPoint& ep, std::vector<Activation>& buffers);
  bool capture(Captured& g, const plan::EntryPoint& ep, std::vector<Activation>& buffers,
               const std::function<void()>& runSteps);
  void replay(Captured& g, const plan::EntryPoint& ep, std::vector<Activation>& buffers);
  void disableGraphs(const std::string& why);

  const LoadedPlan& plan_;
  const WeightStore& weights_;
  ThreadPool* pool_ = nullptr;
  std::string gpuName_;
  std::unique_ptr<cuda::Blas> blas_;
  std::vector<GpuWeight> gpuWeights_;           // by plan weight index (data null: not uploaded)
  std::map<int32_t, std::vector<char>> subset_; // split expert stacks: which experts go up
  uint64_t weightBytes_ = 0;
  uint64_t budget_ = 0; // the plan's memory budget for this GPU (0: none)
  std::vector<GpuBuffer> buffers_;
  std::vector<Where> where_;
  std::map<int, GpuBuffer> scratch_;
  std::map<int, GpuBuffer> pinned_; // host memory
  std::map<int, cuda::GpuEvent> events_;
  // Profiling: event pairs per timed step or part, reused from run to run (Executor's timeStep).
  struct Timer {
    std::string key;
    cuda::GpuEvent start, end;
  };
  void mark(const std::string& key, bool start);
  std::vector<Timer> timers_;
  size_t timersUsed_ = 0;
  std::vector<size_t> openTimers_;
  std::string timedStep_;
  Overlap overlap_;
  std::optional<std::chrono::steady_clock::time_point> lastHybridEnd_;
  std::unique_ptr<ExpertStream> experts_;
  std::unique_ptr<GpuKvPool> kvPool_;
  std::shared_ptr<KvSlotListener> kvListener_; // releases slots in kvPool_ while it lives
  std::map<const plan::Step*, GpuBuffer> invFreq_;
  std::map<std::vector<int64_t>, GpuBuffer> rowIds_;
  void* stream_ = nullptr; // the backend's own non-blocking stream (every launch goes there)
  GpuBuffer stepParamsBuf_;
  int32_t* stepParams_ = nullptr;
  // CUDA graphs: KT_CUDA_GRAPHS=0 turns them off; a failed capture turns them off for good.
  bool graphsOn_ = true;
  bool capturing_ = false;
  uint64_t generation_ = 0;
  std::map<std::string, Captured> graphs_;
  std::map<const plan::EntryPoint*, bool> capturable_;
  unsigned long long launchBase_ = 0; // cuda::launchCount() at resetOverlap()
  int64_t graphReplays_ = 0, graphNodes_ = 0;
};

// A CudaBackend when some step of the plan runs on a GPU, else null.
std::unique_ptr<DeviceBackend> makeCudaBackendIfNeeded(const LoadedPlan& plan,
                                                       const WeightStore& weights, ThreadPool&);

// The GPU ops (one function per op kind), registered by CudaBackend::registerOps.
void embedding(OpContext& c);
void rmsNorm(OpContext& c);
void linear(OpContext& c);
void rope(OpContext& c);
void swiglu(OpContext& c);
void add(OpContext& c);
void mlp(OpContext& c);
void lmHead(OpContext& c);
void tap(OpContext& c);
void attention(OpContext& c);
void mlaAttention(OpContext& c);
void moe(OpContext& c);

// Helpers shared by the op files.
CudaBackend& backendOf(OpContext& c);
// y[T, w.rows] = x[T, w.cols] . W^T for slice `e` of w (plus the f32 bias when given).
void linearInto(OpContext& c, const float* x, int64_t tokens, const GpuWeight& w, int64_t e,
                float* y, const GpuWeight* bias = nullptr);

} // namespace kt::cudaops
