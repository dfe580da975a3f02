#pragma once
// Prefill offload (MoeAttrs.prefill_offload_min_tokens / _device; kt-compile --prefill-offload):
// for a prefill of at least the step's threshold, the routed experts the plan keeps on the CPU
// are streamed to the GPU and computed there with the same grouped GEMMs as GPU-resident experts,
// instead of by the CPU's expert kernel. Worth it once the CPU's FLOPs for T tokens exceed the
// time to move the layer's expert bytes over PCIe (the partitioner finds the crossing).
//
// Only experts with at least one token are streamed, one at a time through two slots (a double
// buffer). A matrix the CPU holds packed (--cpu-quant int8/int4/bf16 panels) travels as its packed
// bytes: the host copies the blob into the pinned slot (a parallel memcpy) and the GPU widens it
// (kernels/cuda/PackedWiden.h: the CPU's dequantized values, f32 for f32 plans, bf16 otherwise).
// A checkpoint (unpacked) matrix is converted on the host into the GPU's weight format (f32, bf16,
// or --gpu-quant int8/int4) by packForGpu, the upload's own conversion. Per expert, with slot
// s = i % 2:
//   host:         wait for free[s] (the GPU finished the expert that last used slot s), then
//                 copy/convert the expert from the WeightStore into the pinned host half of slot s
//   copy stream:  async copy pinned[s] -> device[s]; record copied[s]
//   compute:      wait for copied[s]; widen the packed matrices (device[s]'s packed part into its
//                 widened part); gather, gate/up GEMMs, SwiGLU, down GEMM, scatter-add;
//                 record free[s]
// so the host converts expert i+1 while the GPU copies and computes expert i, and the copy of
// expert i+1 (its own stream) overlaps expert i's GEMMs. The weights come from what the
// WeightStore maps: the checkpoint's tensors, or the CPU's packed (--cpu-quant) blobs, which are
// dequantized (as the GPU experts of split layers are at upload), so streaming computes with the
// CPU's weights. The slots are allocated at load for the largest expert of any streaming step:
// pinned host halves hold what is copied (packed blobs, or converted matrices), device halves that
// plus the widened matrices (the partitioner reserves 2 such experts of GPU memory) and are
// reported in the backend's memory line.
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
    double packSeconds = 0;         // host copy/conversion into the pinned slots
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
  // Copies (packed) or converts expert `e` of the running step's gate/up/down stacks into the
  // next slot and queues its copy; the compute stream waits for it and widens the packed
  // matrices. The views stay valid for the work queued on the compute stream until done().
  const Expert& stage(OpContext& c, int64_t e);
  // After queuing the work that reads the last staged expert: the slot is free once it ran.
  void done(const OpContext& c);
  void countStep() { ++stats_.steps; }

  GpuFormat format() const { return format_; }
  uint64_t deviceBytes() const { return devBytes_ * 2; } // GPU memory of both slots
  uint64_t hostBytes() const { return hostBytes_ * 2; }  // pinned host memory of both slots
  const Stats& stats() const { return stats_; }
  void resetStats() { stats_ = {}; }

private:
  struct Slot {
    void* dev = nullptr;  // devBytes_ of GPU memory
    void* host = nullptr; // hostBytes_ of pinned host memory
    cuda::GpuEvent copied, free;
    Expert view;
  };
  // Byte layout of one expert in a slot (offsets 256-aligned). The copied part, the same in both
  // halves: per matrix its packed blob (packed[m]: at blob[m]), or its data and scales in the
  // GPU's format. Then, device half only, the packed matrices widened (at data[m]).
  struct Layout {
    bool packed[3];
    size_t blob[3], blobBytes[3], data[3], scales[3];
    size_t copied, total;
  };
  Layout layout(const cpu::MatrixView v[3]) const;
  void check(bool ok, const std::string& what, const std::string& err) const;

  uint16_t device_;
  GpuFormat format_;
  std::string gpuName_;
  void* copyStream_ = nullptr;
  size_t hostBytes_ = 0, devBytes_ = 0; // per slot
  Slot slots_[2];
  int64_t next_ = 0;       // experts staged so far (slot = next_ % 2)
  Slot* staged_ = nullptr; // the slot stage() filled last
  Stats stats_;
};

} // namespace kt::cudaops
