#pragma once
// PEFT LoRA adapters seen from the compiler: the training setup of an adapter_config.json
// (kt-compile --lora-config) and merging a trained adapter into the base weights
// (kt-compile --adapter DIR). Plain C++; throws kt::Error naming the file and tensor at fault.
#include "frontends/hf/HfModel.h"

#include <string>
#include <utility>
#include <vector>

namespace kt::hf {

// The LoRA fields of a PEFT adapter_config.json.
struct PeftConfig {
  int r = 8;
  double alpha = 16;
  std::vector<std::string> targetModules;    // target_modules (a list; a regex string is refused)
  std::vector<std::string> targetParameters; // target_parameters (fused routed experts)
  std::vector<std::pair<std::string, double>> rankPattern, alphaPattern; // REGEX -> value
  std::vector<std::string> warnings; // settings KT accepts but does not reproduce (lora_dropout)
};

PeftConfig readPeftConfig(const std::string& adapterConfigJson);

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

} // namespace kt::hf
