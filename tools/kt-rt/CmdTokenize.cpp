#include "runtime/generate/PlanTokenizer.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <chrono>
#include <cstdio>

namespace kt::cli {

// PLAN positional or --tokenizer FILE.
static std::unique_ptr<tok::Tokenizer> tokenizerFrom(const Args& args, const char* usage) {
  if (args.has("--tokenizer") && args.positional().empty())
    return fileTokenizer(args.get("--tokenizer"));
  if (args.positional().size() == 1 && !args.has("--tokenizer"))
    return planTokenizer(LoadedPlan::fromFile(args.positional()[0]));
  throw Error(std::string("give a PLAN or --tokenizer FILE (") + usage + ")");
}

int cmdTokenize(int argc, char** argv) {
  const char* usage =
      "kt-rt tokenize (PLAN | --tokenizer FILE) (--text S | --text-file F) [--special]";
  Args args(argc, argv, 2, {"--tokenizer", "--text", "--text-file"}, {"--special"});
  if (args.has("--text") == args.has("--text-file"))
    throw Error(std::string("give exactly one of --text and --text-file (") + usage + ")");
  auto tok = tokenizerFrom(args, usage);
  std::string text =
      args.has("--text") ? args.get("--text") : readTextFile(args.get("--text-file"));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok->encode(text, args.has("--special"));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i)
    out += (i ? "," : "") + std::to_string(ids[i]);
  std::printf("%s]\n", out.c_str());
  if (args.has("--text-file"))
    std::fprintf(stderr, "%zu bytes -> %zu tokens in %.3f s (%.2f MB/s)\n", text.size(), ids.size(),
                 secs, double(text.size()) / 1e6 / secs);
  return 0;
}

int cmdDetokenize(int argc, char** argv) {
  const char* usage = "kt-rt detokenize (PLAN | --tokenizer FILE) --ids 1,2,3 [--skip-special]";
  Args args(argc, argv, 2, {"--tokenizer", "--ids"}, {"--skip-special"});
  if (!args.has("--ids"))
    throw Error(std::string("--ids is required (") + usage + ")");
  auto tok = tokenizerFrom(args, usage);
  std::string text, err;
  if (!tok->decodeChecked(parseIdList(args.get("--ids"), "--ids"), args.has("--skip-special"),
                          &text, &err))
    throw Error(err);
  std::printf("%s\n", text.c_str());
  return 0;
}

} // namespace kt::cli
