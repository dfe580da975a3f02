// makeTrainDevice: the CUDA side when this build has it (runtime/train/cuda), otherwise a clear
// refusal of GPU-placed train_step steps.
#include "runtime/train/TrainDevice.h"

#include "runtime/plan/PlanReader.h"
#include "runtime/support/Error.h"

#ifdef KT_HAVE_CUDA
#include "runtime/train/cuda/CudaTrainDevice.h"
#endif

namespace kt::train {

std::unique_ptr<TrainDevice> makeTrainDevice(const LoadedPlan& plan, AdapterSet& adapters,
                                             ThreadPool& pool,
                                             const std::vector<PreparedStep*>& steps) {
  if (steps.empty())
    return nullptr;
  const PreparedStep& first = *steps.front();
  const std::string where = "train_step places step '" + first.name + "' on " +
                            plan.root().devices()->Get(first.step->device())->name()->str() +
                            ", but ";
#ifdef KT_HAVE_CUDA
  std::unique_ptr<TrainDevice> d = makeCudaTrainDevice(plan, adapters, pool, where);
  for (const PreparedStep* s : steps)
    d->prepare(*s);
  return d;
#else
  (void)adapters, (void)pool;
  throw Error(plan.origin() + ": " + where +
              "this kt-rt was built without CUDA (rebuild with nvcc on the PATH, or compile the "
              "plan for the CPU)");
#endif
}

} // namespace kt::train
