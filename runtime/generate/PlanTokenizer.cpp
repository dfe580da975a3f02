#include "runtime/generate/PlanTokenizer.h"

#include "runtime/support/Error.h"

#include <fstream>

namespace kt {

std::unique_ptr<tok::Tokenizer> planTokenizer(const LoadedPlan& plan) {
  const plan::TokenizerBlob* t = plan.root().tokenizer();
  if (!t || !t->tokenizer_json() || t->tokenizer_json()->size() == 0)
    throw Error(plan.origin() +
                ": the plan embeds no tokenizer (the model folder had no tokenizer.json); "
                "pass --tokenizer FILE or use --ids");
  std::string err;
  auto tok = tok::Tokenizer::fromJson(
      t->tokenizer_json()->str(),
      t->tokenizer_config_json() ? t->tokenizer_config_json()->str() : std::string(), &err);
  if (!tok)
    throw Error(plan.origin() + ": embedded tokenizer: " + err);
  return tok;
}

std::unique_ptr<tok::Tokenizer> fileTokenizer(const std::string& path) {
  std::string dir =
      path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
  std::string config = dir + "/tokenizer_config.json";
  if (!std::ifstream(config).good())
    config.clear();
  std::string err;
  auto tok = tok::Tokenizer::fromFiles(path, config, &err);
  if (!tok)
    throw Error(err);
  return tok;
}

} // namespace kt
