#pragma once
// Runs an entry point of a plan over a batch: allocates activations, dispatches each step to the
// kernel registered for its op and device, and returns the logits.
#include "runtime/exec/OpContext.h"
#include "runtime/plan/PlanReader.h"

#include <memory>

namespace kt {

class Executor {
public:
  Executor(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool);

  // Runs `entry` ("prefill" or "decode") for `batch`, appending to the KV cache. Returns logits
  // [rows, vocab] for batch.outputRows (or every token). Throws kt::Error on a bad request.
  Activation
  run(const std::string& entry, const Batch& batch, KvCache& kv,
      const std::function<void(const std::string&, const Activation&)>* tapSink = nullptr);

private:
  const LoadedPlan& plan_;
  const WeightStore& weights_;
  ThreadPool& pool_;
  OpRegistry registry_;
};

} // namespace kt
