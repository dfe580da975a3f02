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
  std::string path = dir + "/" + model + "." + variant + ".ktplan";
  if (variant == "hybridq") { // hybrid with the CPU's experts packed as int8 (the AMX/VNNI path)
    opt.cpuQuant = "int8";
    opt.sidecarPath = path + ".weights";
  }
  if (variant == "hybrid" || variant == "hybridq") {
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
