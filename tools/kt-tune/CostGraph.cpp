#include "tools/kt-tune/CostGraph.h"

#include "dialects/kt/Transforms/PartitionGraph.h"
#include "frontends/hf/HfImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

namespace kt::tune {

bool buildCostGraph(const hf::ModelDesc& model, const cost::ExpertStats* stats,
                    const std::string& cpuQuant, const std::string& dtype, cost::ModelGraph* graph,
                    std::string* error) {
  cost::GpuDtype gpuDtype;
  if (!cost::parseGpuDtype(dtype, &gpuDtype)) {
    *error = "--dtype: expected f32 or bf16, got '" + dtype + "'";
    return false;
  }
  cost::QuantSpec q;
  if (!cpuQuant.empty() && !cost::parseCpuQuant(cpuQuant, &q)) {
    *error = "--cpu-quant: expected f32, bf16, int8, int4, int4:g32, int4:g128 (optionally "
             ":asym), got '" +
             cpuQuant + "'";
    return false;
  }
  mlir::MLIRContext ctx;
  // Collect diagnostics instead of printing them: the caller words the error.
  std::string messages;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic& d) {
    llvm::raw_string_ostream os(messages);
    if (!messages.empty())
      os << "; ";
    os << d.str();
    return mlir::success();
  });
  mlir::OwningOpRef<mlir::ModuleOp> module = hf::importModel(ctx, model);
  if (!module || mlir::failed(mlir::verify(*module))) {
    *error = "internal error: the imported module does not verify" +
             (messages.empty() ? std::string() : ": " + messages);
    return false;
  }
  mlir::kt::PartitionBinding binding;
  *graph = cost::ModelGraph();
  if (mlir::failed(mlir::kt::buildPartitionGraph(*module, stats, cpuQuant.empty() ? nullptr : &q,
                                                 gpuDtype, *graph, binding))) {
    *error = messages.empty() ? std::string("cannot build the cost-model graph") : messages;
    return false;
  }
  return true;
}

} // namespace kt::tune
