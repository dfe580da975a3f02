#include "runtime/generate/Benchmark.h"

#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <random>
#include <sys/resource.h>

namespace kt {

namespace {

// CPU seconds this process has used (user + system, all threads).
double processCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

} // namespace

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

BenchResult benchGenerate(Model& model, const BenchOptions& opts) {
  if (opts.promptLen < 1 || opts.genLen < 1 || opts.batch < 1 || opts.reps < 1)
    throw Error("--prompt-len, --gen-len, --batch and --reps must be >= 1");
  if (opts.promptLen + opts.genLen > model.info().max_position())
    throw Error("prompt + generation (" + std::to_string(opts.promptLen + opts.genLen) +
                " tokens) exceed the model's maximum positions (" +
                std::to_string(model.info().max_position()) + ")");
  std::mt19937 rng(opts.seed);
  GenerateRequest req;
  for (int b = 0; b < opts.batch; ++b) {
    std::vector<int32_t> ids(static_cast<size_t>(opts.promptLen));
    for (int32_t& id : ids)
      id = int32_t(rng() % uint32_t(model.info().vocab_size()));
    req.prompts.push_back(ids);
  }
  req.maxNewTokens = opts.genLen;
  BenchResult res;
  // A profile of a single rep would hold the first run's one-time costs (page faults, lazy CUDA
  // module loading: the tenth device run's 1-rep profile had a 38 ms GPU prefill's MoE at 0.48 s),
  // so --profile with --reps 1 runs an unmeasured warm-up rep first (r = -1).
  const int warmups = opts.profileLastRep && opts.reps == 1 ? 1 : 0;
  for (int r = -warmups; r < opts.reps; ++r) { // the first rep also warms the page cache
    if (opts.profileLastRep && r == opts.reps - 1) {
      model.executor().profile().clear();
      model.executor().setProfiling(true, opts.profileByLayer);
    }
    // CPU time of the decode phase: from the first token (sampled from the prefill's logits) on.
    double cpuAtFirstToken = -1;
    GenerateCallbacks cb;
    cb.onToken = [&](int, int32_t) {
      if (cpuAtFirstToken < 0) {
        cpuAtFirstToken = processCpuSeconds();
        if (model.backend()) // overlap is reported for the decode steps
          model.backend()->resetOverlap();
      }
      return true;
    };
    GenerateResult g = generate(model, req, cb);
    if (r < 0)
      continue;
    const double share = g.decodeSeconds > 0 ? (processCpuSeconds() - cpuAtFirstToken) /
                                                   (g.decodeSeconds * model.pool().size())
                                             : 0;
    GenerateResult& best = res.best;
    if (r == 0 || g.prefillTokPerSec() > best.prefillTokPerSec())
      best.prefillSeconds = g.prefillSeconds, best.prefillTokens = g.prefillTokens;
    if (r == 0 || g.decodeTokPerSec() > best.decodeTokPerSec()) {
      best.decodeSeconds = g.decodeSeconds, best.decodeTokens = g.decodeTokens,
      res.cpuShare = share;
      if (model.backend())
        res.overlap = model.backend()->overlap();
    }
  }
  if (opts.profileLastRep)
    model.executor().setProfiling(false);
  return res;
}

} // namespace kt
