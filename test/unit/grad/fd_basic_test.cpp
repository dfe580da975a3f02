// Finite-difference checks (f64) of linear, rms_norm, add, the SwiGLU MLP, lm_head + cross-entropy
// and the routing weights: every input gradient and every adapter gradient.
#include "GradTestUtil.h"

#include "runtime/support/ThreadPool.h"

namespace kt::cpu::grad::test {

namespace {

TEST(GradFd, LinearWithLoraAndBiasF32AndBf16Weights) {
  ThreadPool pool(2);
  for (DType dt : {DType::F32, DType::BF16}) {
    WeightStore ws(11);
    const int64_t rows = 5, in = 7, out = 6;
    LoraSet<double> loras;
    ProjectionT<double> p{ws.mat(out, in, 0.3f, dt), ws.mat(1, out),
                          loras.add(ws, out, in, 3, 2.0)};
    std::vector<double> x = ws.randnT<double>(size_t(rows * in), 1.0),
                        dy = ws.randnT<double>(size_t(rows * out), 1.0);
    auto f = [&] {
      std::vector<double> y(dy.size());
      linearForward(pool, p, x.data(), rows, y.data());
      return dotd(dy, y);
    };
    std::vector<double> dx(x.size());
    linearBackward(pool, p, x.data(), rows, dy.data(), dx.data());
    checkAll(std::string("linear ") + dtypeName(dt), f, x, dx, loras);
  }
}

TEST(GradFd, LinearAccumulatesAdapterGradients) {
  ThreadPool pool(2);
  WeightStore ws(12);
  const int64_t rows = 4, in = 5, out = 3;
  LoraSet<double> loras;
  ProjectionT<double> p{ws.mat(out, in), MatrixView{}, loras.add(ws, out, in, 2, 1.0)};
  std::vector<double> x = ws.randnT<double>(size_t(rows * in), 1.0),
                      dy = ws.randnT<double>(size_t(rows * out), 1.0);
  linearBackward(pool, p, x.data(), rows, dy.data(), static_cast<double*>(nullptr));
  std::vector<double> once = loras.items()[0].dA;
  linearBackward(pool, p, x.data(), rows, dy.data(), static_cast<double*>(nullptr));
  for (size_t i = 0; i < once.size(); ++i)
    EXPECT_NEAR(loras.items()[0].dA[i], 2 * once[i], 1e-12);
}

TEST(GradFd, RmsNorm) {
  ThreadPool pool(2);
  WeightStore ws(13);
  const int64_t rows = 4, dim = 9;
  MatrixView w = ws.normWeight(dim);
  std::vector<double> x = ws.randnT<double>(size_t(rows * dim), 1.0),
                      dy = ws.randnT<double>(x.size(), 1.0);
  auto f = [&] {
    std::vector<double> y(x.size());
    rmsNormForward(pool, x.data(), rows, dim, w, 1e-5, y.data());
    return dotd(dy, y);
  };
  std::vector<double> dx(x.size());
  rmsNormBackward(pool, x.data(), rows, dim, w, 1e-5, dy.data(), dx.data());
  checkGradient("rms_norm dx", f, x.data(), x.size(), dx.data());
  // In place (dx aliasing dy) gives the same result.
  std::vector<double> inPlace = dy;
  rmsNormBackward(pool, x.data(), rows, dim, w, 1e-5, inPlace.data(), inPlace.data());
  for (size_t i = 0; i < dx.size(); ++i)
    EXPECT_DOUBLE_EQ(inPlace[i], dx[i]);
}

TEST(GradFd, Add) {
  std::vector<double> dy = {1, -2, 3}, da(3), db(3);
  addBackward(dy.data(), 3, da.data(), db.data());
  EXPECT_EQ(da, dy);
  EXPECT_EQ(db, dy);
}

TEST(GradFd, SwigluMlpWithLoraOnEveryProjection) {
  ThreadPool pool(2);
  WeightStore ws(14);
  const int64_t rows = 5, H = 8, I = 12;
  LoraSet<double> loras;
  MlpWeightsT<double> w;
  w.gate = {ws.mat(I, H), {}, loras.add(ws, I, H)};
  w.up = {ws.mat(I, H), {}, loras.add(ws, I, H)};
  w.down = {ws.mat(H, I), {}, loras.add(ws, H, I)};
  std::vector<double> x = ws.randnT<double>(size_t(rows * H), 1.0),
                      dy = ws.randnT<double>(x.size(), 1.0);
  auto f = [&] {
    std::vector<double> y(x.size());
    mlpForward(pool, w, x.data(), rows, y.data());
    return dotd(dy, y);
  };
  std::vector<double> dx(x.size());
  mlpBackward(pool, w, x.data(), rows, dy.data(), dx.data());
  checkAll("mlp", f, x, dx, loras);
}

TEST(GradFd, SharedLoraFactorAccumulatesFromBothProjections) {
  // PEFT's fused gate_up adapter: gate and up share A (and its gradient buffer).
  ThreadPool pool(2);
  WeightStore ws(15);
  const int64_t rows = 4, H = 6, I = 5;
  const int r = 2;
  std::vector<double> A = ws.randnT<double>(size_t(r * H), 0.5),
                      Bg = ws.randnT<double>(size_t(I * r), 0.5),
                      Bu = ws.randnT<double>(size_t(I * r), 0.5), dA(A.size()), dBg(Bg.size()),
                      dBu(Bu.size());
  LoraT<double> lg{A.data(), Bg.data(), r, 2.0, dA.data(), dBg.data()};
  LoraT<double> lu{A.data(), Bu.data(), r, 2.0, dA.data(), dBu.data()};
  MlpWeightsT<double> w;
  w.gate = {ws.mat(I, H), {}, &lg};
  w.up = {ws.mat(I, H), {}, &lu};
  w.down = {ws.mat(H, I), {}, nullptr};
  std::vector<double> x = ws.randnT<double>(size_t(rows * H), 1.0),
                      dy = ws.randnT<double>(x.size(), 1.0);
  auto f = [&] {
    std::vector<double> y(x.size());
    mlpForward(pool, w, x.data(), rows, y.data());
    return dotd(dy, y);
  };
  std::vector<double> dx(x.size());
  mlpBackward(pool, w, x.data(), rows, dy.data(), dx.data());
  checkGradient("shared A", f, A.data(), A.size(), dA.data());
  checkGradient("gate B", f, Bg.data(), Bg.size(), dBg.data());
  checkGradient("up B", f, Bu.data(), Bu.size(), dBu.data());
}

TEST(GradFd, LmHeadCrossEntropy) {
  ThreadPool pool(2);
  WeightStore ws(16);
  const int64_t batch = 2, L = 5, H = 8, V = 11;
  MatrixView head = ws.mat(V, H, 0.5f);
  std::vector<double> x = ws.randnT<double>(size_t(batch * L * H), 1.0);
  std::vector<int32_t> labels = {3, 7, 1, 10, 0, /**/ 5, kIgnoreIndex, 2, 2, 9};
  auto f = [&] { return lmHeadLossForward(pool, head, x.data(), batch, L, labels.data()).loss; };
  std::vector<double> dx(x.size());
  LossResult r = lmHeadLossBackward(pool, head, x.data(), batch, L, labels.data(), dx.data());
  EXPECT_EQ(r.count, 7); // 2 x 4 shifted targets, one ignored
  EXPECT_NEAR(r.loss, f(), 1e-14);
  // Direct evaluation of the mean shifted cross-entropy.
  double sum = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t + 1 < L; ++t) {
      int32_t c = labels[size_t(b * L + t + 1)];
      if (c == kIgnoreIndex)
        continue;
      std::vector<double> l(static_cast<size_t>(V));
      for (int64_t v = 0; v < V; ++v)
        for (int64_t k = 0; k < H; ++k)
          l[size_t(v)] += x[size_t((b * L + t) * H + k)] * double(head.at(v, k));
      double mx = *std::max_element(l.begin(), l.end()), s = 0;
      for (double li : l)
        s += std::exp(li - mx);
      sum += mx + std::log(s) - l[size_t(c)];
    }
  EXPECT_NEAR(r.loss, sum / 7, 1e-12);
  checkGradient("cross-entropy dx", f, x.data(), x.size(), dx.data());
  for (int64_t k = 0; k < H; ++k) { // last positions and the ignored target's position get 0
    EXPECT_EQ(dx[size_t((L - 1) * H + k)], 0.0);
    EXPECT_EQ(dx[size_t((L + 0) * H + k)], 0.0);
  }
  // An explicit normalizer (micro-batch accumulation) scales loss and gradient.
  std::vector<double> dx2(x.size());
  LossResult r2 = lmHeadLossBackward(pool, head, x.data(), batch, L, labels.data(), dx2.data(), 14);
  EXPECT_NEAR(r2.loss, r.loss / 2, 1e-14);
  for (size_t i = 0; i < dx.size(); ++i)
    EXPECT_NEAR(dx2[i], dx[i] / 2, 1e-15);
}

TEST(GradFd, LmHeadRejectsLabelsOutsideTheVocabulary) {
  ThreadPool pool(1);
  WeightStore ws(17);
  MatrixView head = ws.mat(4, 3);
  std::vector<double> x(6, 0.5);
  std::vector<int32_t> labels = {0, 4};
  EXPECT_THROW(lmHeadLossForward(pool, head, x.data(), 1, 2, labels.data()), std::exception);
}

// Every routing variant, on logits with clear top-k margins.
struct RouteCase {
  const char* name;
  MoeRoutingParams p;
  bool bias;
};

std::vector<RouteCase> routeCases() {
  auto make = [](MoeScoring s, MoeTopk m, int k, int groups, int keep, bool norm, double rsf) {
    MoeRoutingParams p;
    p.numExperts = 8;
    p.topK = k;
    p.scoring = s;
    p.method = m;
    p.nGroup = groups;
    p.topkGroup = keep;
    p.normTopkProb = norm;
    p.routedScalingFactor = rsf;
    return p;
  };
  return {
      {"softmax greedy", make(MoeScoring::Softmax, MoeTopk::Greedy, 2, 1, 1, false, 1.0), false},
      {"softmax greedy norm", make(MoeScoring::Softmax, MoeTopk::Greedy, 3, 1, 1, true, 1.0),
       false},
      {"softmax group_limited",
       make(MoeScoring::Softmax, MoeTopk::GroupLimitedGreedy, 3, 4, 2, false, 2.0), false},
      {"sigmoid noaux_tc", make(MoeScoring::Sigmoid, MoeTopk::NoauxTc, 3, 4, 2, true, 2.5), true},
      {"sigmoid greedy", make(MoeScoring::Sigmoid, MoeTopk::Greedy, 2, 1, 1, false, 1.0), false},
  };
}

TEST(GradFd, RoutingWeightsThroughScoresNormalizationAndScaling) {
  WeightStore ws(18);
  for (const RouteCase& c : routeCases()) {
    const int E = c.p.numExperts, K = c.p.topK;
    std::vector<float> bias = ws.randn(size_t(E), 0.3f);
    std::vector<double> logits = ws.randnT<double>(size_t(E), 1.5),
                        dw = ws.randnT<double>(size_t(K), 1.0);
    std::vector<int> chosen(static_cast<size_t>(K)), again(static_cast<size_t>(K));
    std::vector<double> w(static_cast<size_t>(K));
    const float* b = c.bias ? bias.data() : nullptr;
    routeForward(logits.data(), b, c.p, chosen.data(), w.data());
    auto f = [&] {
      routeForward(logits.data(), b, c.p, again.data(), w.data());
      EXPECT_EQ(again, chosen) << c.name << ": the perturbation changed the selection";
      return dotd(dw, w);
    };
    std::vector<double> dl(static_cast<size_t>(E));
    routeBackward(logits.data(), c.p, chosen.data(), dw.data(), dl.data());
    checkGradient(std::string("route ") + c.name, f, logits.data(), logits.size(), dl.data());
  }
}

TEST(GradFd, RoutingMatchesRouteTokenInF32) {
  WeightStore ws(19);
  for (const RouteCase& c : routeCases()) {
    const int E = c.p.numExperts, K = c.p.topK;
    std::vector<float> bias = ws.randn(size_t(E), 0.3f), logits = ws.randn(size_t(E), 1.5f);
    const float* b = c.bias ? bias.data() : nullptr;
    std::vector<int> e1(static_cast<size_t>(K)), e2(static_cast<size_t>(K));
    std::vector<float> w1(static_cast<size_t>(K)), w2(static_cast<size_t>(K));
    routeToken(logits.data(), b, c.p, e1.data(), w1.data());
    routeForward(logits.data(), b, c.p, e2.data(), w2.data());
    EXPECT_EQ(e1, e2) << c.name;
    for (int k = 0; k < K; ++k)
      EXPECT_EQ(w1[size_t(k)], w2[size_t(k)]) << c.name;
  }
}

} // namespace
} // namespace kt::cpu::grad::test
