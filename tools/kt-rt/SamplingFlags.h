#pragma once
// The sampling flags shared by generate, run and chat.
#include "runtime/generate/Sampler.h"
#include "tools/kt-rt/Args.h"

#include <set>
#include <string>

namespace kt::cli {

// --temperature --top-k --top-p --min-p --repetition-penalty --seed
std::set<std::string> samplingFlags(std::set<std::string> more = {});
// Throws kt::Error naming the flag when a value is out of range.
SamplerConfig parseSampling(const Args& args, double defaultTemperature);
extern const char* const kSamplingHelp;

} // namespace kt::cli
