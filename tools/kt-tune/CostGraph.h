#pragma once
// The cost-model view of a Hugging Face model, built exactly as kt-partition builds it for
// kt-compile --hw (import to the kt dialect, then dialects/kt/Transforms/PartitionGraph), so that
// kt-tune's candidate search predicts what kt-compile will place. Plain C++ interface: the MLIR
// side lives in CostGraph.cpp, an LLVM-style (no exceptions) library.
#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/ModelGraph.h"
#include "frontends/hf/HfModel.h"

#include <string>

namespace kt::tune {

// `stats` (may be null: uniform routing) sets each routed expert's activation probability;
// `cpuQuant` ("" = as stored) is kt-compile's --cpu-quant, which sizes the CPU-held weights;
// `dtype` its --dtype (f32 | bf16), the form the CUDA backend gives GPU-held weights.
// Returns false with *error set (the diagnostics, e.g. a stats file that does not match the
// model's layers or expert counts).
bool buildCostGraph(const hf::ModelDesc& model, const cost::ExpertStats* stats,
                    const std::string& cpuQuant, const std::string& dtype, cost::ModelGraph* graph,
                    std::string* error);

} // namespace kt::tune
