#include "compiler/pipeline/Pipeline.h"

#include "compiler/emit/PlanEmitter.h"
#include "compiler/passes/QuantizeWeights.h"
#include "compiler/plan/PlanWriter.h"
#include "compiler/plan/WeightPacker.h"
#include "dialects/kt/IR/KTOps.h"
#include "dialects/kt/Transforms/Passes.h"
#include "frontends/hf/HfImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace kt::compiler {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
} // namespace

bool compileModel(const hf::ModelDesc& model, const CompileOptions& options, plan::PlanT* out,
                  CompileStats* stats) {
  if (options.target != "cpu") {
    llvm::errs() << "kt-compile: error: --target " << options.target
                 << " is not available yet (this build compiles CPU plans; the CUDA backend is in "
                    "progress)\n";
    return false;
  }
  if (!options.gpuQuant.empty() && options.gpuQuant != "int8" && options.gpuQuant != "int4") {
    llvm::errs() << "kt-compile: error: --gpu-quant must be int8 or int4, not '" << options.gpuQuant
                 << "'\n";
    return false;
  }
  if (options.dtype != "f32" && options.dtype != "bf16") {
    llvm::errs() << "kt-compile: error: --dtype must be f32 or bf16, not '" << options.dtype
                 << "'\n";
    return false;
  }
  // bf16 compute on the CPU = bf16 weight panels multiplied by bf16-rounded activations
  // (AVX512-BF16 or AMX), f32 accumulation; unless the user also chose a quantized format.
  std::string cpuQuant = options.cpuQuant;
  if (cpuQuant.empty() && options.dtype == "bf16")
    cpuQuant = "bf16";
  mlir::MLIRContext ctx;
  mlir::kt::registerKTPasses();
  auto t0 = std::chrono::steady_clock::now();
  mlir::OwningOpRef<mlir::ModuleOp> module = hf::importModel(ctx, model);
  stats->importSeconds = since(t0);

  t0 = std::chrono::steady_clock::now();
  if (mlir::failed(mlir::verify(*module))) {
    llvm::errs() << "kt-compile: internal error: the imported module does not verify\n";
    return false;
  }
  mlir::PassManager pm(&ctx);
  if (!options.hwProfile.empty()) {
    // Built from C++ rather than a textual pipeline: paths and override regexes may contain
    // the characters ({, }, commas, spaces) that pass-option syntax gives meaning to.
    mlir::kt::PartitionPassOptions p;
    p.profile = options.hwProfile;
    p.gpuMem = options.gpuMem;
    p.cpuMem = options.cpuMem;
    p.expertsOnGpu = options.expertsOnGpu;
    p.expertStats = options.expertStats;
    p.prefillOffload = options.prefillOffload;
    p.placementOverrides = options.placementOverrides;
    p.promptLen = options.promptLen;
    p.decodeBatch = options.decodeBatch;
    p.kvTokens = options.kvTokens;
    p.cpuQuant = cpuQuant; // quantize runs after partition: size CPU-held weights as packed
    // The CUDA backend uploads GPU weights in this dtype (GEMM matrices int8/int4 with
    // --gpu-quant).
    p.computeDtype = options.dtype + (options.gpuQuant.empty() ? "" : "+" + options.gpuQuant);
    p.explain = options.explain;
    p.explainJson = options.explainJsonPath;
    pm.addPass(mlir::kt::createPartitionPass(p));
  }
  // After kt-partition this places nothing (everything is placed); without --hw it is the placer.
  std::string pipeline = "kt-assign-placement{device=" + options.device + "}";
  if (!options.passPipeline.empty())
    pipeline += "," + options.passPipeline;
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm, llvm::errs())))
    return false;
  if (!cpuQuant.empty()) {
    std::string err;
    auto pass = createQuantizeWeightsPass(cpuQuant, &err);
    if (!pass) {
      llvm::errs() << "kt-compile: error: " << err << "\n";
      return false;
    }
    pm.addPass(std::move(pass));
  }
  if (!options.train.empty() && options.loraInference) {
    llvm::errs() << "kt-compile: error: --adapter-unmerged and --train cannot be combined (to "
                    "continue training an adapter, use kt-rt train --init-adapter)\n";
    return false;
  }
  if (!options.train.empty() || options.loraInference) {
    if (!options.train.empty() && options.train != "lora") {
      llvm::errs() << "kt-compile: error: --train " << options.train
                   << " is not supported (only lora)\n";
      return false;
    }
    mlir::kt::AttachLoraPassOptions lora;
    lora.targetModules = options.loraTargetModules;
    lora.targetParameters = options.loraTargetParameters;
    lora.rank = options.loraR;
    lora.alpha = options.loraAlpha;
    // Built here, not parsed: PEFT's pattern regexes may hold pass-option syntax. (The options
    // struct holds ArrayRefs: the vectors live until the pass is created.)
    std::vector<std::string> ranks, alphas;
    for (const auto& [re, v] : options.loraRankPattern)
      ranks.push_back(re + "=" + std::to_string(v));
    for (const auto& [re, v] : options.loraAlphaPattern)
      alphas.push_back(re + "=" + std::to_string(v));
    lora.rankPattern = ranks;
    lora.alphaPattern = alphas;
    pm.addPass(mlir::kt::createAttachLoraPass(lora));
    if (!options.loraInference)
      pm.addPass(mlir::kt::createDeriveTrainStepPass());
  }
  if (mlir::failed(pm.run(*module)))
    return false;
  stats->passSeconds = since(t0);
  module->walk([&](mlir::Operation* op) {
    if (llvm::isa<mlir::kt::WeightOp>(op))
      ++stats->numWeights;
    else if (op->getDialect() && op->getDialect()->getNamespace() == "kt" &&
             !llvm::isa<mlir::kt::WeightRefOp>(op))
      ++stats->numOps;
  });

  if (!options.dumpMlirPath.empty()) {
    std::string err;
    auto file = mlir::openOutputFile(options.dumpMlirPath, &err);
    if (!file) {
      llvm::errs() << "kt-compile: error: " << err << "\n";
      return false;
    }
    module->print(file->os());
    file->keep();
  }

  t0 = std::chrono::steady_clock::now();
  PlanBuilder builder;
  WeightPacker packer(options.sidecarPath.empty() ? "model.ktplan.weights" : options.sidecarPath,
                      /*writeBlobs=*/!options.packLater);
  if (mlir::failed(emitPlan(*module, builder, &packer)))
    return false;
  builder.plan().model->compute_dtype =
      options.dtype == "bf16" ? plan::DType::BF16 : plan::DType::F32;
  builder.plan().model->gpu_quant = options.gpuQuant == "int8"   ? plan::QuantScheme::Int8PerChannel
                                    : options.gpuQuant == "int4" ? plan::QuantScheme::Int4Group
                                                                 : plan::QuantScheme::None;
  stats->emitSeconds = since(t0);
  *out = std::move(builder.plan());
  return true;
}

} // namespace kt::compiler
