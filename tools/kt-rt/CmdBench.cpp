// kt-rt bench: prefill and decode speed of a plan on this machine, next to the decode roofline
// (bytes of weights one decoded token must read / measured memory bandwidth).
#include "bench/kernels/BenchUtil.h"
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
#include <sys/resource.h>
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

// Read bandwidth with `threads` threads: bench/kernels' probe (eight accumulators, software
// prefetch like the GEMV kernels, 256 MiB arrays timed in 16 MiB blocks), best block — the rate the
// memory system gives an uncontended streaming kernel, so the roofline is not lowered by whatever
// else the machine is doing.
double measureReadBandwidth(int threads) {
  bench::Team team(threads);
  return bench::measureBandwidth(team, size_t(256) << 20, 2).readGBs;
}

// CPU seconds this process has used (user + system, all threads).
double processCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Touches every page of every weight once, so that decode timings measure the kernels rather than
// first-touch page faults (random routing reaches a new expert's pages for many tokens). Returns
// the bytes touched.
double prefaultWeights(const Model& model) {
  const auto* weights = model.plan().root().weights();
  double bytes = 0;
  volatile uint8_t sink = 0;
  uint8_t acc = 0;
  for (uint32_t id = 0; id < weights->size(); ++id)
    for (auto [p, n] : model.weights().byteRanges(int32_t(id))) {
      for (size_t off = 0; off < n; off += 4096)
        acc ^= p[off];
      bytes += double(n);
    }
  sink = acc;
  (void)sink;
  return bytes;
}

// Per-op wall time of the last rep on stderr: ms per prefill token and per decoded token.
void printProfile(const std::map<std::string, Executor::OpTime>& profile, int prefillTokens,
                  int decodeTokens) {
  std::fprintf(stderr, "%-28s %10s %10s %12s\n", "entry/op", "calls", "total s", "ms/token");
  for (const auto& [name, t] : profile) {
    const bool decode = name.rfind("decode/", 0) == 0;
    const int tokens = decode ? decodeTokens : prefillTokens;
    std::fprintf(stderr, "%-28s %10lld %10.3f %12.3f\n", name.c_str(), (long long)t.calls,
                 t.seconds, 1e3 * t.seconds / std::max(1, tokens));
  }
}

} // namespace

int cmdBench(int argc, char** argv) {
  Args args(argc, argv, 2,
            {"--prompt-len", "--gen-len", "--threads", "--numa", "--batch", "--reps"},
            {"--json", "--profile"});
  if (args.positional().size() != 1) {
    std::fprintf(stderr, "usage: kt-rt bench PLAN [--prompt-len 128] [--gen-len 32] [--batch 1] "
                         "[--threads T] [--reps 2] [--json] [--profile]\n");
    return 2;
  }
  const int promptLen = int(args.getInt("--prompt-len", 128)),
            genLen = int(args.getInt("--gen-len", 32));
  const int batch = int(args.getInt("--batch", 1)), reps = int(args.getInt("--reps", 2));
  if (promptLen < 1 || genLen < 1 || batch < 1 || reps < 1)
    throw Error("--prompt-len, --gen-len, --batch and --reps must be >= 1");
  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  if (promptLen + genLen > model.info().max_position())
    throw Error("prompt + generation exceed the model's maximum positions");
  {
    auto t0 = std::chrono::steady_clock::now();
    double touched = prefaultWeights(model);
    if (!args.has("--json")) // --json: stdout and stderr stay machine-readable
      std::fprintf(stderr, "prefaulted %.2f GB of weights in %.2f s\n", touched / 1e9,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
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
  double cpuShare = 0;             // of the best decode rep: CPU seconds / (wall seconds x threads)
  for (int r = 0; r < reps; ++r) { // first rep also warms the page cache
    if (args.has("--profile") && r == reps - 1) { // per-op times of the last rep only
      model.executor().profile().clear();
      model.executor().setProfiling(true);
    }
    // CPU time of the decode phase: from the first token (sampled from the prefill's logits) on.
    double cpuAtFirstToken = -1;
    GenerateCallbacks cb;
    cb.onToken = [&](int, int32_t) {
      if (cpuAtFirstToken < 0)
        cpuAtFirstToken = processCpuSeconds();
      return true;
    };
    GenerateResult g = generate(model, req, cb);
    const double share = g.decodeSeconds > 0 ? (processCpuSeconds() - cpuAtFirstToken) /
                                                   (g.decodeSeconds * model.pool().size())
                                             : 0;
    if (r == 0 || g.prefillTokPerSec() > best.prefillTokPerSec())
      best.prefillSeconds = g.prefillSeconds, best.prefillTokens = g.prefillTokens;
    if (r == 0 || g.decodeTokPerSec() > best.decodeTokPerSec())
      best.decodeSeconds = g.decodeSeconds, best.decodeTokens = g.decodeTokens, cpuShare = share;
  }
  if (args.has("--profile"))
    printProfile(model.executor().profile(), promptLen * batch, genLen * batch);
  const int threads = model.pool().size();
  const double bytes = activeWeightBytesPerToken(model.plan());
  const double bw = measureReadBandwidth(threads);
  const double roofline = bw * 1e9 / bytes * batch; // a batch shares one pass over the weights
  if (args.has("--json")) {
    std::printf("{\"prompt_len\": %d, \"gen_len\": %d, \"batch\": %d, \"threads\": %d, "
                "\"prefill_tok_s\": %.2f, "
                "\"decode_tok_s\": %.2f, \"active_weight_bytes_per_token\": %.0f, "
                "\"read_bandwidth_gbs\": %.2f, "
                "\"decode_roofline_tok_s\": %.2f, \"decode_fraction_of_roofline\": %.3f, "
                "\"cpu_share\": %.3f, \"decode_tok_s_per_busy_core_share\": %.2f}\n",
                promptLen, genLen, batch, threads, best.prefillTokPerSec(), best.decodeTokPerSec(),
                bytes, bw, roofline, best.decodeTokPerSec() / roofline, cpuShare,
                cpuShare > 0 ? best.decodeTokPerSec() / cpuShare : 0);
  } else {
    std::printf("prefill  %d x %d tokens: %.1f tok/s\n", batch, promptLen, best.prefillTokPerSec());
    std::printf("decode   %d x %d tokens: %.1f tok/s (%.1f%% of the roofline: %.2f MB of weights "
                "per token at %.1f GB/s read "
                "bandwidth, %d threads -> %.1f tok/s)\n",
                batch, genLen, best.decodeTokPerSec(), 100 * best.decodeTokPerSec() / roofline,
                bytes / 1e6, bw, threads, roofline);
    // Below ~0.9 the machine's other work took the cores: timings are lower bounds.
    std::printf("cpu share %.2f (CPU time of this process / (wall time x %d threads) while "
                "decoding); decode / share = %.1f tok/s (an estimate for idle cores)\n",
                cpuShare, threads, cpuShare > 0 ? best.decodeTokPerSec() / cpuShare : 0);
  }
  if (model.backend()) // GPU plans: what the GPU holds (weights, activations, KV cache)
    std::fprintf(stderr, "[%s]\n", model.backend()->summary().c_str());
  return 0;
}

} // namespace kt::cli
