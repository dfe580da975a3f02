#include "tools/kt-rt/SamplingFlags.h"

#include "runtime/support/Error.h"

namespace kt::cli {

const char* const kSamplingHelp = "  --temperature T (0 = greedy)  --top-k K  --top-p P  --min-p P "
                                  " --repetition-penalty R  --seed S\n";

std::set<std::string> samplingFlags(std::set<std::string> more) {
  for (const char* f :
       {"--temperature", "--top-k", "--top-p", "--min-p", "--repetition-penalty", "--seed"})
    more.insert(f);
  return more;
}

SamplerConfig parseSampling(const Args& args, double defaultTemperature) {
  SamplerConfig s;
  s.temperature = args.getDouble("--temperature", defaultTemperature);
  s.topK = int(args.getInt("--top-k", 0));
  s.topP = args.getDouble("--top-p", 1.0);
  s.minP = args.getDouble("--min-p", 0.0);
  s.repetitionPenalty = args.getDouble("--repetition-penalty", 1.0);
  s.seed = uint64_t(args.getInt("--seed", 0));
  if (s.temperature < 0)
    throw Error("--temperature must be >= 0");
  if (s.topK < 0)
    throw Error("--top-k must be >= 0");
  if (s.topP <= 0 || s.topP > 1)
    throw Error("--top-p must be in (0, 1]");
  if (s.minP < 0 || s.minP > 1)
    throw Error("--min-p must be in [0, 1]");
  if (s.repetitionPenalty <= 0)
    throw Error("--repetition-penalty must be > 0");
  return s;
}

} // namespace kt::cli
