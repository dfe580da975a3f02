// Finite-difference checks (f64) of the MoE layer: dx (through the experts, the routing weights and
// the shared expert and its gate) and the adapters of every routed and shared expert, for each
// routing variant. Test data are drawn until every token's top-k choice has a clear margin, so the
// piecewise-constant selection cannot flip under the finite-difference steps.
#include "GradTestUtil.h"

#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <limits>

namespace kt::cpu::grad::test {
namespace {

// The smallest gap, over the decisions routeToken makes (kept groups, then top-k), between the last
// chosen and the first rejected score.
double routingMargin(const double* logits, const float* bias, const MoeRoutingParams& p) {
  const int E = p.numExperts;
  std::vector<double> s(static_cast<size_t>(E));
  if (p.scoring == MoeScoring::Softmax) {
    double mx = *std::max_element(logits, logits + E), sum = 0;
    for (int i = 0; i < E; ++i)
      sum += (s[size_t(i)] = std::exp(logits[i] - mx));
    for (double& v : s)
      v /= sum;
  } else {
    for (int i = 0; i < E; ++i)
      s[size_t(i)] = 1 / (1 + std::exp(-logits[i]));
  }
  for (int i = 0; i < E && bias; ++i)
    s[size_t(i)] += bias[i];
  double margin = std::numeric_limits<double>::infinity();
  if (p.method != MoeTopk::Greedy && p.nGroup > 1) {
    const int per = E / p.nGroup;
    std::vector<double> gs(size_t(p.nGroup));
    for (int g = 0; g < p.nGroup; ++g) {
      std::vector<double> grp(s.begin() + g * per, s.begin() + (g + 1) * per);
      std::sort(grp.rbegin(), grp.rend());
      gs[size_t(g)] = p.method == MoeTopk::GroupLimitedGreedy ? grp[0] : grp[0] + grp[1];
    }
    std::vector<double> sorted = gs;
    std::sort(sorted.rbegin(), sorted.rend());
    margin = sorted[size_t(p.topkGroup - 1)] - sorted[size_t(p.topkGroup)];
    const double cut = sorted[size_t(p.topkGroup - 1)];
    for (int i = 0; i < E; ++i)
      if (gs[size_t(i / per)] < cut)
        s[size_t(i)] = 0.0;
  }
  std::sort(s.rbegin(), s.rend());
  return std::min(margin, s[size_t(p.topK - 1)] - s[size_t(p.topK)]);
}

struct MoeCase {
  const char* name;
  MoeScoring scoring;
  MoeTopk method;
  int topK, nGroup, topkGroup;
  bool norm;
  double rsf;
  bool bias, shared, sharedGate;
};

struct MoeSetup {
  WeightStore ws;
  LoraSet<double> loras;
  std::vector<MlpWeightsT<double>> experts;
  MlpWeightsT<double> shared;
  MoeWeightsT<double> w;
  MoeRoutingParams p;
  std::vector<double> x, dy;

  MoeSetup(const MoeCase& c, uint32_t seed, int64_t rows, int64_t H, int64_t I, int E) : ws(seed) {
    p.numExperts = E;
    p.topK = c.topK;
    p.scoring = c.scoring;
    p.method = c.method;
    p.nGroup = c.nGroup;
    p.topkGroup = c.topkGroup;
    p.normTopkProb = c.norm;
    p.routedScalingFactor = c.rsf;
    auto mlp = [&](int64_t inter) {
      MlpWeightsT<double> m;
      m.gate = {ws.mat(inter, H), {}, loras.add(ws, inter, H, 2, 2.0)};
      m.up = {ws.mat(inter, H), {}, loras.add(ws, inter, H, 2, 2.0)};
      m.down = {ws.mat(H, inter), {}, loras.add(ws, H, inter, 2, 2.0)};
      return m;
    };
    for (int e = 0; e < E; ++e)
      experts.push_back(mlp(I));
    w.router = ws.mat(E, H, 0.8f);
    if (c.bias)
      w.correctionBias = ws.view(ws.randn(size_t(E), 0.1f), 1, E);
    w.experts = experts.data();
    if (c.shared) {
      shared = mlp(2 * I);
      w.shared = &shared;
      if (c.sharedGate)
        w.sharedExpertGate = ws.mat(1, H, 0.5f);
    }
    x = ws.randnT<double>(size_t(rows * H), 1.0);
    dy = ws.randnT<double>(x.size(), 1.0);
  }

  double minMargin(int64_t rows, int64_t H) const {
    const int E = p.numExperts;
    std::vector<float> bias(static_cast<size_t>(E));
    if (w.correctionBias.data)
      w.correctionBias.rowToF32(0, bias.data());
    double m = std::numeric_limits<double>::infinity();
    for (int64_t t = 0; t < rows; ++t) {
      std::vector<double> l(static_cast<size_t>(E));
      for (int e = 0; e < E; ++e)
        for (int64_t k = 0; k < H; ++k)
          l[size_t(e)] += x[size_t(t * H + k)] * double(w.router.at(e, k));
      m = std::min(m, routingMargin(l.data(), w.correctionBias.data ? bias.data() : nullptr, p));
    }
    return m;
  }
};

TEST(GradFd, MoeVariantsWithExpertLora) {
  ThreadPool pool(2);
  const MoeCase cases[] = {
      {"mixtral: softmax top-2, renormalized", MoeScoring::Softmax, MoeTopk::Greedy, 2, 1, 1, true,
       1.0, false, false, false},
      {"deepseek-v2: softmax group_limited_greedy, scaled, shared", MoeScoring::Softmax,
       MoeTopk::GroupLimitedGreedy, 3, 4, 2, false, 2.0, false, true, false},
      {"deepseek-v3: sigmoid noaux_tc + bias, renormalized, scaled, shared", MoeScoring::Sigmoid,
       MoeTopk::NoauxTc, 3, 4, 2, true, 2.5, true, true, false},
      {"qwen2-moe: softmax top-2, gated shared expert", MoeScoring::Softmax, MoeTopk::Greedy, 2, 1,
       1, false, 1.0, false, true, true},
  };
  const int64_t rows = 6, H = 8, I = 6;
  const int E = 8;
  for (const MoeCase& c : cases) {
    std::unique_ptr<MoeSetup> s;
    for (uint32_t seed = 1; seed < 500; ++seed) {
      s = std::make_unique<MoeSetup>(c, seed, rows, H, I, E);
      if (s->minMargin(rows, H) > 2e-3)
        break;
    }
    ASSERT_GT(s->minMargin(rows, H), 2e-3) << c.name << ": no seed without near-ties";
    auto f = [&] {
      std::vector<double> y(s->x.size());
      moeForward(pool, s->p, s->w, s->x.data(), rows, y.data());
      return dotd(s->dy, y);
    };
    std::vector<double> dx(s->x.size());
    moeBackward(pool, s->p, s->w, s->x.data(), rows, s->dy.data(), dx.data());
    // Experts no token chose have zero adapter gradients; check the others.
    checkGradient(std::string(c.name) + " dx", f, s->x.data(), s->x.size(), dx.data());
    int i = 0, checked = 0;
    for (auto& h : s->loras.items()) {
      bool used = std::any_of(h.dB.begin(), h.dB.end(), [](double v) { return v != 0.0; });
      if (used) {
        checkGradient(std::string(c.name) + " dA[" + std::to_string(i) + "]", f, h.A.data(),
                      h.A.size(), h.dA.data());
        checkGradient(std::string(c.name) + " dB[" + std::to_string(i) + "]", f, h.B.data(),
                      h.B.size(), h.dB.data());
        ++checked;
      } else {
        // Unused: its output really does not depend on it.
        const double base = f();
        h.B[0] += 0.5;
        EXPECT_EQ(f(), base) << c.name << " adapter " << i;
        h.B[0] -= 0.5;
      }
      ++i;
    }
    EXPECT_GE(checked, 9) << c.name << ": too few experts were chosen to exercise expert LoRA";
  }
}

} // namespace
} // namespace kt::cpu::grad::test
