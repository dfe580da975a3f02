#pragma once
// Runs a plan's train_step entry point: the forward steps (inference op kinds applying
// Step.adapters, over a [batch, seqLen] token batch without a KV cache), cross_entropy_loss, the
// backward steps (*_grad, add for fan-in) that accumulate the adapters' gradients, in plan order.
// The adamw step is not run here: the Trainer applies one update after the micro-batches of an
// optimizer step (gradient accumulation), with the plan's AdamWAttrs as defaults.
//
// Every step's weights, adapters and parameters are resolved once at construction (the plan is
// validated by PlanReader; what that cannot see, e.g. an adapter target naming a weight that is not
// in the step, is a kt::Error naming the step).
//
// Placement: steps the plan puts on a GPU run there (TrainDevice.h, runtime/train/cuda), except the
// MoE steps (moe, moe_grad), which run wholly on the CPU next to the expert weights (router, shared
// and routed experts); everything else runs on the CPU through kernels/cpu/grad.
#include "kernels/cpu/grad/Grad.h"
#include "runtime/exec/OpContext.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/train/AdapterSet.h"
#include "runtime/train/Optimizer.h"
#include "runtime/train/PreparedStep.h"
#include "runtime/train/TrainData.h"
#include "runtime/train/TrainDevice.h"

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kt::train {

struct LossSum {
  double sum = 0;    // cross-entropy summed over predicted positions
  int64_t count = 0; // predicted positions
};

class TrainExecutor {
public:
  TrainExecutor(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
                AdapterSet& adapters);
  ~TrainExecutor();

  // Forward + backward of one micro-batch: adds d(CE sum / normalizer)/d(adapter) to the adapters'
  // gradients (normalizer: predicted positions of the whole optimizer step).
  LossSum accumulate(const TrainBatch& batch, int64_t normalizer);
  // Forward only, through the input of cross_entropy_loss: logits [batch*seqLen, vocab] of the
  // model with the current adapters.
  std::vector<float> logits(const TrainBatch& batch);
  // The plan's optimizer settings (AdamWAttrs of its adamw step, or defaults).
  AdamWConfig planOptimizer() const { return planOptimizer_; }

  // Per-op-kind wall time (kt-rt train --profile): where a training step spends its time, summed
  // over every step of that kind ("moe", "moe_grad", ...) since profiling was enabled.
  struct OpTime {
    double seconds = 0;
    int64_t calls = 0;
  };
  void enableProfile(bool on) { profiling_ = on; }
  const std::map<std::string, OpTime>& profile() const { return profile_; }

  // Where the steps run, e.g. "cpu: 12 steps (moe, moe_grad, ...); gpu:0: 40 steps".
  std::string placement() const;
  // The GPU side's memory, or null for a plan that runs wholly on the CPU.
  const TrainDevice* device() const { return device_.get(); }

private:
  using Prepared = PreparedStep;
  void runSteps(const TrainBatch& batch, int64_t normalizer, bool forwardOnly,
                std::vector<Activation>& buffers, LossSum* loss, std::vector<float>* logits);
  Prepared prepare(const plan::Step& s);
  const cpu::grad::Lora* lora(const plan::Step& s, int slot, int expert);

  const LoadedPlan& plan_;
  const WeightStore& weights_;
  ThreadPool& pool_;
  AdapterSet& adapters_;
  const plan::EntryPoint* entry_ = nullptr;
  std::vector<std::unique_ptr<Prepared>> steps_;
  std::deque<cpu::grad::Lora> loras_; // stable addresses for the Projections
  AdamWConfig planOptimizer_;
  bool profiling_ = false;
  std::map<std::string, OpTime> profile_;
  std::unique_ptr<TrainDevice> device_;
};

} // namespace kt::train
