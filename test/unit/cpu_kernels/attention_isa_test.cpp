// The vectorized attention kernels (AVX2, AVX-512, portable block form) against the scalar
// per-head reference, over random odd shapes: head dims that leave a tail in every register width,
// GQA groups of 1..4, MLA head counts that do not split evenly over the threads, 1-token decode and
// multi-token prefill with and without earlier cached positions.
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/attention/AttentionSplit.h"
#include "runtime/support/ThreadPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

using namespace kt;
using namespace kt::cpu;

namespace {

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v)
    x = nd(rng);
  return v;
}

// Largest |a - b| relative to max(1, |b|).
double maxRelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
  return worst;
}

TEST(AttentionIsa, GqaMatchesReferenceOnOddShapes) {
  std::mt19937 rng(11);
  ThreadPool pool(3);
  int checked = 0;
  for (quant::Isa isa : quant::kAllIsas) {
    if (!quant::isaSupported(isa)) {
      std::printf("skipping %s: not supported by this CPU\n", quant::isaName(isa));
      continue;
    }
    for (int trial = 0; trial < 12; ++trial) {
      const int kvHeads = 1 + int(rng() % 3), group = 1 + int(rng() % 4);
      const int heads = kvHeads * group, hd = 1 + int(rng() % 70);
      const int64_t len = trial % 3 == 0 ? 1 : 1 + int64_t(rng() % 9), pos0 = int64_t(rng() % 40);
      const int64_t ctx = pos0 + len;
      // Scores large enough that the softmax is far from uniform.
      auto q = randn(size_t(len * heads * hd), rng, 2.0f);
      auto k = randn(size_t(ctx * kvHeads * hd), rng), v = randn(size_t(ctx * kvHeads * hd), rng);
      std::vector<float> want(q.size()), got(q.size(), NAN);
      const double scale = 1.0 / std::sqrt(double(hd));
      gqaAttentionRef(pool, q.data(), len, heads, kvHeads, hd, k.data(), v.data(), pos0, scale,
                      want.data());
      gqaAttentionIsa(isa, pool, q.data(), len, heads, kvHeads, hd, k.data(), v.data(), pos0, scale,
                      got.data());
      ASSERT_LT(maxRelErr(got, want), 2e-5)
          << quant::isaName(isa) << " heads " << heads << " kv " << kvHeads << " hd " << hd
          << " len " << len << " pos0 " << pos0;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(AttentionIsa, MlaMatchesReferenceOnOddShapes) {
  std::mt19937 rng(12);
  int checked = 0;
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (quant::Isa isa : quant::kAllIsas) {
      if (!quant::isaSupported(isa))
        continue;
      for (int trial = 0; trial < 8; ++trial) {
        const int heads = 1 + int(rng() % 7), latent = 1 + int(rng() % 90),
                  rope = 1 + int(rng() % 40);
        const int64_t len = trial % 2 ? 1 : 1 + int64_t(rng() % 6), pos0 = int64_t(rng() % 33);
        const int64_t ctx = pos0 + len;
        auto qa = randn(size_t(len * heads * latent), rng, 0.5f);
        auto qp = randn(size_t(len * heads * rope), rng, 0.5f);
        auto c = randn(size_t(ctx * latent), rng), kpe = randn(size_t(ctx * rope), rng);
        std::vector<float> want(qa.size()), got(qa.size(), NAN);
        mlaAttentionRef(pool, qa.data(), qp.data(), len, heads, latent, rope, c.data(), kpe.data(),
                        pos0, 0.3, want.data());
        mlaAttentionIsa(isa, pool, qa.data(), qp.data(), len, heads, latent, rope, c.data(),
                        kpe.data(), pos0, 0.3, got.data());
        ASSERT_LT(maxRelErr(got, want), 2e-5)
            << quant::isaName(isa) << " threads " << threads << " heads " << heads << " latent "
            << latent << " rope " << rope << " len " << len << " pos0 " << pos0;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// Long contexts: the SIMD kernels run an online softmax over blocks of 64 keys and heads in
// passes of 16 (groups of 4), so contexts of several blocks with odd remainders, up to 20 heads
// (two passes, partial groups) and a rising score scale (the running max moves between blocks,
// rescaling what earlier blocks summed) must still match the reference. Includes the
// DeepSeek-V2-Lite decode shape (16 heads, latent 512, rope 64).
TEST(AttentionIsa, MlaLongContextBlocksMatchReference) {
  std::mt19937 rng(21);
  int checked = 0;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (quant::Isa isa : quant::kAllIsas) {
      if (!quant::isaSupported(isa) || isa == quant::Isa::Scalar)
        continue;
      for (int trial = 0; trial < 5; ++trial) {
        const bool real = trial == 0;
        const int heads = real ? 16 : 1 + int(rng() % 20),
                  latent = real ? 512 : 1 + int(rng() % 150),
                  rope = real ? 64 : 1 + int(rng() % 40);
        const int64_t len = trial % 2 ? 1 : 1 + int64_t(rng() % 3),
                      pos0 = 60 + int64_t(rng() % 300);
        const int64_t ctx = pos0 + len;
        auto qa = randn(size_t(len * heads * latent), rng, 0.3f);
        auto qp = randn(size_t(len * heads * rope), rng, 0.3f);
        auto c = randn(size_t(ctx * latent), rng), kpe = randn(size_t(ctx * rope), rng);
        for (int64_t s = 0; s < ctx; ++s) // later keys score higher: the max moves block by block
          for (int i = 0; i < rope; ++i)
            kpe[size_t(s * rope + i)] += 0.02f * float(s) * (qp[size_t(i)] > 0 ? 1.f : -1.f);
        std::vector<float> want(qa.size()), got(qa.size(), NAN);
        mlaAttentionRef(pool, qa.data(), qp.data(), len, heads, latent, rope, c.data(), kpe.data(),
                        pos0, 0.1, want.data());
        mlaAttentionIsa(isa, pool, qa.data(), qp.data(), len, heads, latent, rope, c.data(),
                        kpe.data(), pos0, 0.1, got.data());
        ASSERT_LT(maxRelErr(got, want), 2e-5)
            << quant::isaName(isa) << " threads " << threads << " heads " << heads << " latent "
            << latent << " rope " << rope << " len " << len << " pos0 " << pos0;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// Decode attention split over the keys (one range per thread, merged by log-sum-exp) equals the
// reference; it declines (returns false, writes nothing) below 64 keys per range or on one thread.
TEST(AttentionIsa, MlaDecodeSplitMatchesReference) {
  if (!quant::isaSupported(quant::Isa::Avx2))
    GTEST_SKIP() << "no AVX2: the split has no kernel to run";
  std::mt19937 rng(23);
  int split = 0;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int trial = 0; trial < 8; ++trial) {
      const bool real = trial == 0;
      const int heads = real ? 16 : 1 + int(rng() % 20), latent = real ? 512 : 1 + int(rng() % 150),
                rope = real ? 64 : 1 + int(rng() % 40);
      const int64_t ctx = trial == 1 ? 100 : 1 + int64_t(rng() % 700);
      auto qa = randn(size_t(heads * latent), rng, 0.3f),
           qp = randn(size_t(heads * rope), rng, 0.3f);
      auto c = randn(size_t(ctx * latent), rng), kpe = randn(size_t(ctx * rope), rng);
      for (int64_t s = 0; s < ctx; ++s) // later keys score higher: the ranges' maxima differ
        for (int i = 0; i < rope; ++i)
          kpe[size_t(s * rope + i)] += 0.02f * float(s) * (qp[size_t(i)] > 0 ? 1.f : -1.f);
      std::vector<float> want(qa.size()), got(qa.size(), NAN);
      mlaAttentionRef(pool, qa.data(), qp.data(), 1, heads, latent, rope, c.data(), kpe.data(),
                      ctx - 1, 0.1, want.data());
      const bool ran = mlaDecodeSplit(pool, qa.data(), qp.data(), heads, latent, rope, c.data(),
                                      kpe.data(), ctx, 0.1, got.data());
      EXPECT_EQ(ran, threads > 1 && ctx >= 128) << "threads " << threads << " ctx " << ctx;
      if (!ran) {
        EXPECT_TRUE(std::isnan(got[0])) << "declined but wrote the output";
        continue;
      }
      ASSERT_LT(maxRelErr(got, want), 2e-5)
          << "threads " << threads << " heads " << heads << " latent " << latent << " rope " << rope
          << " ctx " << ctx;
      ++split;
    }
  }
  EXPECT_GT(split, 0);
}

TEST(AttentionIsa, GqaLongContextBlocksMatchReference) {
  std::mt19937 rng(22);
  int checked = 0;
  ThreadPool pool(2);
  for (quant::Isa isa : quant::kAllIsas) {
    if (!quant::isaSupported(isa) || isa == quant::Isa::Scalar)
      continue;
    for (int trial = 0; trial < 6; ++trial) {
      const int kvHeads = 1 + int(rng() % 3), group = 1 + int(rng() % 8);
      const int heads = kvHeads * group, hd = 1 + int(rng() % 130);
      const int64_t len = trial % 2 ? 1 : 1 + int64_t(rng() % 4), pos0 = 64 + int64_t(rng() % 200);
      const int64_t ctx = pos0 + len;
      auto q = randn(size_t(len * heads * hd), rng, 1.0f);
      auto k = randn(size_t(ctx * kvHeads * hd), rng), v = randn(size_t(ctx * kvHeads * hd), rng);
      const double scale = 1.0 / std::sqrt(double(hd));
      std::vector<float> want(q.size()), got(q.size(), NAN);
      gqaAttentionRef(pool, q.data(), len, heads, kvHeads, hd, k.data(), v.data(), pos0, scale,
                      want.data());
      gqaAttentionIsa(isa, pool, q.data(), len, heads, kvHeads, hd, k.data(), v.data(), pos0, scale,
                      got.data());
      ASSERT_LT(maxRelErr(got, want), 2e-5) << quant::isaName(isa) << " heads " << heads << " kv "
                                            << kvHeads << " hd " << hd << " pos0 " << pos0;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

// Scores spread over a wide range (the exp polynomial's whole domain, down to the clamp) keep the
// probabilities summing to 1: with v = all ones the output is exactly the sum of the weights.
TEST(AttentionIsa, SoftmaxWeightsSumToOneOverWideScoreRange) {
  ThreadPool pool(1);
  const int hd = 19;
  const int64_t ctx = 300;
  std::mt19937 rng(13);
  auto q = randn(size_t(hd), rng, 10.0f);
  auto k = randn(size_t(ctx * hd), rng, 10.0f);
  std::vector<float> v(size_t(ctx * hd), 1.0f);
  for (quant::Isa isa : quant::kAllIsas) {
    if (!quant::isaSupported(isa))
      continue;
    std::vector<float> out(static_cast<size_t>(hd));
    gqaAttentionIsa(isa, pool, q.data(), 1, 1, 1, hd, k.data(), v.data(), ctx - 1, 1.0, out.data());
    for (float o : out)
      EXPECT_NEAR(o, 1.0f, 1e-5) << quant::isaName(isa);
  }
}

} // namespace
