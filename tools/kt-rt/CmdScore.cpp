#include "runtime/generate/Generator.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <chrono>
#include <cstdio>
#include <map>

namespace kt::cli {

int cmdScore(int argc, char** argv) {
  Args args(argc, argv, 2, {"--ids", "--out", "--threads", "--numa"}, {"--dump-hidden"});
  if (args.positional().size() != 1 || !args.has("--ids") || !args.has("--out")) {
    std::fprintf(
        stderr,
        "usage: kt-rt score PLAN --ids 5,17,42 [--ids ...] --out FILE.safetensors [--dump-hidden] "
        "[--threads N]\n"
        "  writes `logits` (f32 [T, vocab]); with several --ids, `logits.{i}` per sequence\n");
    return 2;
  }
  std::vector<std::vector<int32_t>> seqs;
  for (const std::string& s : args.all("--ids"))
    seqs.push_back(parseIdList(s, "--ids"));
  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));

  const bool single = seqs.size() == 1;
  auto key = [&](const std::string& base, int seq) {
    return single ? base : base + "." + std::to_string(seq);
  };
  std::map<std::string, std::pair<std::vector<float>, std::vector<int64_t>>> hidden;
  auto t0 = std::chrono::steady_clock::now();
  auto logits = scoreSequences(
      model, seqs,
      args.has("--dump-hidden")
          ? std::function<void(const std::string&, int, const float*, int64_t, int64_t)>(
                [&](const std::string& name, int seq, const float* rows, int64_t n, int64_t cols) {
                  hidden[single ? name : "s" + std::to_string(seq) + "." + name] = {
                      std::vector<float>(rows, rows + n * cols), {n, cols}};
                })
          : nullptr);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<OutTensor> out;
  const int64_t vocab = model.info().vocab_size();
  std::vector<std::string> names;
  names.reserve(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s)
    names.push_back(key("logits", int(s)));
  for (size_t s = 0; s < seqs.size(); ++s)
    out.push_back({names[s], DType::F32, {int64_t(seqs[s].size()), vocab}, logits[s].data()});
  for (auto& [name, h] : hidden)
    out.push_back({name, DType::F32, h.second, h.first.data()});
  writeSafetensors(args.get("--out"), out);
  int64_t tokens = 0;
  for (const auto& s : seqs)
    tokens += int64_t(s.size());
  std::fprintf(
      stderr,
      "scored %zu sequence(s), %lld tokens in %.3f s (%.1f tok/s); wrote %zu tensors to %s\n",
      seqs.size(), (long long)tokens, secs, double(tokens) / secs, out.size(),
      args.get("--out").c_str());
  return 0;
}

} // namespace kt::cli
