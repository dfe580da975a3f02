// kt_bench_moe: one MoE layer's CPU prefill experts through the runtime's own expert function
// (cpuops::routedExpertsOver: gather, prepare, gate/up, SwiGLU, down, combine in one fused task
// list) on the runtime's ThreadPool, with packed weights cycled through copies far larger than the
// L3 (a prefill reads each layer's experts from DRAM once). What it separates, against the probe's
// expert-path curve (every expert the same rows, no shared expert):
//   --skew S    routing: token t's experts drawn without replacement with probabilities
//               exp(S x N(0,1)) (0: the probe's even spread; a synthetic 512-token prompt's
//               busiest expert gets 2-3.4x the mean, about S = 0.5)
//   --shared I  a shared expert of intermediate I over every token, run in the same task list as
//               the CPU moe op runs DeepSeek's (expert E, chosen by every token)
// GFLOP/s counts the routed experts' products only (2 x 3 x hidden x inter per token and expert)
// so rows with and without a shared expert compare the routed part's rate as the cost model
// prices it; "all" adds the shared expert's products.
//   kt_bench_moe [--threads 16] [--tokens 128,512,2048] [--experts 64] [--topk 6] [--inter 1408]
//                [--format int8|bf16|int4] [--skew 0,0.5] [--shared 0,2816] [--min-time S]
#include "bench/kernels/BenchUtil.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace kt::bench;
namespace quant = kt::cpu::quant;

namespace {

constexpr int64_t kHidden = 2048;

size_t aligned(size_t bytes) {
  return (bytes + 4095) / 4096 * 4096;
}

// One expert's packed gate, up and down, copied side by side `copies` times into one buffer.
struct ExpertCopies {
  quant::WeightFormat format;
  int64_t inter;
  size_t upBytes = 0, stride = 0, copies = 0;
  Buffer blob;
  ExpertCopies(quant::WeightFormat f, int64_t inter, size_t totalBytes)
      : format(f), inter(inter), upBytes(aligned(quant::packedBytes(f, inter, kHidden))),
        stride(2 * upBytes + aligned(quant::packedBytes(f, kHidden, inter))),
        copies(std::max<size_t>(2, totalBytes / stride)), blob(copies * stride) {
    std::mt19937 rng(static_cast<uint32_t>(inter));
    std::normal_distribution<float> nd(0.f, 0.02f);
    std::vector<float> w(static_cast<size_t>(inter * kHidden));
    for (int m = 0; m < 3; ++m) {
      for (float& v : w)
        v = nd(rng);
      const bool down = m == 2;
      quant::packWeights(f, w.data(), down ? kHidden : inter, down ? inter : kHidden,
                         blob.data + size_t(m) * upBytes);
    }
    for (size_t c = 1; c < copies; ++c)
      std::memcpy(blob.data + c * stride, blob.data, stride);
  }
  kt::cpuops::ExpertMatrices at(size_t copy) const {
    auto view = [&](size_t offset, int64_t rows, int64_t cols) {
      kt::cpu::MatrixView v;
      v.data = blob.data + (copy % copies) * stride + offset;
      v.dtype = kt::DType::F32;
      v.rows = rows;
      v.cols = cols;
      v.packed = int32_t(format);
      return v;
    };
    return {view(0, inter, kHidden), view(upBytes, inter, kHidden),
            view(2 * upBytes, kHidden, inter)};
  }
};

// Token t's topK distinct experts, drawn with probabilities exp(skew x N(0,1)) (fixed per run),
// then the shared expert (index E) when there is one.
std::vector<int32_t> route(int64_t T, int E, int topK, double skew, bool shared, int* perToken,
                           double* maxOverMean) {
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  std::vector<double> p(static_cast<size_t>(E));
  for (double& v : p)
    v = std::exp(skew * nd(rng));
  *perToken = topK + (shared ? 1 : 0);
  std::vector<int32_t> chosen;
  std::vector<int64_t> rows(static_cast<size_t>(E), 0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> left = p;
    for (int k = 0; k < topK; ++k) {
      std::discrete_distribution<int> pick(left.begin(), left.end());
      const int e = pick(rng);
      left[size_t(e)] = 0;
      chosen.push_back(e);
      ++rows[size_t(e)];
    }
    if (shared)
      chosen.push_back(E);
  }
  *maxOverMean = double(*std::max_element(rows.begin(), rows.end())) * E / (double(T) * topK);
  return chosen;
}

} // namespace

int main(int argc, char** argv) {
  int threads = kt::hardwareThreads(), E = 64, topK = 6;
  int64_t inter = 1408;
  std::vector<int64_t> tokenCounts = {128, 512, 2048};
  std::vector<double> skews = {0, 0.5}, shareds = {0, 2816};
  std::string formatName = "int8";
  double minTime = 0.5;
  auto doubles = [](const std::string& s) {
    std::vector<double> out;
    for (size_t b = 0; b < s.size();) {
      size_t e = s.find(',', b);
      out.push_back(std::atof(s.substr(b, e - b).c_str()));
      b = e == std::string::npos ? s.size() : e + 1;
    }
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads")
      threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--tokens")
      tokenCounts = parseIntList(next());
    else if (a == "--experts")
      E = std::max(1, std::atoi(next().c_str()));
    else if (a == "--topk")
      topK = std::max(1, std::atoi(next().c_str()));
    else if (a == "--inter")
      inter = std::max(16, std::atoi(next().c_str()));
    else if (a == "--format")
      formatName = next();
    else if (a == "--skew")
      skews = doubles(next());
    else if (a == "--shared")
      shareds = doubles(next());
    else if (a == "--min-time")
      minTime = std::atof(next().c_str());
    else {
      std::fprintf(stderr,
                   "usage: %s [--threads N] [--tokens 128,512,2048] [--experts 64] [--topk 6] "
                   "[--inter 1408] [--format int8|bf16|int4] [--skew 0,0.5] [--shared 0,2816] "
                   "[--min-time S]\n",
                   argv[0]);
      return 2;
    }
  }
  quant::WeightFormat format = quant::WeightFormat::Int8;
  if (formatName == "bf16")
    format = quant::WeightFormat::BF16;
  else if (formatName == "int4")
    format = quant::WeightFormat::Int4G32Sym;
  else if (formatName != "int8") {
    std::fprintf(stderr, "--format: expected int8, bf16 or int4, got '%s'\n", formatName.c_str());
    return 2;
  }
  topK = std::min(topK, E);

  kt::cpuops::keepFreedMemoryInHeap(); // as an Executor sets it (the probe does too)
  kt::ThreadPool pool(threads);
  // 1.5 GiB of routed copies: a 64-expert int8 layer (~0.55 GB) never finds its experts in an L3.
  const ExpertCopies routed(format, inter, size_t(1536) << 20);
  std::printf("kt_bench_moe: %d threads, %d experts of %lld x %lld (%s), top-%d, %zu routed copies "
              "(%.0f MiB)\n",
              threads, E, (long long)inter, (long long)kHidden, formatName.c_str(), topK,
              routed.copies, double(routed.blob.size) / (1 << 20));
  std::printf("%-7s %-5s %-7s %-8s %10s %10s %10s %10s\n", "tokens", "skew", "shared", "max/mean",
              "best ms", "median ms", "routed GF/s", "all GF/s");
  for (double sharedInter : shareds) {
    // The shared expert's own copies: 8 are enough (it is one expert per layer).
    const bool hasShared = sharedInter > 0;
    ExpertCopies shared(
        format, hasShared ? int64_t(sharedInter) : 16,
        hasShared ? 8 * aligned(quant::packedBytes(format, kHidden, int64_t(sharedInter))) * 3 : 0);
    for (int64_t T : tokenCounts)
      for (double skew : skews) {
        int K = 0;
        double maxOverMean = 0;
        const std::vector<int32_t> chosen = route(T, E, topK, skew, hasShared, &K, &maxOverMean);
        std::vector<float> weight(chosen.size(), 1.0f / topK);
        std::vector<float> x(static_cast<size_t>(T * kHidden)), y(x.size());
        std::mt19937 rng(3);
        std::normal_distribution<float> nd;
        for (float& v : x)
          v = nd(rng);
        size_t layer = 0;
        auto call = [&] {
          const size_t base = layer++ * size_t(E);
          auto expert = [&](int e) {
            return e == E ? shared.at(layer) : routed.at(base + size_t(e));
          };
          std::fill(y.begin(), y.end(), 0.f);
          kt::cpuops::routedExpertsOver(pool, expert, E + (hasShared ? 1 : 0), chosen.data(),
                                        weight.data(), T, K, x.data(), kHidden, y.data());
        };
        call(); // warm-up: the heap's intermediates
        double best = 0, median = 0;
        timeBestMedian(call, minTime, &best, &median);
        const double routedFlops = 2.0 * 3.0 * kHidden * double(inter) * double(T * topK);
        const double sharedFlops = hasShared ? 2.0 * 3.0 * kHidden * sharedInter * double(T) : 0;
        std::printf("%-7lld %-5.2f %-7.0f %-8.2f %10.3f %10.3f %10.1f %10.1f\n", (long long)T, skew,
                    sharedInter, maxOverMean, best * 1e3, median * 1e3, routedFlops / median * 1e-9,
                    (routedFlops + sharedFlops) / median * 1e-9);
      }
  }
  return 0;
}
