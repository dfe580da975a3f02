#pragma once
// The tokenizer a plan embeds (copied from the model folder by kt-compile), or one from files.
#include "runtime/plan/PlanReader.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <memory>

namespace kt {

// Throws kt::Error naming the plan when it embeds no tokenizer or the embedded one is invalid.
std::unique_ptr<tok::Tokenizer> planTokenizer(const LoadedPlan& plan);
// tokenizer.json (and tokenizer_config.json beside it, when present).
std::unique_ptr<tok::Tokenizer> fileTokenizer(const std::string& tokenizerJsonPath);

} // namespace kt
