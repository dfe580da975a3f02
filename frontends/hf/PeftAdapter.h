#pragma once
// PEFT LoRA adapters seen from the compiler: the training setup of an adapter_config.json
// (kt-compile --lora-config), merging a trained adapter into the base weights
// (kt-compile --adapter DIR) and carrying it unmerged as plan weights (--adapter-unmerged).
// Plain C++; throws kt::Error naming the file and tensor at fault.
#include "frontends/hf/HfModel.h"

#include <string>
#include <utility>
#include <vector>

namespace kt::plan {
struct PlanT;
}

namespace kt::hf {

// The LoRA fields of a PEFT adapter_config.json.
struct PeftConfig {
  int r = 8;
  double alpha = 16;
  std::vector<std::string> targetModules;    // target_modules (a list; a regex string is refused)
  std::vector<std::string> targetParameters; // target_parameters (fused routed experts)
  std::vector<std::pair<std::string, double>> rankPattern, alphaPattern; // REGEX -> value
  bool useRslora = false;            // use_rslora: scale alpha / sqrt(r) instead of alpha / r
  std::vector<std::string> warnings; // settings KT accepts but does not reproduce (lora_dropout)
};

PeftConfig readPeftConfig(const std::string& adapterConfigJson);

// PEFT's scaling of an adapter of rank r: alpha / r, or alpha / sqrt(r) with use_rslora.
double peftScale(const PeftConfig& c, double alpha, int64_t r);

// PEFT's module path for the fused routed-expert parameters of one MoE layer, in PEFT's nesting:
// with both gate_up_proj and down_proj targeted, "…experts.base_layer" is gate_up's adapter and
// "…experts" down's. `experts` is the experts module ("model.layers.1.mlp.experts"); returns
// (parameter, PEFT module name without the "base_model.model." prefix) for each targeted one.
std::vector<std::pair<std::string, std::string>>
fusedExpertAdapterNames(const std::string& experts,
                        const std::vector<std::string>& targetParameters);

struct MergeStats {
  int adapters = 0;          // PEFT modules merged
  uint64_t bytesWritten = 0; // merged f32 weights written to the output file
};

// W += (alpha / r) · B·A in f32 for every adapter in `adapterDir` (adapter_config.json +
// adapter_model.safetensors), nn.Linear and fused-expert layouts. The merged weights are written
// as f32 to `outPath` and `model`'s weights are pointed there (the checkpoint is only read).
MergeStats mergePeftAdapter(ModelDesc& model, const std::string& adapterDir,
                            const std::string& outPath);

struct EmbedStats {
  int adapters = 0;   // Plan.adapters given values
  uint64_t bytes = 0; // adapter bytes the plan maps from the adapter file
};

// The unmerged form (kt-compile --adapter DIR --adapter-unmerged): `plan` was compiled with this
// adapter's config (kt-attach-lora declared Plan.adapters on @forward, so prefill/decode steps
// carry Step.adapters); every adapter's lora_A / lora_B tensors of DIR/adapter_model.safetensors
// become plan weights (mapped in place, f32/bf16/f16 as stored) named by Adapter.init_a/init_b.
// The base weights are left as they are (packed, quantized). use_rslora is folded into
// Adapter.alpha (alpha·sqrt(r), so that the runtime's alpha / r is PEFT's alpha / sqrt(r)).
// Errors name the file and module: a plan adapter without tensors, a tensor of the wrong shape,
// a module of the file that no plan adapter is.
EmbedStats embedPeftAdapter(plan::PlanT& plan, const std::string& adapterDir);

} // namespace kt::hf
