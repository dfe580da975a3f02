// kt-rt bench: prefill and decode speed of a plan on this machine, next to the decode roofline
// (bytes of weights one decoded token must read / measured memory bandwidth).
#include "bench/kernels/BenchUtil.h"
#include "runtime/generate/Benchmark.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

namespace kt::cli {

namespace {

// Bytes one decode step reads: every weight once, except routed experts (only experts_per_token
// of num_experts per token on average) and the embedding table (one row).
// Bytes of weights one decoded token reads; `cpuOnly`: only those the CPU reads (GPU plans: the
// CPU's roofline is about its own share; a split MoE layer counts its CPU experts).
double activeWeightBytesPerToken(const LoadedPlan& lp, bool cpuOnly) {
  const plan::Plan& p = lp.root();
  auto onCpu = [&](uint16_t device) {
    return p.devices()->Get(device)->kind() == plan::DeviceKind::CPU;
  };
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
      const bool experts =
          s->op() == plan::OpKind::Moe &&
          (i == plan::slots::Gate || i == plan::slots::Up || i == plan::slots::Down);
      if (cpuOnly && !experts && !onCpu(s->device()))
        continue;
      if (experts) {
        auto a = s->attrs_as_MoeAttrs();
        f = double(a->experts_per_token()) / double(a->num_experts());
        if (cpuOnly) { // the share of the layer's experts the CPU runs
          double cpuShare = onCpu(p.weights()->Get(uint32_t(w))->device()) ? 1.0 : 0.0;
          if (a->expert_devices() && a->expert_devices()->size() == uint32_t(a->num_experts())) {
            int n = 0;
            for (uint16_t d : *a->expert_devices())
              n += onCpu(d);
            cpuShare = double(n) / double(a->num_experts());
          }
          f *= cpuShare;
        }
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

// Per-op wall time of the last rep on stderr: ms per prefill token and per decoded token.
void printProfile(const std::map<std::string, Executor::OpTime>& profile, int prefillTokens,
                  int decodeTokens) {
  // GPU plans: each GPU op's device time (CUDA events) beside the host's wall time, and the parts
  // the ops time ("op:part", device time only).
  bool device = false;
  int width = 28; // the names' column: "prefill/mla_attention@05:o_proj" with --profile-layers
  for (const auto& [name, t] : profile) {
    device = device || t.deviceSeconds > 0;
    width = std::max(width, int(name.size()));
  }
  std::fprintf(stderr, "%-*s %10s %10s %12s%s\n", width, "entry/op", "calls", "total s", "ms/token",
               device ? "      gpu s  gpu ms/token" : "");
  for (const auto& [name, t] : profile) {
    const bool decode = name.rfind("decode/", 0) == 0;
    const int tokens = std::max(1, decode ? decodeTokens : prefillTokens);
    // 0.1 ms resolution: one layer's step (--profile-layers) often takes a few ms.
    std::fprintf(stderr, "%-*s %10lld %10.4f %12.4f", width, name.c_str(), (long long)t.calls,
                 t.seconds, 1e3 * t.seconds / tokens);
    if (device && t.deviceSeconds > 0)
      std::fprintf(stderr, " %10.4f %13.4f", t.deviceSeconds, 1e3 * t.deviceSeconds / tokens);
    // The activation moves: bytes and rate (a move to the host also waits for the GPU work queued
    // before it, so its rate is a lower bound of the link's).
    if (t.bytes > 0 && t.seconds > 0)
      std::fprintf(stderr, "  %.1f MB at %.2f GB/s", t.bytes / 1e6, t.bytes / t.seconds / 1e9);
    std::fprintf(stderr, "\n");
  }
}

} // namespace

int cmdBench(int argc, char** argv) {
  Args args(argc, argv, 2,
            {"--prompt-len", "--gen-len", "--threads", "--numa", "--batch", "--reps"},
            {"--json", "--profile", "--profile-layers"});
  if (args.positional().size() != 1) {
    std::fprintf(stderr, "usage: kt-rt bench PLAN [--prompt-len 128] [--gen-len 32] [--batch 1] "
                         "[--threads T] [--reps 2] [--json] [--profile] [--profile-layers]\n");
    return 2;
  }
  BenchOptions opts;
  opts.promptLen = int(args.getInt("--prompt-len", 128));
  opts.genLen = int(args.getInt("--gen-len", 32));
  opts.batch = int(args.getInt("--batch", 1));
  opts.reps = int(args.getInt("--reps", 2));
  // Per-op times of the last rep only; --profile-layers: per op and decoder layer.
  opts.profileByLayer = args.has("--profile-layers");
  opts.profileLastRep = args.has("--profile") || opts.profileByLayer;
  const int promptLen = opts.promptLen, genLen = opts.genLen, batch = opts.batch;
  if (promptLen < 1 || genLen < 1 || batch < 1 || opts.reps < 1)
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
  const BenchResult measured = benchGenerate(model, opts);
  const GenerateResult& best = measured.best;
  const double cpuShare = measured.cpuShare;
  if (opts.profileLastRep)
    printProfile(model.executor().profile(), promptLen * batch, genLen * batch);
  const int threads = model.pool().size();
  // GPU plans: the CPU's roofline covers only the weights the CPU reads.
  const bool cpuOnly = model.backend() != nullptr;
  const double bytes = activeWeightBytesPerToken(model.plan(), cpuOnly);
  const double bw = measureReadBandwidth(threads);
  // A batch shares one pass over the weights; no CPU-read weights: no CPU roofline (0).
  const double roofline = bytes > 0 ? bw * 1e9 / bytes * batch : 0;
  const double fraction = roofline > 0 ? best.decodeTokPerSec() / roofline : 0;
  // Hybrid plans: per decode token, how long the GPU waited for the CPU's experts; GPU plans:
  // what the GPU holds.
  const DeviceBackend::Overlap& overlap = measured.overlap;
  const double perToken = 1e3 / double(std::max<int64_t>(1, best.decodeTokens));
  std::string gpuJson;
  if (overlap.hybridSteps + overlap.hostSteps > 0) {
    char line[320];
    std::snprintf(line, sizeof line,
                  ", \"gpu_idle_ms_per_token\": %.3f, \"cpu_work_ms_per_token\": %.3f, "
                  "\"gpu_overlapped_ms_per_token\": %.3f, \"host_issue_ms_per_token\": %.3f, "
                  "\"readback_wait_ms_per_token\": %.3f",
                  overlap.gpuIdleSeconds * perToken, overlap.cpuSeconds * perToken,
                  overlap.gpuBusySeconds * perToken, overlap.hostIssueSeconds * perToken,
                  overlap.readbackWaitSeconds * perToken);
    gpuJson += line;
    if (!args.has("--json"))
      std::printf("hybrid   GPU idle %.2f ms per decoded token waiting for the CPU "
                  "(CPU work %.2f ms, GPU work beside it %.2f ms; %lld hybrid and %lld host "
                  "steps)\n",
                  overlap.gpuIdleSeconds * perToken, overlap.cpuSeconds * perToken,
                  overlap.gpuBusySeconds * perToken, (long long)overlap.hybridSteps,
                  (long long)overlap.hostSteps);
    if (overlap.hybridSteps > 0 && !args.has("--json"))
      std::printf("hybrid   between hybrid steps: host issuing the GPU's work %.2f ms, waiting "
                  "for it at the routing readback %.2f ms per decoded token\n",
                  overlap.hostIssueSeconds * perToken, overlap.readbackWaitSeconds * perToken);
  }
  if (model.backend()) {
    gpuJson += ", \"gpu\": \"" + model.backend()->summary() + "\"";
    // Launches per decoded token: queued on the GPU (a CUDA graph replay counts its nodes) and
    // made by the host (a replay counts once).
    const double steps = double(std::max<int64_t>(1, best.decodeTokens));
    char line[200];
    std::snprintf(line, sizeof line,
                  ", \"cuda_graphs\": %s, \"gpu_launches_per_token\": %.1f, "
                  "\"host_launches_per_token\": %.1f",
                  overlap.graphReplays > 0 ? "true" : "false",
                  double(overlap.deviceLaunches) / steps, double(overlap.hostLaunches) / steps);
    gpuJson += line;
    if (!args.has("--json"))
      std::printf("gpu      %s; %.1f launches per decoded token (%.1f from the host)\n",
                  overlap.graphReplays > 0 ? "CUDA graphs" : "eager launches",
                  double(overlap.deviceLaunches) / steps, double(overlap.hostLaunches) / steps);
  }
  if (args.has("--json")) {
    std::printf("{\"prompt_len\": %d, \"gen_len\": %d, \"batch\": %d, \"threads\": %d, "
                "\"prefill_tok_s\": %.2f, "
                "\"decode_tok_s\": %.2f, \"active_weight_bytes_per_token\": %.0f, "
                "\"read_bandwidth_gbs\": %.2f, "
                "\"decode_roofline_tok_s\": %.2f, \"decode_fraction_of_roofline\": %.3f, "
                "\"roofline_weights\": \"%s\", "
                "\"cpu_share\": %.3f, \"decode_tok_s_per_busy_core_share\": %.2f%s}\n",
                promptLen, genLen, batch, threads, best.prefillTokPerSec(), best.decodeTokPerSec(),
                bytes, bw, roofline, fraction, cpuOnly ? "cpu" : "all", cpuShare,
                cpuShare > 0 ? best.decodeTokPerSec() / cpuShare : 0, gpuJson.c_str());
  } else {
    std::printf("prefill  %d x %d tokens: %.1f tok/s\n", batch, promptLen, best.prefillTokPerSec());
    std::printf("decode   %d x %d tokens: %.1f tok/s (%.1f%% of the %sroofline: %.2f MB of %s"
                "weights per token at %.1f GB/s read bandwidth, %d threads -> %.1f tok/s)\n",
                batch, genLen, best.decodeTokPerSec(), 100 * fraction, cpuOnly ? "CPU's " : "",
                bytes / 1e6, cpuOnly ? "CPU-read " : "", bw, threads, roofline);
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
