#pragma once
// The kt-compile pipeline, phase by phase (IREE-style named phases):
//   import   : Hugging Face folder -> kt module (frontends/hf)
//   verify   : op verifiers (shapes, routing attributes, weight storage)
//   place    : kt-assign-placement (the cost-model partitioner will replace it)
//   emit     : kt module -> plan (compiler/emit)
// This header is plain C++ so the tool's main, which catches kt::Error, includes no MLIR.
#include "frontends/hf/HfModel.h"
#include "runtime/schema/plan_generated.h"

#include <string>

namespace kt::compiler {

struct CompileOptions {
  std::string target = "cpu";  // cpu (gpu/hybrid come with the CUDA backend)
  std::string dtype = "f32";   // compute precision
  std::string device = "cpu:numa0";
  std::string passPipeline;    // extra passes, textual MLIR pipeline (--pass-pipeline)
  std::string dumpMlirPath;    // write the placed kt module here ("-" = stdout)
  bool verbose = false;
};

struct CompileStats {
  double importSeconds = 0, passSeconds = 0, emitSeconds = 0;
  size_t numOps = 0, numWeights = 0;
};

// Runs import -> verify -> place -> emit into `out`. Diagnostics go to stderr; returns false on error.
bool compileModel(const hf::ModelDesc& model, const CompileOptions& options, plan::PlanT* out, CompileStats* stats);

} // namespace kt::compiler
