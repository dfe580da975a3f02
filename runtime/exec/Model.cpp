#include "runtime/exec/Model.h"

#include <chrono>

namespace kt {

Model::Model(const std::string& planPath, int threads)
    : plan_(LoadedPlan::fromFile(planPath)), pool_(threads > 0 ? threads : hardwareThreads()) {
  auto t0 = std::chrono::steady_clock::now();
  weights_ = std::make_unique<WeightStore>(plan_);
  executor_ = std::make_unique<Executor>(plan_, *weights_, pool_);
  loadSeconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace kt
