// kt_bench_attention: CPU decode attention (one query token) at DeepSeek-V2-Lite's MLA shape (16
// heads, latent 512, rope 64, absorbed form) and a Qwen3-30B-A3B GQA shape (32 query heads, 4 kv
// heads, head dim 128), against the context length, through the runtime's own entry points
// (mlaDecodeSplit / mlaAttention, gqaAttention) on the runtime's ThreadPool.
//   GFLOP/s counts 2 ops per multiply-add of the scores and the weighted sum (exp and the merge
//   not counted); "% fma512" is that against the register-only AVX-512 FMA peak of the same thread
//   count; GB/s is the KV-cache bytes read once per call (a 2-core VM's L2/L3 can hold a layer's
//   cache: these are the in-cache rates decode sees when one layer's attention follows another).
//   --cold: every call reads another copy of the cache, the copies 256 MiB in all (as decode,
//   where a layer's cache was last touched a whole token of weight streaming ago).
//   kt_bench_attention [--threads 1,2] [--ctx 128,512,2048] [--min-time S] [--cold]
#include "bench/kernels/BenchUtil.h"
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/attention/AttentionSplit.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace kt::bench;

namespace {

std::vector<float> randomVector(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v)
    x = nd(rng);
  return v;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> threads = {1, 2}, ctxs = {128, 512, 2048};
  double minTime = 0.3;
  bool cold = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads")
      threads = parseIntList(next());
    else if (a == "--ctx")
      ctxs = parseIntList(next());
    else if (a == "--cold")
      cold = true;
    else if (a == "--min-time")
      minTime = std::atof(next().c_str());
    else
      return std::fprintf(
                 stderr, "usage: %s [--threads 1,2] [--ctx 128,512,2048] [--min-time S] [--cold]\n",
                 argv[0]),
             2;
  }
  const int64_t maxCtx = *std::max_element(ctxs.begin(), ctxs.end());
  std::mt19937 rng(7);

  // MLA (DeepSeek-V2-Lite): 16 heads, latent 512, rope 64.
  const int mlaHeads = 16, lora = 512, rope = 64;
  const int kvHeads = 4, hd = 128;
  const size_t layerFloats = size_t(maxCtx) * std::max(lora + rope, 2 * kvHeads * hd);
  const size_t copies = cold ? std::max<size_t>(2, (size_t(256) << 20) / (4 * layerFloats)) : 1;
  std::vector<std::vector<float>> latents, kpes, kcs, vcs;
  for (size_t i = 0; i < copies; ++i) {
    latents.push_back(randomVector(size_t(maxCtx * lora), rng, 1.f));
    kpes.push_back(randomVector(size_t(maxCtx * rope), rng, 1.f));
    kcs.push_back(randomVector(size_t(maxCtx * kvHeads * hd), rng, 1.f));
    vcs.push_back(randomVector(size_t(maxCtx * kvHeads * hd), rng, 1.f));
  }
  size_t call = 0;
  const std::vector<float> qAbs = randomVector(size_t(mlaHeads * lora), rng, 0.05f),
                           qPe = randomVector(size_t(mlaHeads * rope), rng, 0.05f);
  std::vector<float> mlaOut(size_t(mlaHeads * lora));
  // GQA (Qwen3-30B-A3B): 32 query heads over 4 kv heads of 128.
  const int gqaHeads = 32;
  const std::vector<float> q = randomVector(size_t(gqaHeads * hd), rng, 0.05f);
  std::vector<float> gqaOut(size_t(gqaHeads * hd));

  std::printf("%-4s %-5s %6s %9s %9s %9s %8s %9s\n", "attn", "thr", "ctx", "us/call", "us med",
              "GFLOP/s", "%fma512", "cache GB/s");
  for (int64_t nt : threads) {
    double peak;
    {
      Team team{int(nt)};
      peak = peakFma512(team);
    }
    kt::ThreadPool pool{int(nt)};
    for (int64_t ctx : ctxs) {
      double best, med;
      timeBestMedian(
          [&] {
            const float* latent = latents[call % copies].data();
            const float* kpe = kpes[call++ % copies].data();
            if (!kt::cpu::mlaDecodeSplit(pool, qAbs.data(), qPe.data(), mlaHeads, lora, rope,
                                         latent, kpe, ctx, 0.07, mlaOut.data()))
              kt::cpu::mlaAttention(pool, qAbs.data(), qPe.data(), 1, mlaHeads, lora, rope, latent,
                                    kpe, ctx - 1, 0.07, mlaOut.data());
          },
          minTime, &best, &med);
      double flops = 2.0 * ctx * mlaHeads * (2.0 * lora + rope);
      double bytes = 4.0 * ctx * (lora + rope);
      std::printf("%-4s %-5lld %6lld %9.1f %9.1f %9.1f %7.1f%% %9.1f\n", "mla", (long long)nt,
                  (long long)ctx, best * 1e6, med * 1e6, flops / best * 1e-9,
                  100.0 * flops / best * 1e-9 / peak, bytes / best * 1e-9);
      timeBestMedian(
          [&] {
            const size_t i = call++ % copies;
            kt::cpu::gqaAttention(pool, q.data(), 1, gqaHeads, kvHeads, hd, kcs[i].data(),
                                  vcs[i].data(), ctx - 1, 0.088, gqaOut.data());
          },
          minTime, &best, &med);
      flops = 2.0 * ctx * gqaHeads * 2.0 * hd;
      bytes = 4.0 * ctx * kvHeads * hd * 2.0;
      std::printf("%-4s %-5lld %6lld %9.1f %9.1f %9.1f %7.1f%% %9.1f\n", "gqa", (long long)nt,
                  (long long)ctx, best * 1e6, med * 1e6, flops / best * 1e-9,
                  100.0 * flops / best * 1e-9 / peak, bytes / best * 1e-9);
    }
    std::printf("     (fma512 peak, %lld threads: %.1f GFLOP/s)\n", (long long)nt, peak);
  }
  return 0;
}
