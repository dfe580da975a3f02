//===- PartitionGraph.h - kt module -> cost-model graph ---------*- C++ -*-===//
//
// kt-partition reasons about a model through compiler/cost, which knows no
// MLIR. This file turns a kt module into a cost::ModelGraph — one unit per big
// op (embedding, attention, mlp, moe, lm_head, linear), with the small ops in
// between (norms, residual adds, rope, swiglu) folded into the next one — and
// remembers which ops and weights each unit stands for, so that the decision
// can be written back.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECTS_KT_TRANSFORMS_PARTITIONGRAPH_H
#define KT_DIALECTS_KT_TRANSFORMS_PARTITIONGRAPH_H

#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/ModelGraph.h"
#include "dialects/kt/IR/KTOps.h"

#include "llvm/ADT/SmallVector.h"

#include <vector>

namespace mlir {
namespace kt {

/// The ops and weights behind each unit of a cost::ModelGraph.
struct PartitionBinding {
  struct UnitOps {
    Operation* main = nullptr;                 // the big op
    llvm::SmallVector<Operation*> glue;        // small ops folded into it
    llvm::SmallVector<WeightOp> weights;       // weights it owns (first user)
    llvm::SmallVector<WeightOp> expertWeights; // stacked [E, ...] routed experts
  };
  std::vector<UnitOps> units;
  llvm::SmallVector<WeightOp> unused; // weights no op reads
};

/// Builds the graph of `module`'s functions. `stats` (may be null) gives
/// measured expert heat. `cpuQuant` (may be null) is the --cpu-quant scheme
/// kt-quantize-weights will apply to CPU-held matrices after partitioning:
/// each unit then also carries its CPU form (cost::CpuStorage). Reports
/// problems (e.g. a stats file that does not match the model) as errors on
/// the op at fault. `gpuDtype` is how the CUDA backend will hold accelerator-
/// held weights (the plan's compute dtype, cost::gpuFormat): the units'
/// accelerator form (weightBytes, expertBytes, format) is sized that way and
/// carries the backend's kernel launches (cost::GpuLaunches); AsStored keeps
/// the stored sizes and one launch overhead per kt op. `gpuQuant`: the format
/// of the GEMM matrices a +int8 gpuDtype quantizes (Int4: --gpu-quant int4,
/// cost::parseGpuComputeDtype).
LogicalResult buildPartitionGraph(ModuleOp module, const ::kt::cost::ExpertStats* stats,
                                  const ::kt::cost::QuantSpec* cpuQuant,
                                  ::kt::cost::GpuDtype gpuDtype, ::kt::cost::ModelGraph& graph,
                                  PartitionBinding& binding,
                                  ::kt::cost::GpuQuant gpuQuant = ::kt::cost::GpuQuant::Int8);

} // namespace kt
} // namespace mlir

#endif // KT_DIALECTS_KT_TRANSFORMS_PARTITIONGRAPH_H
