#pragma once
// The GPU side of TrainExecutor (a small interface, so that kt_train links CUDA only when it is
// built: runtime/train/cuda implements it, TrainExecutor creates it through makeTrainDevice when
// the plan places train_step steps on a GPU). TrainExecutor stays the one entry point: it walks the
// steps in plan order and hands each GPU-placed one to the device, the rest (MoE steps, whose
// experts live in host memory, and CPU-placed steps) to kernels/cpu/grad.
//
// Buffers: the host Activation of every plan buffer always carries rows/cols; its vector is stale
// while the device holds the current value. The executor asks for a buffer on the host before a
// host step reads it (toHost) and reports host writes (hostWrote) so that the next GPU reader
// uploads it.
#include "runtime/exec/OpContext.h"
#include "runtime/train/PreparedStep.h"
#include "runtime/train/TrainData.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kt {
class LoadedPlan;
class ThreadPool;
} // namespace kt

namespace kt::train {

class AdapterSet;

struct TrainDeviceMemory {
  std::string device; // e.g. "NVIDIA H100 80GB HBM3 (gpu:0)"
  size_t weightBytes = 0, adapterBytes = 0, activationBytes = 0, scratchBytes = 0;
  size_t peakBytes = 0; // the most this process held at once (allocations it made)
};

class TrainDevice {
public:
  virtual ~TrainDevice() = default;
  // Called at construction for every step placed on the GPU, in plan order: uploads its weights
  // (once per distinct weight) and resolves its adapters.
  virtual void prepare(const PreparedStep& step) = 0;
  // Start of one micro-batch (or a logits pass): uploads the adapters' current A/B and the ids,
  // zeroes the device gradient accumulators when `train`.
  virtual void beginRun(const TrainBatch& batch, bool train, size_t numBuffers) = 0;
  // Runs one GPU step. For cross_entropy_loss: adds to *loss (train) or writes *logits (forward
  // only) like the CPU path.
  struct LossOut {
    double sum = 0;
    int64_t count = 0;
    bool done = false;
  };
  virtual void run(const PreparedStep& step, const TrainBatch& batch, int64_t normalizer,
                   bool forwardOnly, std::vector<Activation>& buffers, LossOut* loss,
                   std::vector<float>* logits) = 0;
  virtual void toHost(uint32_t buffer, std::vector<Activation>& buffers) = 0;
  virtual void hostWrote(uint32_t buffer) = 0;
  // End of a training micro-batch: downloads dA/dB and adds them into the host gradients.
  virtual void endRun(bool train) = 0;
  // Waits for the GPU (profiling times each step from the host).
  virtual void sync() = 0;
  virtual TrainDeviceMemory memory() const = 0;
};

// Null when no step of `steps` is on a GPU. Throws kt::Error "train_step places step X on gpu:0,
// but no GPU was found: ..." without a usable GPU (or a build without CUDA).
std::unique_ptr<TrainDevice> makeTrainDevice(const LoadedPlan& plan, AdapterSet& adapters,
                                             ThreadPool& pool,
                                             const std::vector<PreparedStep*>& steps);

} // namespace kt::train
