// AdamW, the learning-rate schedules and gradient clipping against hand-computed references of
// torch.optim.AdamW, transformers' schedulers and torch.nn.utils.clip_grad_norm_.
#include "runtime/train/Optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace kt::train {
namespace {

// torch.optim.AdamW._single_tensor_adamw written out for one scalar (double precision).
struct RefAdamW {
  double p, m = 0, v = 0;
  void step(double g, const AdamWConfig& c, double lr, int t) {
    p *= 1 - lr * c.weightDecay;
    m = c.beta1 * m + (1 - c.beta1) * g;
    v = c.beta2 * v + (1 - c.beta2) * g * g;
    const double bc1 = 1 - std::pow(c.beta1, t), bc2 = 1 - std::pow(c.beta2, t);
    p -= lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + c.eps);
  }
};

TEST(AdamW, MatchesTorchFormulaOverSeveralStepsWithWeightDecay) {
  AdamWConfig c;
  c.beta1 = 0.8;
  c.beta2 = 0.95;
  c.eps = 1e-6;
  c.weightDecay = 0.1;
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  const size_t n = 37; // odd size
  std::vector<float> p(n), m(n, 0.f), v(n, 0.f), g(n);
  std::vector<RefAdamW> ref;
  for (size_t i = 0; i < n; ++i) {
    p[i] = float(nd(rng));
    ref.push_back({double(p[i])});
  }
  for (int t = 1; t <= 6; ++t) {
    const double lr = 0.01 * t; // the schedule may change lr every step
    for (size_t i = 0; i < n; ++i)
      g[i] = float(nd(rng) * (i % 5 == 0 ? 1e-3 : 1.0));
    adamwUpdate(p.data(), g.data(), m.data(), v.data(), n, c, lr, t);
    for (size_t i = 0; i < n; ++i)
      ref[i].step(double(g[i]), c, lr, t);
  }
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(p[i], ref[i].p, 1e-5 * (1 + std::fabs(ref[i].p))) << i;
    EXPECT_NEAR(m[i], ref[i].m, 1e-6) << i;
    EXPECT_NEAR(v[i], ref[i].v, 1e-6) << i;
  }
}

TEST(AdamW, FirstStepMovesEachParameterByLrTimesSign) {
  // With zero moments, step 1 is p -= lr · g/(|g| + eps'): about lr in the gradient's direction.
  AdamWConfig c;
  std::vector<float> p = {1.f, -2.f, 0.5f}, m(3, 0.f), v(3, 0.f), g = {0.3f, -4.f, 0.f};
  adamwUpdate(p.data(), g.data(), m.data(), v.data(), 3, c, 0.01, 1);
  EXPECT_NEAR(p[0], 1.f - 0.01f, 1e-6);
  EXPECT_NEAR(p[1], -2.f + 0.01f, 1e-6);
  EXPECT_EQ(p[2], 0.5f); // zero gradient: no move (and no weight decay here)
}

TEST(AdamW, WeightDecayIsDecoupled) {
  // Zero gradient: only p *= 1 - lr·wd (L2 regularisation would instead feed wd·p into m and v).
  AdamWConfig c;
  c.weightDecay = 0.5;
  std::vector<float> p = {2.f}, m = {0.f}, v = {0.f}, g = {0.f};
  adamwUpdate(p.data(), g.data(), m.data(), v.data(), 1, c, 0.1, 1);
  EXPECT_NEAR(p[0], 2.f * (1 - 0.05f), 1e-6);
  EXPECT_EQ(m[0], 0.f);
}

TEST(Schedule, WarmupThenCosineLikeTransformers) {
  // get_cosine_schedule_with_warmup(warmup=4, total=20) at scheduler steps 0..20.
  for (int64_t s = 0; s <= 20; ++s) {
    const double want =
        s < 4 ? double(s) / 4 : 0.5 * (1 + std::cos(M_PI * double(s - 4) / double(20 - 4)));
    EXPECT_NEAR(scheduledLr(Schedule::Cosine, 2.0, s, 4, 20), 2.0 * want, 1e-12) << s;
  }
  EXPECT_EQ(scheduledLr(Schedule::Cosine, 1.0, 0, 4, 20), 0.0);           // warmup starts at 0
  EXPECT_NEAR(scheduledLr(Schedule::Cosine, 1.0, 12, 4, 20), 0.5, 1e-12); // half way: lr/2
  EXPECT_NEAR(scheduledLr(Schedule::Cosine, 1.0, 20, 4, 20), 0.0, 1e-12);
}

TEST(Schedule, ConstantWithAndWithoutWarmup) {
  EXPECT_EQ(scheduledLr(Schedule::Constant, 0.01, 0, 0, 5), 0.01);
  EXPECT_EQ(scheduledLr(Schedule::Constant, 0.01, 4, 0, 5), 0.01);
  EXPECT_NEAR(scheduledLr(Schedule::Constant, 0.01, 1, 2, 5), 0.005, 1e-15);
  EXPECT_EQ(scheduledLr(Schedule::Constant, 0.01, 2, 2, 5), 0.01);
  EXPECT_EQ(parseSchedule("cosine"), Schedule::Cosine);
  EXPECT_THROW(parseSchedule("linear"), std::exception);
}

TEST(Clip, FactorLikeClipGradNorm) {
  EXPECT_EQ(clipFactor(10.0, 0.0), 1.0); // off
  EXPECT_EQ(clipFactor(0.5, 1.0), 1.0);  // under the limit: untouched
  EXPECT_NEAR(clipFactor(4.0, 1.0), 1.0 / (4.0 + 1e-6), 1e-15);
}

} // namespace
} // namespace kt::train
