// kt-rt perplexity: mean negative log-likelihood of a text under the model, in windows.
#include "runtime/generate/Generator.h"
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace kt::cli {

int cmdPerplexity(int argc, char** argv) {
  Args args(argc, argv, 2, {"--text-file", "--ctx", "--max-tokens", "--threads", "--numa"},
            {"--json"});
  if (args.positional().size() != 1 || !args.has("--text-file")) {
    std::fprintf(
        stderr,
        "usage: kt-rt perplexity PLAN --text-file F [--ctx 512] [--max-tokens N] [--json]\n"
        "  splits the text into windows of --ctx tokens (each starting with BOS) and averages\n"
        "  the cross-entropy of every predicted token\n");
    return 2;
  }
  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  auto tok = planTokenizer(model.plan());
  std::vector<int32_t> ids = tok->encode(readTextFile(args.get("--text-file")), false);
  int64_t maxTokens = args.getInt("--max-tokens", int64_t(ids.size()));
  if (int64_t(ids.size()) > maxTokens)
    ids.resize(size_t(maxTokens));
  const int64_t ctx = args.getInt("--ctx", 512);
  if (ctx < 2 || ctx > model.info().max_position())
    throw Error("--ctx must be in 2.." + std::to_string(model.info().max_position()));
  const int64_t vocab = model.info().vocab_size();
  const int32_t bos = tok->bosId();
  double nll = 0;
  int64_t predicted = 0;
  auto t0 = std::chrono::steady_clock::now();
  const int64_t body = bos >= 0 ? ctx - 1 : ctx;
  for (int64_t start = 0; start < int64_t(ids.size()); start += body) {
    std::vector<int32_t> window;
    if (bos >= 0)
      window.push_back(bos);
    int64_t end = std::min<int64_t>(start + body, int64_t(ids.size()));
    window.insert(window.end(), ids.begin() + start, ids.begin() + end);
    if (window.size() < 2)
      break;
    auto logits = scoreSequences(model, {window});
    for (size_t t = 0; t + 1 < window.size(); ++t) {
      const float* row = logits[0].data() + int64_t(t) * vocab;
      double mx = row[0];
      for (int64_t v = 1; v < vocab; ++v)
        mx = std::max(mx, double(row[v]));
      double z = 0;
      for (int64_t v = 0; v < vocab; ++v)
        z += std::exp(double(row[v]) - mx);
      nll += (std::log(z) + mx) - row[window[t + 1]];
      ++predicted;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\r[perplexity] %lld/%zu tokens, loss %.4f, %.1f tok/s", (long long)end,
                 ids.size(), nll / double(predicted), double(end) / secs);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\n");
  if (predicted == 0)
    throw Error(args.get("--text-file") + ": too short to score");
  double loss = nll / double(predicted);
  if (args.has("--json"))
    std::printf("{\"tokens\": %lld, \"loss\": %.6f, \"perplexity\": %.4f, \"tok_s\": %.1f}\n",
                (long long)predicted, loss, std::exp(loss), double(predicted) / secs);
  else
    std::printf("%lld tokens scored: loss %.4f nats, perplexity %.3f (%.1f tok/s)\n",
                (long long)predicted, loss, std::exp(loss), double(predicted) / secs);
  return 0;
}

} // namespace kt::cli
