// The CPU moe op's expert path (cpuops::routedExpertsOver) over a prompt long enough that an
// expert chosen by every token (as the shared expert is) is split into token chunks on 4 threads
// and not on 1: the outputs must be the same bits either way, and match a scalar SwiGLU reference.
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/support/ThreadPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr int64_t kHidden = 64, kInter = 48, kTokens = 301;
constexpr int kExperts = 5, kTopK = 2;

struct Experts {
  std::vector<std::vector<float>> gate, up,
      down; // f32 [inter, hidden], [inter, hidden], [hidden, inter]
  std::vector<std::vector<uint8_t>> packed[3]; // the same, packed int8

  Experts() {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.f, 0.2f);
    auto matrix = [&](int64_t n) {
      std::vector<float> m(static_cast<size_t>(n));
      for (float& v : m)
        v = nd(rng);
      return m;
    };
    for (int e = 0; e < kExperts; ++e) {
      gate.push_back(matrix(kInter * kHidden));
      up.push_back(matrix(kInter * kHidden));
      down.push_back(matrix(kHidden * kInter));
      const std::vector<float>* src[3] = {&gate.back(), &up.back(), &down.back()};
      for (int m = 0; m < 3; ++m) {
        const int64_t rows = m == 2 ? kHidden : kInter, cols = m == 2 ? kInter : kHidden;
        std::vector<uint8_t> p(
            kt::cpu::quant::packedBytes(kt::cpu::quant::WeightFormat::Int8, rows, cols) + 64);
        kt::cpu::quant::packWeights(kt::cpu::quant::WeightFormat::Int8, src[m]->data(), rows, cols,
                                    p.data());
        packed[m].push_back(std::move(p));
      }
    }
  }

  kt::cpuops::ExpertMatrices at(int e, bool int8) const {
    auto view = [&](int m, int64_t rows, int64_t cols) {
      kt::cpu::MatrixView v;
      const std::vector<float>& f = m == 0   ? gate[size_t(e)]
                                    : m == 1 ? up[size_t(e)]
                                             : down[size_t(e)];
      v.data = int8 ? packed[m][size_t(e)].data() : reinterpret_cast<const uint8_t*>(f.data());
      v.rows = rows;
      v.cols = cols;
      v.packed = int8 ? int32_t(kt::cpu::quant::WeightFormat::Int8) : -1;
      return v;
    };
    return {view(0, kInter, kHidden), view(1, kInter, kHidden), view(2, kHidden, kInter)};
  }
};

// Every token picks expert 0 (like a shared expert: 301 tokens, over the 4-thread chunk limit of
// max(128, 2 x 301 / 4) = 151) and one other.
void route(std::vector<int32_t>* chosen, std::vector<float>* weight) {
  std::mt19937 rng(5);
  for (int64_t t = 0; t < kTokens; ++t) {
    chosen->push_back(0);
    chosen->push_back(1 + int32_t(rng() % (kExperts - 1)));
    weight->push_back(0.75f);
    weight->push_back(0.25f);
  }
}

std::vector<float> run(const Experts& ex, bool int8, int threads, const std::vector<float>& x) {
  std::vector<int32_t> chosen;
  std::vector<float> weight;
  route(&chosen, &weight);
  kt::ThreadPool pool(threads);
  std::vector<float> y(x.size(), 0.f);
  kt::cpuops::routedExpertsOver(
      pool, [&](int e) { return ex.at(e, int8); }, kExperts, chosen.data(), weight.data(), kTokens,
      kTopK, x.data(), kHidden, y.data());
  return y;
}

std::vector<float> input() {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(kTokens * kHidden));
  for (float& v : x)
    v = nd(rng);
  return x;
}

TEST(MoeExperts, SplitTokenChunksGiveTheSameBits) {
  const Experts ex;
  const std::vector<float> x = input();
  for (bool int8 : {false, true}) {
    const std::vector<float> one = run(ex, int8, 1, x), four = run(ex, int8, 4, x);
    ASSERT_EQ(one.size(), four.size());
    EXPECT_EQ(0, std::memcmp(one.data(), four.data(), one.size() * sizeof(float)))
        << (int8 ? "int8" : "f32");
  }
}

TEST(MoeExperts, MatchesTheScalarSwiGluReference) {
  const Experts ex;
  const std::vector<float> x = input();
  const std::vector<float> y = run(ex, false, 4, x);
  std::vector<int32_t> chosen;
  std::vector<float> weight;
  route(&chosen, &weight);
  double worst = 0;
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<double> ref(kHidden, 0.0);
    for (int k = 0; k < kTopK; ++k) {
      const int e = chosen[size_t(t * kTopK + k)];
      std::vector<double> h(kInter);
      for (int64_t i = 0; i < kInter; ++i) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < kHidden; ++c) {
          g += double(ex.gate[size_t(e)][size_t(i * kHidden + c)]) * x[size_t(t * kHidden + c)];
          u += double(ex.up[size_t(e)][size_t(i * kHidden + c)]) * x[size_t(t * kHidden + c)];
        }
        h[size_t(i)] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int64_t o = 0; o < kHidden; ++o) {
        double d = 0;
        for (int64_t i = 0; i < kInter; ++i)
          d += double(ex.down[size_t(e)][size_t(o * kInter + i)]) * h[size_t(i)];
        ref[size_t(o)] += weight[size_t(t * kTopK + k)] * d;
      }
    }
    for (int64_t o = 0; o < kHidden; ++o)
      worst = std::max(worst, std::fabs(ref[size_t(o)] - y[size_t(t * kHidden + o)]));
  }
  EXPECT_LT(worst, 1e-4);
}

} // namespace
