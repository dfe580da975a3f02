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
  // Throws kt::Error naming the plan or weight file at fault.
  Model(const std::string& planPath, int threads);

  const LoadedPlan& plan() const { return plan_; }
  const plan::ModelInfo& info() const { return *plan_.root().model(); }
  Executor& executor() { return *executor_; }
  ThreadPool& pool() { return pool_; }
  const WeightStore& weights() const { return *weights_; }
  double loadSeconds() const { return loadSeconds_; }

private:
  LoadedPlan plan_;
  std::unique_ptr<WeightStore> weights_;
  ThreadPool pool_;
  std::unique_ptr<Executor> executor_;
  double loadSeconds_ = 0;
};

} // namespace kt
