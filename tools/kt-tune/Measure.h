#pragma once
// Measures a candidate placement: compiles the model with the candidate's kt-compile flags in
// process, loads the plan and times prefill and decode with kt-rt bench's code
// (runtime/generate/Benchmark.h), so predicted and measured tok/s mean the same thing.
#include "compiler/pipeline/Pipeline.h"
#include "runtime/generate/Benchmark.h"
#include "tools/kt-tune/Candidates.h"

#include <string>

namespace kt::tune {

// GPUs this process can run on (0 without a CUDA build or driver); *why says why there are none.
int visibleGpus(std::string* why);

// The kt-compile flags of `c` on top of `base` (hardware profile, budgets, prompt length,
// --cpu-quant): what gets compiled, and what kt-tune prints for the user to paste.
compiler::CompileOptions candidateOptions(const compiler::CompileOptions& base, const Candidate& c,
                                          const std::string& statsPath);
// The same as a command line: "--hw P --experts-on-gpu 4 --prefill-offload auto ...".
std::string candidateFlags(const compiler::CompileOptions& options);

struct MeasureOptions {
  BenchOptions bench;
  int threads = 0;      // 0: the runtime's default
  std::string planPath; // where the candidate's plan is written (and its .weights sidecar)
};

// Compiles `model` with `options` to opts.planPath and benchmarks it. Throws kt::Error on a
// compile failure or a runtime error.
BenchResult measurePlacement(const hf::ModelDesc& model, const compiler::CompileOptions& options,
                             const MeasureOptions& opts);

} // namespace kt::tune
