#pragma once
// Prefill offload (MoeAttrs.prefill_offload_min_tokens / _device; kt-compile --prefill-offload):
// for a prefill of at least the step's threshold, the routed experts the plan keeps on the CPU
// are streamed to the GPU and computed there with the same grouped GEMMs as GPU-resident experts,
// instead of by the CPU's expert kernel. Worth it once the CPU's FLOPs for T tokens exceed the
// time to move the layer's expert bytes over PCIe (the partitioner finds the crossing).
//
// Only experts with at least one token are streamed, one at a time through two slots (a double
// buffer), each holding one expert's gate, up and down in the GPU's weight format (f32, bf16, or
// --gpu-quant int8/int4, converted on the CPU's thread pool by packForGpu, the upload's own
// conversion). Per expert, with slot s = i % 2:
//   host:         wait for free[s] (the GPU finished the expert that last used slot s), then
//                 convert the expert from the WeightStore into the pinned host half of slot s
//   copy stream:  async copy pinned[s] -> device[s]; record copied[s]
//   compute:      wait for copied[s]; gather, gate/up GEMMs, SwiGLU, down GEMM, scatter-add;
//                 record free[s]
// so the host converts expert i+1 while the GPU copies and computes expert i, and the copy of
// expert i+1 (its own stream) overlaps expert i's GEMMs. The weights come from what the
// WeightStore maps: the checkpoint's tensors, or the CPU's packed (--cpu-quant) blobs, which are
// dequantized (as the GPU experts of split layers are at upload), so streaming computes with the
// CPU's weights. The slots are allocated at load for the largest expert of any streaming step
// (the partitioner reserves 2 experts of GPU memory for them) and reported in the backend's
// memory line.
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/exec/cuda/GpuFormat.h"

namespace kt::cudaops {

class ExpertStream {
public:
  // One streamed expert on the GPU: views into a slot (count 1, no split map).
  struct Expert {
    GpuWeight gate, up, down;
  };
  struct Stats {
    int64_t steps = 0, experts = 0; // MoE steps that streamed, experts streamed
    uint64_t bytes = 0;             // copied to the GPU
    double packSeconds = 0;         // host conversion into the pinned slots
    double waitSeconds = 0;         // host waiting for a slot the GPU still used
  };

  // Sizes and allocates the two slots for the largest expert of the plan's streaming MoE steps on
  // plan device `device` (nothing when none streams). Throws kt::Error naming the step or weight
  // when a streamed stack is not [E, rows, cols] or its matrices do not fit together.
  ExpertStream(const LoadedPlan& plan, const WeightStore& weights, uint16_t device,
               GpuFormat format, const std::string& gpuName);
  ~ExpertStream();
  ExpertStream(const ExpertStream&) = delete;
  ExpertStream& operator=(const ExpertStream&) = delete;

  // Whether `step` streams its CPU-held experts when run with `tokens` tokens.
  bool streams(const plan::Step& step, int64_t tokens) const;
  // Converts expert `e` of the running step's gate/up/down stacks into the next slot and queues
  // its copy; the compute stream waits for it. The views stay valid for the work queued on the
  // compute stream until done().
  const Expert& stage(OpContext& c, int64_t e);
  // After queuing the work that reads the last staged expert: the slot is free once it ran.
  void done(const OpContext& c);
  void countStep() { ++stats_.steps; }

  GpuFormat format() const { return format_; }
  uint64_t deviceBytes() const { return slotBytes_ * 2; } // GPU memory of both slots
  const Stats& stats() const { return stats_; }
  void resetStats() { stats_ = {}; }

private:
  struct Slot {
    void* dev = nullptr;  // slotBytes_ of GPU memory
    void* host = nullptr; // slotBytes_ of pinned host memory
    cuda::GpuEvent copied, free;
    Expert view;
  };
  // Byte layout of one expert in a slot: per matrix its data, then its scales (256-aligned).
  struct Layout {
    size_t data[3], scales[3], total;
  };
  Layout layout(int64_t rows[3], int64_t cols[3]) const;
  void check(bool ok, const std::string& what, const std::string& err) const;

  uint16_t device_;
  GpuFormat format_;
  std::string gpuName_;
  void* copyStream_ = nullptr;
  size_t slotBytes_ = 0;
  Slot slots_[2];
  int64_t next_ = 0;       // experts staged so far (slot = next_ % 2)
  Slot* staged_ = nullptr; // the slot stage() filled last
  Stats stats_;
};

} // namespace kt::cudaops
