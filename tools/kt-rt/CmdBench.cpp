// kt-rt bench: prefill and decode speed of a plan on this machine, next to the decode roofline
// (bytes of weights one decoded token must read / measured memory bandwidth).
#include "runtime/generate/Generator.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <thread>

namespace kt::cli {

namespace {

// Bytes one decode step reads: every weight once, except routed experts (only experts_per_token
// of num_experts per token on average) and the embedding table (one row).
double activeWeightBytesPerToken(const LoadedPlan& lp) {
  const plan::Plan& p = lp.root();
  std::map<int32_t, double> fraction; // weight id -> fraction of its bytes a token reads
  const plan::EntryPoint* ep = lp.entryPoint("decode");
  if (!ep)
    ep = p.entry_points()->Get(0);
  for (const plan::Step* s : *ep->steps()) {
    if (!s->weights())
      continue;
    for (uint32_t i = 0; i < s->weights()->size(); ++i) {
      int32_t w = s->weights()->Get(i);
      if (w < 0)
        continue;
      double f = 1.0;
      if (s->op() == plan::OpKind::Moe &&
          (i == plan::slots::Gate || i == plan::slots::Up || i == plan::slots::Down)) {
        auto a = s->attrs_as_MoeAttrs();
        f = double(a->experts_per_token()) / double(a->num_experts());
      } else if (s->op() == plan::OpKind::Embedding) {
        f = 1.0 / double(p.weights()->Get(uint32_t(w))->shape()->Get(0));
      }
      fraction[w] = std::max(fraction[w], f);
    }
  }
  double bytes = 0;
  for (auto [w, f] : fraction) {
    uint64_t b = 0;
    for (const plan::Segment* s : *p.weights()->Get(uint32_t(w))->segments())
      b += s->size();
    bytes += double(b) * f;
  }
  return bytes;
}

// Read bandwidth with `threads` threads over a buffer far larger than the caches (best of 3).
double measureReadBandwidth(int threads) {
  const size_t n = (size_t(512) << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n, 1);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> ts;
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        size_t b = n * size_t(t) / size_t(threads), e = n * size_t(t + 1) / size_t(threads);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sums[size_t(t)] = s0 + s1 + s2 + s3;
      });
    for (auto& t : ts)
      t.join();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / secs / 1e9);
  }
  return best;
}

} // namespace

int cmdBench(int argc, char** argv) {
  Args args(argc, argv, 2, {"--prompt-len", "--gen-len", "--threads", "--batch", "--reps"},
            {"--json"});
  if (args.positional().size() != 1) {
    std::fprintf(stderr, "usage: kt-rt bench PLAN [--prompt-len 128] [--gen-len 32] [--batch 1] "
                         "[--threads T] [--reps 2] [--json]\n");
    return 2;
  }
  const int promptLen = int(args.getInt("--prompt-len", 128)),
            genLen = int(args.getInt("--gen-len", 32));
  const int batch = int(args.getInt("--batch", 1)), reps = int(args.getInt("--reps", 2));
  if (promptLen < 1 || genLen < 1 || batch < 1 || reps < 1)
    throw Error("--prompt-len, --gen-len, --batch and --reps must be >= 1");
  Model model(args.positional()[0], int(args.getInt("--threads", 0)));
  if (promptLen + genLen > model.info().max_position())
    throw Error("prompt + generation exceed the model's maximum positions");
  std::mt19937 rng(7);
  GenerateRequest req;
  for (int b = 0; b < batch; ++b) {
    std::vector<int32_t> ids(static_cast<size_t>(promptLen));
    for (int32_t& id : ids)
      id = int32_t(rng() % uint32_t(model.info().vocab_size()));
    req.prompts.push_back(ids);
  }
  req.maxNewTokens = genLen;
  GenerateResult best;
  for (int r = 0; r < reps; ++r) { // first rep also warms the page cache
    GenerateResult g = generate(model, req);
    if (r == 0 || g.prefillTokPerSec() > best.prefillTokPerSec())
      best.prefillSeconds = g.prefillSeconds, best.prefillTokens = g.prefillTokens;
    if (r == 0 || g.decodeTokPerSec() > best.decodeTokPerSec())
      best.decodeSeconds = g.decodeSeconds, best.decodeTokens = g.decodeTokens;
  }
  const int threads = model.pool().size();
  const double bytes = activeWeightBytesPerToken(model.plan());
  const double bw = measureReadBandwidth(threads);
  const double roofline = bw * 1e9 / bytes * batch; // a batch shares one pass over the weights
  if (args.has("--json")) {
    std::printf("{\"prompt_len\": %d, \"gen_len\": %d, \"batch\": %d, \"threads\": %d, "
                "\"prefill_tok_s\": %.2f, "
                "\"decode_tok_s\": %.2f, \"active_weight_bytes_per_token\": %.0f, "
                "\"read_bandwidth_gbs\": %.2f, "
                "\"decode_roofline_tok_s\": %.2f, \"decode_fraction_of_roofline\": %.3f}\n",
                promptLen, genLen, batch, threads, best.prefillTokPerSec(), best.decodeTokPerSec(),
                bytes, bw, roofline, best.decodeTokPerSec() / roofline);
  } else {
    std::printf("prefill  %d x %d tokens: %.1f tok/s\n", batch, promptLen, best.prefillTokPerSec());
    std::printf("decode   %d x %d tokens: %.1f tok/s (%.1f%% of the roofline: %.2f MB of weights "
                "per token at %.1f GB/s read "
                "bandwidth, %d threads -> %.1f tok/s)\n",
                batch, genLen, best.decodeTokPerSec(), 100 * best.decodeTokPerSec() / roofline,
                bytes / 1e6, bw, threads, roofline);
  }
  return 0;
}

} // namespace kt::cli
