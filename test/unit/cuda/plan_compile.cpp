// Compiles fixture plans for plan_test.cpp in-process (the same options as
// scripts/device-cuda-plans.sh passes to kt-compile).
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"

#include <gtest/gtest.h>

#include <string>

std::string compileFixturePlan(const std::string& fixtureDir, const std::string& model,
                               const std::string& variant, const std::string& dir) {
  kt::hf::ModelDesc desc = kt::hf::describeModel(fixtureDir + "/hf/" + model);
  kt::compiler::CompileOptions opt;
  opt.device = "gpu:0";
  if (variant == "bf16")
    opt.dtype = "bf16";
  if (variant == "int8")
    opt.gpuQuant = "int8";
  // weight-only int4 GEMM matrices on the GPU
  if (variant == "int4" || variant == "split4" || variant == "offload4")
    opt.gpuQuant = "int4";
  std::string path = dir + "/" + model + "." + variant + ".ktplan";
  // CPU experts packed as int8 (AMX/VNNI)
  if (variant == "hybridq" || variant == "splitq" || variant == "offloadq") {
    opt.cpuQuant = "int8";
    opt.sidecarPath = path + ".weights";
  }
  // Split layers (hot experts on the GPU, the rest on the CPU in the same layer): split keeps
  // experts 0-3 on the CPU (the stacks stay on the GPU); splitq keeps experts 4.. on the CPU,
  // packed, so the GPU's experts 0-3 are dequantized from the CPU's int8 blobs at upload; split4
  // places as split with the GPU's experts (and everything else it holds) int4.
  if (variant == "split" || variant == "splitq" || variant == "split4" || variant == "splitoff") {
    opt.hwProfile = std::string(KT_EXAMPLES_DIR) + "/hw/xeon-2s-rtx4090.json";
    opt.placementOverrides = {".=gpu:0", model == "llama" ? "\\.mlp\\.=cpu:numa0"
                                         : variant != "splitq"
                                             ? "experts\\.[0-3]\\.=cpu:numa0"
                                             : "experts\\.([4-9]|1[0-9])\\.=cpu:numa0"};
  }
  // Prefill offload: hybrid plans whose prefill streams the CPU-held experts to the GPU from the
  // first token (--prefill-offload always) while decode keeps them on the CPU: offload (f32),
  // offloadq (the CPU's experts packed int8, dequantized as they are streamed), offload4 (the
  // GPU's weights, streamed experts included, int4); splitoff streams the CPU's experts 0-3 of
  // split layers beside the GPU's resident 4.. in the same grouped loop.
  const bool offload = variant == "offload" || variant == "offloadq" || variant == "offload4";
  if (variant == "splitoff")
    opt.prefillOffload = "always";
  if (offload)
    opt.prefillOffload = "always";
  if (variant == "hybrid" || variant == "hybridq" || offload) {
    // Everything on the GPU except the routed experts (llama, which has none: its MLPs).
    opt.hwProfile = std::string(KT_EXAMPLES_DIR) + "/hw/xeon-2s-rtx4090.json";
    opt.placementOverrides = {".=gpu:0",
                              model == "llama" ? "\\.mlp\\.=cpu:numa0" : "\\.experts=cpu:numa0"};
  }
  kt::plan::PlanT p;
  kt::compiler::CompileStats stats;
  if (!kt::compiler::compileModel(desc, opt, &p, &stats)) {
    ADD_FAILURE() << "compiling " << model << " (" << variant << ") failed";
    return "";
  }
  kt::compiler::writePlanFile(p, path);
  return path;
}
