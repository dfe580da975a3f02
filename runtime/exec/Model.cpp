#include "runtime/exec/Model.h"

#ifdef KT_HAVE_CUDA
#include "runtime/exec/cuda/CudaBackend.h"
#endif

#include "runtime/exec/cpu/NumaPlacement.h"

#include <chrono>

namespace kt {

Model::Model(const std::string& planPath, int threads, const std::string& numa)
    : plan_(LoadedPlan::fromFile(planPath)), pool_(makeThreadPool(threads, numa)) {
  auto t0 = std::chrono::steady_clock::now();
  weights_ = std::make_unique<WeightStore>(plan_);
  bindExpertsToNodes(plan_, *weights_, pool_->nodes()); // no-op on one node
#ifdef KT_HAVE_CUDA
  // Uploads the GPU steps' weights; throws "plan needs a GPU" when none is usable. Without CUDA
  // the executor refuses GPU steps with the same words.
  backend_ = cudaops::makeCudaBackendIfNeeded(plan_, *weights_, *pool_);
#endif
  executor_ = std::make_unique<Executor>(plan_, *weights_, *pool_, backend_.get());
  loadSeconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace kt
