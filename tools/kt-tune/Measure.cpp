#include "tools/kt-tune/Measure.h"

#include "compiler/plan/PlanWriter.h"
#include "runtime/support/Error.h"

#ifdef KT_HAVE_CUDA
#include "kernels/cuda/CudaKernels.h"
#endif

namespace kt::tune {

int visibleGpus(std::string* why) {
#ifdef KT_HAVE_CUDA
  return int(cuda::listGpus(why).size());
#else
  *why = "this kt-tune was built without CUDA";
  return 0;
#endif
}

compiler::CompileOptions candidateOptions(const compiler::CompileOptions& base, const Candidate& c,
                                          const std::string& statsPath) {
  compiler::CompileOptions o = base;
  o.expertsOnGpu = c.expertsText();
  o.prefillOffload = c.offloadText();
  o.expertStats = c.measuredStats ? statsPath : "";
  o.explain = false;
  o.explainJsonPath.clear();
  return o;
}

std::string candidateFlags(const compiler::CompileOptions& o) {
  std::string s = "--hw " + o.hwProfile;
  if (!o.gpuMem.empty())
    s += " --gpu-mem " + o.gpuMem;
  if (!o.cpuMem.empty())
    s += " --cpu-mem " + o.cpuMem;
  if (o.dtype != "f32")
    s += " --dtype " + o.dtype;
  if (!o.cpuQuant.empty())
    s += " --cpu-quant " + o.cpuQuant;
  s += " --experts-on-gpu " + o.expertsOnGpu + " --prefill-offload " + o.prefillOffload;
  if (!o.expertStats.empty())
    s += " --expert-stats " + o.expertStats;
  s += " --prompt-len " + std::to_string(o.promptLen);
  if (o.decodeBatch != 1)
    s += " --decode-batch " + std::to_string(o.decodeBatch);
  return s;
}

BenchResult measurePlacement(const hf::ModelDesc& model, const compiler::CompileOptions& options,
                             const MeasureOptions& opts) {
  compiler::CompileOptions o = options;
  o.sidecarPath = opts.planPath + ".weights";
  plan::PlanT plan;
  compiler::CompileStats stats;
  if (!compiler::compileModel(model, o, &plan, &stats))
    throw Error("compiling the candidate (" + candidateFlags(o) + ") failed; see above");
  compiler::writePlanFile(plan, opts.planPath);
  Model m(opts.planPath, opts.threads, "auto");
  prefaultWeights(m);
  return benchGenerate(m, opts.bench);
}

} // namespace kt::tune
