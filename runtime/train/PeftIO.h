#pragma once
// Adapters on disk in PEFT's format, so that KT's adapters load in the Hugging Face ecosystem and
// PEFT's adapters load in KT: a folder with adapter_config.json and adapter_model.safetensors whose
// tensors are NAME.lora_A.weight [E·r, in] and NAME.lora_B.weight [out, E·r] (f32), NAME being the
// PEFT module path of the plan's Adapter.name.
//
// A training checkpoint (kt-rt train --save-every, --resume) is such a folder plus
// optimizer.safetensors (AdamW moments under NAME.lora_{A,B}.exp_avg / .exp_avg_sq, PEFT layout)
// and trainer_state.json (optimizer step, the run's settings).
#include "runtime/train/AdapterSet.h"

#include <cstdint>
#include <string>

namespace kt::train {

// What adapter_config.json says beyond the tensors.
struct PeftConfigInfo {
  std::string baseModel;                  // base_model_name_or_path ("" = null)
  std::vector<std::string> targetModules; // from the plan's Training table
  std::vector<std::string> targetParameters;
  int r = 8;
  double alpha = 16;
  std::string templateJson; // an existing adapter_config.json to start from ("" = none)
};

// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (creating DIR). r/alpha of
// adapters that differ from info.r/alpha are written as rank_pattern/alpha_pattern entries.
void savePeftAdapter(const std::string& dir, const AdapterSet& set, const PeftConfigInfo& info);

// Loads DIR/adapter_model.safetensors into `set`. Every adapter of the set must be in the file with
// matching shapes and every lora tensor of the file must belong to an adapter of the set (a module
// the plan does not target is an error, not silently dropped). Returns adapter_config.json's text.
std::string loadPeftAdapter(const std::string& dir, AdapterSet& set);

// AdamW moments (checkpoints).
void saveOptimizerState(const std::string& path, const AdapterSet& set);
void loadOptimizerState(const std::string& path, AdapterSet& set);

} // namespace kt::train
