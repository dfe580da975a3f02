// Forward checks in f32:
// - forward with LoRA equals the forward over merged weights W + scale·B·A (no adapter);
// - the training forwards equal the inference ops' compositions (written here as the runtime's
//   CPU ops compose the kernels: MLA in its absorbed form, MoE with routeToken);
// - the f64 instantiations agree with the f32 ones, so the finite-difference checks (made in f64)
//   are about the same function the runtime computes.
#include "GradTestUtil.h"

#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/Norm.h"
#include "kernels/cpu/Rope.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstring>

namespace kt::cpu::grad::test {
namespace {

std::vector<float> toF(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

double maxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, s = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, double(std::fabs(a[i] - b[i])));
    s = std::max(s, double(std::fabs(b[i])));
  }
  return m / s;
}
double maxRelDiff(const std::vector<double>& a, const std::vector<float>& b) {
  return maxRelDiff(toF(a), b);
}

// W + scale·B·A as a new f32 weight.
MatrixView merged(WeightStore& ws, const MatrixView& w, const Lora* l) {
  std::vector<float> m(size_t(w.rows * w.cols));
  for (int64_t o = 0; o < w.rows; ++o) {
    w.rowToF32(o, m.data() + o * w.cols);
    if (!l)
      continue;
    for (int64_t i = 0; i < w.cols; ++i) {
      double d = 0;
      for (int r = 0; r < l->r; ++r)
        d += double(l->B[o * l->r + r]) * double(l->A[r * w.cols + i]);
      m[size_t(o * w.cols + i)] += float(double(l->scale) * d);
    }
  }
  return ws.view(m, w.rows, w.cols);
}
Projection mergedProj(WeightStore& ws, const Projection& p) {
  return {merged(ws, p.w, p.lora), p.bias, nullptr};
}
MlpWeights mergedMlp(WeightStore& ws, const MlpWeights& m) {
  return {mergedProj(ws, m.gate), mergedProj(ws, m.up), mergedProj(ws, m.down)};
}

// The same weights with f64 adapters (same values) for the f64 instantiations.
struct Twin {
  std::deque<LoraT<double>> loras;
  std::deque<std::vector<double>> data;
  const LoraT<double>* of(const Lora* l) {
    if (!l)
      return nullptr;
    const size_t na = size_t(l->r) * size_t(lastIn), nb = size_t(lastOut) * size_t(l->r);
    auto& a = data.emplace_back(l->A, l->A + na);
    auto& b = data.emplace_back(l->B, l->B + nb);
    return &loras.emplace_back(
        LoraT<double>{a.data(), b.data(), l->r, double(l->scale), nullptr, nullptr});
  }
  ProjectionT<double> proj(const Projection& p) {
    lastIn = p.w.cols;
    lastOut = p.w.rows;
    return {p.w, p.bias, of(p.lora)};
  }
  MlpWeightsT<double> mlp(const MlpWeights& m) { return {proj(m.gate), proj(m.up), proj(m.down)}; }
  int64_t lastIn = 0, lastOut = 0;
};

MlpWeights randomMlp(WeightStore& ws, LoraSet<float>& loras, int64_t H, int64_t I,
                     bool lora = true) {
  MlpWeights m;
  m.gate = {ws.mat(I, H), {}, lora ? loras.add(ws, I, H, 3, 2.0) : nullptr};
  m.up = {ws.mat(I, H), {}, lora ? loras.add(ws, I, H, 3, 2.0) : nullptr};
  m.down = {ws.mat(H, I), {}, lora ? loras.add(ws, H, I, 3, 2.0) : nullptr};
  return m;
}

TEST(GradForward, LinearAndMlpWithLoraEqualMergedWeights) {
  ThreadPool pool(2);
  WeightStore ws(31);
  LoraSet<float> loras;
  const int64_t rows = 7, H = 16, I = 24;
  Projection p{ws.mat(I, H), ws.mat(1, I), loras.add(ws, I, H, 4, 2.0)};
  std::vector<float> x = ws.randn(size_t(rows * H), 1.0f), y(size_t(rows * I)), ym(y.size());
  linearForward(pool, p, x.data(), rows, y.data());
  linearForward(pool, mergedProj(ws, p), x.data(), rows, ym.data());
  EXPECT_LT(maxRelDiff(y, ym), 1e-5);

  MlpWeights m = randomMlp(ws, loras, H, I);
  std::vector<float> z(x.size()), zm(x.size());
  mlpForward(pool, m, x.data(), rows, z.data());
  mlpForward(pool, mergedMlp(ws, m), x.data(), rows, zm.data());
  EXPECT_LT(maxRelDiff(z, zm), 1e-5);
}

RopeParams yarnRope(int dim, bool interleaved) {
  RopeParams r;
  r.type = RopeType::Yarn;
  r.dim = dim;
  r.theta = 10000;
  r.factor = 40;
  r.originalMaxPosition = 4096;
  r.attentionFactor = 1.1;
  r.interleaved = interleaved;
  return r;
}

struct GqaSetup {
  AttentionParams p;
  AttentionWeights w;
  GqaSetup(WeightStore& ws, LoraSet<float>& loras, int64_t H, bool bias, bool norm) {
    p.numHeads = 4;
    p.numKvHeads = 2;
    p.headDim = 8;
    p.scale = 1 / std::sqrt(8.0);
    p.rope.dim = 8;
    p.rope.theta = 500;
    p.normEps = 1e-6;
    w.q = {ws.mat(32, H), bias ? ws.mat(1, 32) : MatrixView{}, loras.add(ws, 32, H)};
    w.k = {ws.mat(16, H), bias ? ws.mat(1, 16) : MatrixView{}, loras.add(ws, 16, H)};
    w.v = {ws.mat(16, H), bias ? ws.mat(1, 16) : MatrixView{}, loras.add(ws, 16, H)};
    w.o = {ws.mat(H, 32), {}, loras.add(ws, H, 32)};
    if (norm) {
      w.qNorm = ws.normWeight(8);
      w.kNorm = ws.normWeight(8);
    }
  }
};

// GQA as runtime/exec/cpu/AttentionOps.cpp composes the kernels, one sequence at a time.
std::vector<float> gqaInference(ThreadPool& pool, const AttentionParams& p,
                                const AttentionWeights& w, const std::vector<float>& x,
                                int64_t batch, int64_t L, int64_t H) {
  const int nh = p.numHeads, nkv = p.numKvHeads, hd = p.headDim;
  std::vector<float> out(size_t(batch * L * H));
  std::vector<float> inv = ropeInvFreq(p.rope);
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x.data() + b * L * H;
    auto proj = [&](const Projection& pr) {
      std::vector<float> y(size_t(L * pr.w.rows)), bias;
      if (pr.bias.data) {
        bias.resize(size_t(pr.bias.cols));
        pr.bias.rowToF32(0, bias.data());
      }
      cpu::linear(pool, xb, L, pr.w, bias.empty() ? nullptr : bias.data(), y.data());
      return y;
    };
    std::vector<float> q = proj(w.q), k = proj(w.k), v = proj(w.v), ctx(size_t(L * nh * hd));
    if (w.qNorm.data)
      cpu::rmsNorm(q.data(), L * nh, hd, w.qNorm, p.normEps, q.data());
    if (w.kNorm.data)
      cpu::rmsNorm(k.data(), L * nkv, hd, w.kNorm, p.normEps, k.data());
    for (int64_t t = 0; t < L; ++t) {
      applyRope(q.data() + t * nh * hd, nh, hd, 0, t, p.rope, inv);
      applyRope(k.data() + t * nkv * hd, nkv, hd, 0, t, p.rope, inv);
    }
    gqaAttention(pool, q.data(), L, nh, nkv, hd, k.data(), v.data(), 0, p.scale, ctx.data());
    cpu::linear(pool, ctx.data(), L, w.o.w, nullptr, out.data() + b * L * H);
  }
  return out;
}

TEST(GradForward, GqaMatchesInferenceMergedAndF64) {
  ThreadPool pool(2);
  for (bool variant : {false, true}) {
    WeightStore ws(32);
    LoraSet<float> loras;
    const int64_t batch = 2, L = 9, H = 24;
    GqaSetup s(ws, loras, H, variant, variant);
    if (variant)
      s.p.rope = yarnRope(8, true);
    std::vector<float> x = ws.randn(size_t(batch * L * H), 1.0f), y(x.size()), ym(x.size()), yr;
    AttentionWeights noLora = s.w;
    noLora.q.lora = noLora.k.lora = noLora.v.lora = noLora.o.lora = nullptr;
    gqaForward(pool, s.p, noLora, x.data(), batch, L, y.data());
    yr = gqaInference(pool, s.p, noLora, x, batch, L, H);
    EXPECT_LT(maxRelDiff(y, yr), 1e-6) << "inference composition, variant " << variant;

    gqaForward(pool, s.p, s.w, x.data(), batch, L, y.data());
    AttentionWeights m = s.w;
    m.q = mergedProj(ws, s.w.q);
    m.k = mergedProj(ws, s.w.k);
    m.v = mergedProj(ws, s.w.v);
    m.o = mergedProj(ws, s.w.o);
    gqaForward(pool, s.p, m, x.data(), batch, L, ym.data());
    EXPECT_LT(maxRelDiff(y, ym), 1e-5) << "merged, variant " << variant;

    Twin tw;
    AttentionWeightsT<double> wd{tw.proj(s.w.q), tw.proj(s.w.k), tw.proj(s.w.v),
                                 tw.proj(s.w.o), s.w.qNorm,      s.w.kNorm};
    std::vector<double> xd(x.begin(), x.end()), yd(x.size());
    gqaForward(pool, s.p, wd, xd.data(), batch, L, yd.data());
    EXPECT_LT(maxRelDiff(yd, y), 1e-5) << "f64, variant " << variant;
  }
}

struct MlaSetup {
  MlaParams p;
  MlaWeights w;
  MlaSetup(WeightStore& ws, LoraSet<float>& loras, int64_t H, int qLoraRank, RopeParams rope) {
    p.numHeads = 4;
    p.qLoraRank = qLoraRank;
    p.kvLoraRank = 16;
    p.qkNopeHeadDim = 8;
    p.qkRopeHeadDim = 8;
    p.vHeadDim = 6;
    p.scale = 1.3 / std::sqrt(16.0);
    p.rope = rope;
    p.normEps = 1e-6;
    const int64_t qOut = 4 * 16;
    if (qLoraRank > 0) {
      w.qA = {ws.mat(qLoraRank, H), {}, loras.add(ws, qLoraRank, H)};
      w.qANorm = ws.normWeight(qLoraRank);
      w.qB = {ws.mat(qOut, qLoraRank), {}, loras.add(ws, qOut, qLoraRank)};
    } else {
      w.q = {ws.mat(qOut, H), {}, loras.add(ws, qOut, H)};
    }
    w.kvA = {ws.mat(16 + 8, H), {}, loras.add(ws, 16 + 8, H)};
    w.kvANorm = ws.normWeight(16);
    w.kvB = {ws.mat(4 * (8 + 6), 16), {}, loras.add(ws, 4 * (8 + 6), 16)};
    w.o = {ws.mat(H, 4 * 6), {}, loras.add(ws, H, 4 * 6)};
  }
};

// MLA as runtime/exec/cpu/AttentionOps.cpp computes it: the absorbed form over the latent cache.
std::vector<float> mlaInference(ThreadPool& pool, const MlaParams& p, const MlaWeights& w,
                                const std::vector<float>& x, int64_t batch, int64_t L, int64_t H) {
  const int nh = p.numHeads, nope = p.qkNopeHeadDim, rope = p.qkRopeHeadDim, vd = p.vHeadDim;
  const int lat = p.kvLoraRank, qhd = nope + rope, kvaw = lat + rope;
  std::vector<float> inv = ropeInvFreq(p.rope), out(size_t(batch * L * H));
  std::vector<float> wkvb(size_t(w.kvB.w.rows * lat));
  for (int64_t r = 0; r < w.kvB.w.rows; ++r)
    w.kvB.w.rowToF32(r, wkvb.data() + r * lat);
  for (int64_t b = 0; b < batch; ++b) {
    const float* xb = x.data() + b * L * H;
    std::vector<float> q(size_t(L * nh * qhd));
    if (p.qLoraRank > 0) {
      std::vector<float> qa(size_t(L * p.qLoraRank));
      cpu::linear(pool, xb, L, w.qA.w, nullptr, qa.data());
      cpu::rmsNorm(qa.data(), L, p.qLoraRank, w.qANorm, p.normEps, qa.data());
      cpu::linear(pool, qa.data(), L, w.qB.w, nullptr, q.data());
    } else {
      cpu::linear(pool, xb, L, w.q.w, nullptr, q.data());
    }
    std::vector<float> kva(size_t(L * kvaw));
    cpu::linear(pool, xb, L, w.kvA.w, nullptr, kva.data());
    for (int64_t t = 0; t < L; ++t)
      cpu::rmsNorm(kva.data() + t * kvaw, 1, lat, w.kvANorm, p.normEps, kva.data() + t * kvaw);
    for (int64_t t = 0; t < L; ++t) {
      applyRope(q.data() + t * nh * qhd, nh, qhd, nope, t, p.rope, inv);
      applyRope(kva.data() + t * kvaw, 1, kvaw, lat, t, p.rope, inv);
    }
    std::vector<float> qAbs(size_t(L * nh * lat), 0.f), qPe(size_t(L * nh * rope)),
        latent(size_t(L * lat)), kpe(size_t(L * rope)), ctx(size_t(L * nh * lat)),
        heads(size_t(L * nh * vd));
    for (int64_t t = 0; t < L; ++t)
      for (int h = 0; h < nh; ++h) {
        const float* qn = q.data() + (t * nh + h) * qhd;
        for (int j = 0; j < nope; ++j)
          for (int c = 0; c < lat; ++c)
            qAbs[size_t((t * nh + h) * lat + c)] +=
                qn[j] * wkvb[size_t((h * (nope + vd) + j) * lat + c)];
        std::memcpy(qPe.data() + (t * nh + h) * rope, qn + nope, size_t(rope) * 4);
      }
    for (int64_t t = 0; t < L; ++t) {
      std::memcpy(latent.data() + t * lat, kva.data() + t * kvaw, size_t(lat) * 4);
      std::memcpy(kpe.data() + t * rope, kva.data() + t * kvaw + lat, size_t(rope) * 4);
    }
    mlaAttention(pool, qAbs.data(), qPe.data(), L, nh, lat, rope, latent.data(), kpe.data(), 0,
                 p.scale, ctx.data());
    for (int64_t t = 0; t < L; ++t)
      for (int h = 0; h < nh; ++h)
        for (int j = 0; j < vd; ++j) {
          float acc = 0;
          for (int c = 0; c < lat; ++c)
            acc += wkvb[size_t((h * (nope + vd) + nope + j) * lat + c)] *
                   ctx[size_t((t * nh + h) * lat + c)];
          heads[size_t((t * nh + h) * vd + j)] = acc;
        }
    cpu::linear(pool, heads.data(), L, w.o.w, nullptr, out.data() + b * L * H);
  }
  return out;
}

TEST(GradForward, MlaMatchesAbsorbedInferenceMergedAndF64) {
  ThreadPool pool(2);
  RopeParams v2;
  v2.dim = 8;
  v2.theta = 10000;
  v2.interleaved = true;
  for (int qLoraRank : {0, 12}) {
    WeightStore ws(33);
    LoraSet<float> loras;
    const int64_t batch = 2, L = 7, H = 20;
    MlaSetup s(ws, loras, H, qLoraRank, qLoraRank ? yarnRope(8, false) : v2);
    std::vector<float> x = ws.randn(size_t(batch * L * H), 1.0f), y(x.size()), ym(x.size());
    MlaWeights noLora = s.w;
    for (Projection* pr : {&noLora.q, &noLora.qA, &noLora.qB, &noLora.kvA, &noLora.kvB, &noLora.o})
      pr->lora = nullptr;
    mlaForward(pool, s.p, noLora, x.data(), batch, L, y.data());
    EXPECT_LT(maxRelDiff(y, mlaInference(pool, s.p, noLora, x, batch, L, H)), 2e-6)
        << "absorbed, q_lora " << qLoraRank;

    mlaForward(pool, s.p, s.w, x.data(), batch, L, y.data());
    MlaWeights m = s.w;
    for (auto [dst, src] : {std::pair{&m.q, &s.w.q},
                            {&m.qA, &s.w.qA},
                            {&m.qB, &s.w.qB},
                            {&m.kvA, &s.w.kvA},
                            {&m.kvB, &s.w.kvB},
                            {&m.o, &s.w.o}})
      if (src->w.data)
        *dst = mergedProj(ws, *src);
    mlaForward(pool, s.p, m, x.data(), batch, L, ym.data());
    EXPECT_LT(maxRelDiff(y, ym), 1e-5) << "merged, q_lora " << qLoraRank;

    Twin tw;
    MlaWeightsT<double> wd;
    if (qLoraRank) {
      wd.qA = tw.proj(s.w.qA);
      wd.qB = tw.proj(s.w.qB);
      wd.qANorm = s.w.qANorm;
    } else {
      wd.q = tw.proj(s.w.q);
    }
    wd.kvA = tw.proj(s.w.kvA);
    wd.kvANorm = s.w.kvANorm;
    wd.kvB = tw.proj(s.w.kvB);
    wd.o = tw.proj(s.w.o);
    std::vector<double> xd(x.begin(), x.end()), yd(x.size());
    mlaForward(pool, s.p, wd, xd.data(), batch, L, yd.data());
    EXPECT_LT(maxRelDiff(yd, y), 1e-5) << "f64, q_lora " << qLoraRank;
  }
}

// MoE as runtime/exec/cpu/MoeOp.cpp computes it.
std::vector<float> moeInference(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeights& w,
                                const std::vector<float>& x, int64_t rows, int64_t H) {
  const int E = p.numExperts, K = p.topK;
  std::vector<float> logits(size_t(rows * E)), out(size_t(rows * H), 0.f),
      bias(static_cast<size_t>(E));
  cpu::linear(pool, x.data(), rows, w.router, nullptr, logits.data());
  if (w.correctionBias.data)
    w.correctionBias.rowToF32(0, bias.data());
  auto swiglu = [&](const MlpWeights& m, const float* xs, int64_t n) {
    std::vector<float> g(size_t(n * m.gate.w.rows)), u(g.size()), y(size_t(n * H));
    cpu::linear(pool, xs, n, m.gate.w, nullptr, g.data());
    cpu::linear(pool, xs, n, m.up.w, nullptr, u.data());
    for (size_t i = 0; i < g.size(); ++i)
      g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    cpu::linear(pool, g.data(), n, m.down.w, nullptr, y.data());
    return y;
  };
  for (int64_t t = 0; t < rows; ++t) {
    std::vector<int> e(static_cast<size_t>(K));
    std::vector<float> wt(static_cast<size_t>(K));
    routeToken(logits.data() + t * E, w.correctionBias.data ? bias.data() : nullptr, p, e.data(),
               wt.data());
    for (int k = 0; k < K; ++k) {
      std::vector<float> y = swiglu(w.experts[e[size_t(k)]], x.data() + t * H, 1);
      for (int64_t i = 0; i < H; ++i)
        out[size_t(t * H + i)] += wt[size_t(k)] * y[size_t(i)];
    }
  }
  if (w.shared) {
    std::vector<float> y = swiglu(*w.shared, x.data(), rows), gate(size_t(rows), 1.0f);
    if (w.sharedExpertGate.data) {
      cpu::linear(pool, x.data(), rows, w.sharedExpertGate, nullptr, gate.data());
      for (float& g : gate)
        g = 1.0f / (1.0f + std::exp(-g));
    }
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t i = 0; i < H; ++i)
        out[size_t(t * H + i)] += gate[size_t(t)] * y[size_t(t * H + i)];
  }
  return out;
}

TEST(GradForward, MoeMatchesInferenceMergedAndF64) {
  ThreadPool pool(2);
  struct Case {
    MoeScoring scoring;
    MoeTopk method;
    bool norm, bias, gate;
    double rsf;
  };
  for (const Case& c :
       {Case{MoeScoring::Softmax, MoeTopk::Greedy, true, false, true, 1.0},
        Case{MoeScoring::Softmax, MoeTopk::GroupLimitedGreedy, false, false, false, 2.0},
        Case{MoeScoring::Sigmoid, MoeTopk::NoauxTc, true, true, false, 2.5}}) {
    WeightStore ws(34);
    LoraSet<float> loras;
    const int64_t rows = 12, H = 16, I = 8;
    const int E = 8;
    MoeRoutingParams p;
    p.numExperts = E;
    p.topK = 3;
    p.scoring = c.scoring;
    p.method = c.method;
    p.nGroup = c.method == MoeTopk::Greedy ? 1 : 4;
    p.topkGroup = c.method == MoeTopk::Greedy ? 1 : 2;
    p.normTopkProb = c.norm;
    p.routedScalingFactor = c.rsf;
    std::vector<MlpWeights> experts, plain, mergedExperts;
    for (int e = 0; e < E; ++e)
      experts.push_back(randomMlp(ws, loras, H, I));
    MlpWeights shared = randomMlp(ws, loras, H, 2 * I);
    MoeWeights w;
    w.router = ws.mat(E, H, 0.8f);
    if (c.bias)
      w.correctionBias = ws.view(ws.randn(size_t(E), 0.1f), 1, E);
    if (c.gate)
      w.sharedExpertGate = ws.mat(1, H, 0.5f);
    w.experts = experts.data();
    w.shared = &shared;
    std::vector<float> x = ws.randn(size_t(rows * H), 1.0f), y(x.size()), ym(x.size());

    for (const MlpWeights& m : experts)
      plain.push_back({{m.gate.w, {}, nullptr}, {m.up.w, {}, nullptr}, {m.down.w, {}, nullptr}});
    MlpWeights sharedPlain{
        {shared.gate.w, {}, nullptr}, {shared.up.w, {}, nullptr}, {shared.down.w, {}, nullptr}};
    MoeWeights wp = w;
    wp.experts = plain.data();
    wp.shared = &sharedPlain;
    moeForward(pool, p, wp, x.data(), rows, y.data());
    EXPECT_LT(maxRelDiff(y, moeInference(pool, p, wp, x, rows, H)), 1e-6);

    moeForward(pool, p, w, x.data(), rows, y.data());
    for (const MlpWeights& m : experts)
      mergedExperts.push_back(mergedMlp(ws, m));
    MlpWeights sharedMerged = mergedMlp(ws, shared);
    MoeWeights wm = w;
    wm.experts = mergedExperts.data();
    wm.shared = &sharedMerged;
    moeForward(pool, p, wm, x.data(), rows, ym.data());
    EXPECT_LT(maxRelDiff(y, ym), 1e-5);

    Twin tw;
    std::vector<MlpWeightsT<double>> ed;
    for (const MlpWeights& m : experts)
      ed.push_back(tw.mlp(m));
    MlpWeightsT<double> sd = tw.mlp(shared);
    MoeWeightsT<double> wd{w.router, w.correctionBias, ed.data(), &sd, w.sharedExpertGate};
    std::vector<double> xd(x.begin(), x.end()), yd(x.size());
    moeForward(pool, p, wd, xd.data(), rows, yd.data());
    EXPECT_LT(maxRelDiff(yd, y), 1e-5);
  }
}

TEST(GradForward, NormAndLossF64AgreeWithF32) {
  ThreadPool pool(2);
  WeightStore ws(35);
  const int64_t rows = 6, H = 16, V = 40;
  MatrixView nw = ws.normWeight(H), head = ws.mat(V, H, 0.5f);
  std::vector<float> x = ws.randn(size_t(rows * H), 1.0f), y(x.size()), yi(x.size());
  rmsNormForward(pool, x.data(), rows, H, nw, 1e-6, y.data());
  cpu::rmsNorm(x.data(), rows, H, nw, 1e-6, yi.data());
  EXPECT_EQ(y, yi);
  std::vector<double> xd(x.begin(), x.end()), yd(x.size());
  rmsNormForward(pool, xd.data(), rows, H, nw, 1e-6, yd.data());
  EXPECT_LT(maxRelDiff(yd, y), 1e-6);
  std::vector<int32_t> labels = {1, 2, 3, 4, 5, 6};
  std::vector<float> dx(x.size());
  std::vector<double> dxd(x.size());
  LossResult lf = lmHeadLossBackward(pool, head, x.data(), 2, 3, labels.data(), dx.data());
  LossResult ld = lmHeadLossBackward(pool, head, xd.data(), 2, 3, labels.data(), dxd.data());
  EXPECT_NEAR(lf.loss, ld.loss, 1e-6 * ld.loss);
  EXPECT_LT(maxRelDiff(dxd, dx), 1e-5);
}

TEST(GradForward, BackwardDoesNotDependOnTheThreadCount) {
  auto run = [](int threads) {
    ThreadPool pool(threads);
    WeightStore ws(37);
    LoraSet<float> loras;
    const int64_t batch = 2, L = 6, H = 24;
    GqaSetup g(ws, loras, H, true, true);
    MlaSetup m(ws, loras, H, 12, yarnRope(8, true));
    std::vector<MlpWeights> experts;
    for (int e = 0; e < 4; ++e)
      experts.push_back(randomMlp(ws, loras, H, 8));
    MoeWeights w;
    w.router = ws.mat(4, H);
    w.experts = experts.data();
    MoeRoutingParams p;
    p.numExperts = 4;
    p.topK = 2;
    std::vector<float> x = ws.randn(size_t(batch * L * H), 1.0f), dy = ws.randn(x.size(), 1.0f),
                       dx(x.size()), out;
    gqaBackward(pool, g.p, g.w, x.data(), batch, L, dy.data(), dx.data());
    out.insert(out.end(), dx.begin(), dx.end());
    mlaBackward(pool, m.p, m.w, x.data(), batch, L, dy.data(), dx.data());
    out.insert(out.end(), dx.begin(), dx.end());
    moeBackward(pool, p, w, x.data(), batch * L, dy.data(), dx.data());
    out.insert(out.end(), dx.begin(), dx.end());
    for (auto& h : loras.items()) {
      out.insert(out.end(), h.dA.begin(), h.dA.end());
      out.insert(out.end(), h.dB.begin(), h.dB.end());
    }
    return out;
  };
  EXPECT_EQ(run(1), run(3));
}

TEST(GradForward, ShapeMismatchesAreErrorsNamingTheOp) {
  ThreadPool pool(1);
  WeightStore ws(36);
  LoraSet<float> loras;
  const int64_t H = 24;
  GqaSetup s(ws, loras, H, false, false);
  std::vector<float> x(size_t(2 * H)), y(x.size());
  s.w.k.w = ws.mat(15, H); // 2 kv heads of 8 need 16 rows
  try {
    gqaForward(pool, s.p, s.w, x.data(), 1, 2, y.data());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gqa attention: k_proj is [15, 24], expected [16, 24]"),
              std::string::npos)
        << e.what();
  }
  MlaSetup m(ws, loras, H, 0, yarnRope(6, false)); // rope dim must be qk_rope_head_dim (8)
  EXPECT_THROW(mlaForward(pool, m.p, m.w, x.data(), 1, 2, y.data()), Error);
  MlpWeights e = randomMlp(ws, loras, H, 8);
  MoeWeights w;
  w.router = ws.mat(3, H);
  w.experts = &e;
  MoeRoutingParams p;
  p.numExperts = 4;
  p.topK = 2;
  EXPECT_THROW(moeForward(pool, p, w, x.data(), 2, y.data()), Error);
}

} // namespace
} // namespace kt::cpu::grad::test
