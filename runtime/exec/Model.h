#pragma once
// A loaded plan ready to run: the verified plan, its mapped weights, a thread pool and the
// executor.
#include "runtime/exec/Executor.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/support/ThreadPool.h"

#include <memory>

namespace kt {

class Model {
public:
  // Throws kt::Error naming the plan or weight file at fault. `numa`: auto | off | N (see
  // makeThreadPool); with several nodes each MoE layer's experts are split over the nodes and
  // their weights bound to their node's memory.
  Model(const std::string& planPath, int threads, const std::string& numa = "auto");

  const LoadedPlan& plan() const { return plan_; }
  const plan::ModelInfo& info() const { return *plan_.root().model(); }
  Executor& executor() { return *executor_; }
  ThreadPool& pool() { return *pool_; }
  const WeightStore& weights() const { return *weights_; }
  double loadSeconds() const { return loadSeconds_; }
  // The GPU backend when the plan places steps on a GPU (null for CPU-only plans).
  const DeviceBackend* backend() const { return backend_.get(); }
  DeviceBackend* backend() { return backend_.get(); }

private:
  LoadedPlan plan_;
  std::unique_ptr<WeightStore> weights_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<DeviceBackend> backend_;
  std::unique_ptr<Executor> executor_;
  double loadSeconds_ = 0;
};

} // namespace kt
