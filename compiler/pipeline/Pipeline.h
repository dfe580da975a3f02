#pragma once
// The kt-compile pipeline, phase by phase (IREE-style named phases):
//   import   : Hugging Face folder -> kt module (frontends/hf)
//   verify   : op verifiers (shapes, routing attributes, weight storage)
//   place    : kt-partition (cost model, with --hw) or kt-assign-placement (everything on --device)
//   train    : with --train lora, kt-attach-lora + kt-derive-train-step (docs/training.md);
//              with an unmerged --adapter, kt-attach-lora alone (adapters on @forward)
//   emit     : kt module -> plan (compiler/emit); packed weights go to the sidecar
// This header is plain C++ so the tool's main, which catches kt::Error, includes no MLIR.
#include "frontends/hf/HfModel.h"
#include "frontends/hf/PeftAdapter.h"
#include "runtime/schema/plan_generated.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kt::compiler {

struct CompileOptions {
  std::string target = "cpu"; // cpu (gpu/hybrid come with the CUDA backend)
  std::string dtype = "f32";  // compute precision
  std::string device = "cpu:numa0";
  std::string
      cpuQuant; // pack CPU weight matrices: f32|bf16|int8|int4[:g32|:g128][:asym]; "" = as stored
  std::string gpuQuant;     // "int8" / "int4" (f16 scale per 128 columns): GPU GEMMs; "" = dtype
  std::string sidecarPath;  // where packed weights go (PLAN.weights); needed when cpuQuant is set
  bool packLater = false;   // lay the sidecar out in the plan but write none (`kt-rt pack`)
  std::string passPipeline; // extra passes, textual MLIR pipeline (--pass-pipeline)
  std::string dumpMlirPath; // write the placed kt module here ("-" = stdout)
  bool verbose = false;

  // Cost-model partitioning (kt-partition; docs/cost-model.md). Without a hardware profile the
  // pipeline places everything on `device`, as before.
  std::string hwProfile;             // --hw: hardware profile JSON
  std::string gpuMem, cpuMem;        // budgets ("12GiB", "0", "unlimited"); "" = profile
  std::string expertsOnGpu = "auto"; // routed experts per MoE layer on the GPU, or auto
  std::string expertStats;           // measured expert heat (JSON)
  // auto | never | always. Default never until kt-rt's streaming of CPU experts to the GPU
  // (runtime/exec/cuda/ExpertStream) has been measured on a GPU; auto/always write the threshold
  // on the prefill MoE steps (MoeAttrs.prefill_offload_*) and reserve the streaming slots.
  std::string prefillOffload = "never";
  std::vector<std::string> placementOverrides; // 'REGEX=DEVICE', later ones win
  int64_t promptLen = 512;                     // prompt length of the prediction
  int64_t decodeBatch = 1;                     // sequences decoded together
  int64_t kvTokens = 0;                        // KV positions reserved (0 = model's, <= 4096)
  bool explain = false;                        // print the placement table to stdout
  std::string explainJsonPath;                 // write it as JSON ("-" = stdout)

  // LoRA training (docs/training.md): train == "lora" adds adapters on the PEFT targets and a
  // train_step entry point (kt-attach-lora, kt-derive-train-step).
  std::string train;
  int64_t loraR = 8;
  double loraAlpha = 16;
  std::vector<std::string> loraTargetModules;    // PEFT target_modules
  std::vector<std::string> loraTargetParameters; // PEFT target_parameters (fused experts)
  std::vector<std::pair<std::string, double>> loraRankPattern, loraAlphaPattern; // REGEX -> value
  // Unmerged inference adapters (kt-compile --adapter DIR --adapter-unmerged): kt-attach-lora
  // with the lora* settings above declares the adapters on @forward itself (no train_step), so
  // the prefill/decode steps carry Step.adapters; hf::embedPeftAdapter then gives them values.
  bool loraInference = false;
};

// Takes rank, alpha, targets and rank/alpha patterns from a PEFT adapter_config.json
// (--lora-config), so the plan's adapters are exactly that adapter's.
inline void applyLoraConfig(const hf::PeftConfig& c, CompileOptions& opt) {
  opt.loraR = c.r;
  opt.loraAlpha = c.alpha;
  opt.loraTargetModules = c.targetModules;
  opt.loraTargetParameters = c.targetParameters;
  opt.loraRankPattern = c.rankPattern;
  opt.loraAlphaPattern = c.alphaPattern;
}

struct CompileStats {
  double importSeconds = 0, passSeconds = 0, emitSeconds = 0;
  size_t numOps = 0, numWeights = 0;
};

// Runs import -> verify -> place -> emit into `out`. Diagnostics go to stderr; returns false on
// error.
bool compileModel(const hf::ModelDesc& model, const CompileOptions& options, plan::PlanT* out,
                  CompileStats* stats);

} // namespace kt::compiler
