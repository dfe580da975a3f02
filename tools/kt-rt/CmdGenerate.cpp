#include "runtime/generate/Generator.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"
#include "tools/kt-rt/SamplingFlags.h"

#include <cstdio>

namespace kt::cli {

static std::string idsJson(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i)
    s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

int cmdGenerate(int argc, char** argv) {
  Args args(argc, argv, 2,
            samplingFlags({"--ids", "-n", "--max-new-tokens", "--threads", "--numa"}),
            {"--json", "--ignore-eos"});
  if (args.positional().size() != 1 || !args.has("--ids")) {
    std::fprintf(stderr, "usage: kt-rt generate PLAN --ids 5,17,42 [--ids ...] [-n 16] "
                         "[--temperature 0] [--top-k K]\n"
                         "       [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] "
                         "[--ignore-eos] [--json]\n");
    return 2;
  }
  GenerateRequest req;
  for (const std::string& s : args.all("--ids"))
    req.prompts.push_back(parseIdList(s, "--ids"));
  req.maxNewTokens = int(args.getInt("-n", args.getInt("--max-new-tokens", 16)));
  if (req.maxNewTokens < 0)
    throw Error("-n must be >= 0");
  req.sampling = parseSampling(args, 0.0);

  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  if (!args.has("--ignore-eos") && model.info().eos_ids())
    for (int id : *model.info().eos_ids())
      req.stopIds.push_back(id);
  GenerateResult r = generate(model, req);

  if (args.has("--json")) {
    std::printf("{");
    if (r.newIds.size() == 1)
      std::printf("\"new_ids\": %s, ", idsJson(r.newIds[0]).c_str());
    std::printf("\"sequences\": [");
    for (size_t s = 0; s < r.newIds.size(); ++s)
      std::printf("%s{\"new_ids\": %s}", s ? ", " : "", idsJson(r.newIds[s]).c_str());
    std::printf("], \"prefill_tokens\": %lld, \"decode_tokens\": %lld, \"prefill_tok_s\": %.2f, "
                "\"decode_tok_s\": %.2f}\n",
                (long long)r.prefillTokens, (long long)r.decodeTokens, r.prefillTokPerSec(),
                r.decodeTokPerSec());
  } else {
    for (size_t s = 0; s < r.newIds.size(); ++s)
      std::printf("%s\n", idsJson(r.newIds[s]).c_str());
    std::fprintf(stderr, "prefill %lld tokens at %.1f tok/s, decode %lld tokens at %.1f tok/s\n",
                 (long long)r.prefillTokens, r.prefillTokPerSec(), (long long)r.decodeTokens,
                 r.decodeTokPerSec());
  }
  return 0;
}

} // namespace kt::cli
