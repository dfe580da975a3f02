// kernels/cuda/grad (TrainKernels.h) against kernels/cpu/grad on the same random inputs: every op's
// forward and backward (outputs, dx and the adapters' dA/dB) on odd shapes. Skips without a GPU.
// Tolerance: max |gpu - cpu| / max |cpu| < 1e-4 per tensor (f32 sums in different orders).
#include "kernels/cpu/Rope.h"
#include "kernels/cpu/grad/Grad.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <deque>
#include <memory>

namespace kt {
namespace {

using cudatest::Dev;
namespace g = cpu::grad;
namespace cg = cuda::grad;

double relErr(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    d = std::max(d, double(std::fabs(got[i] - want[i])));
    m = std::max(m, double(std::fabs(want[i])));
  }
  return d / std::max(m, 1e-20);
}

// Host tensors (kept alive for the MatrixViews), their GPU copies, and LoRA adapters on both sides.
struct Bench {
  std::mt19937 rng{7};
  std::deque<std::vector<float>> host;
  std::deque<Dev> dev;
  std::deque<g::Lora> cpuLoras;
  std::deque<cg::DevLora> gpuLoras;
  struct Grad {
    std::vector<float>* cpu;
    float* gpu;
    std::string name;
  };
  std::vector<Grad> grads;

  std::vector<float>& randn(size_t n, float scale = 0.5f) {
    return host.emplace_back(cudatest::randomVector(rng, n, scale));
  }
  float* up(const std::vector<float>& v) { return dev.emplace_back(v).as(); }
  cpu::MatrixView view(const std::vector<float>& v, int64_t rows, int64_t cols) {
    cpu::MatrixView m;
    m.data = reinterpret_cast<const uint8_t*>(v.data());
    m.rows = rows;
    m.cols = cols;
    return m;
  }
  // A projection [out, in] with an optional bias and an optional adapter of rank r.
  std::pair<g::Projection, cg::DevProjection> proj(int64_t out, int64_t in, bool bias, int r,
                                                   const std::string& name) {
    std::vector<float>& w = randn(size_t(out * in), 1.f / std::sqrt(float(in)));
    g::Projection c{view(w, out, in), {}, nullptr};
    cg::DevProjection d;
    d.w = up(w);
    d.out = out;
    d.in = in;
    if (bias) {
      std::vector<float>& b = randn(size_t(out), 0.1f);
      c.bias = view(b, 1, out);
      d.bias = up(b);
    }
    if (r > 0) {
      std::vector<float>& A = randn(size_t(r * in), 0.3f);
      std::vector<float>& B = randn(size_t(out * r), 0.3f);
      std::vector<float>& dA = host.emplace_back(size_t(r * in), 0.f);
      std::vector<float>& dB = host.emplace_back(size_t(out * r), 0.f);
      const float scale = 2.f / float(r);
      c.lora = &cpuLoras.emplace_back(g::Lora{A.data(), B.data(), r, scale, dA.data(), dB.data()});
      float* gdA = up(dA);
      float* gdB = up(dB);
      d.lora = &gpuLoras.emplace_back(cg::DevLora{up(A), up(B), r, scale, gdA, gdB});
      grads.push_back({&dA, gdA, name + ".dA"});
      grads.push_back({&dB, gdB, name + ".dB"});
    }
    return {c, d};
  }
  std::vector<float>& normWeight(int64_t dim) {
    std::vector<float>& w = randn(size_t(dim), 0.2f);
    for (float& v : w)
      v += 1.f;
    return w;
  }
  cg::DevRope rope(const cpu::RopeParams& p) {
    cg::DevRope r;
    r.dim = p.dim;
    r.attentionFactor = float(p.attentionFactor);
    r.interleaved = p.interleaved;
    std::vector<float>& inv = host.emplace_back(cpu::ropeInvFreq(p));
    if (inv.empty())
      inv.push_back(0.f);
    r.invFreq = up(inv);
    return r;
  }
  void expectGrads(const std::string& what) {
    for (const Grad& gr : grads) {
      std::vector<float> got(gr.cpu->size());
      std::string err;
      ASSERT_TRUE(cuda::synchronize(&err)) << err;
      ASSERT_TRUE(cuda::toHost(got.data(), gr.gpu, got.size() * 4, &err)) << err;
      EXPECT_LT(relErr(got, *gr.cpu), 1e-4) << what << " " << gr.name;
    }
  }
};

std::vector<float> fetch(const float* p, size_t n) {
  std::vector<float> v(n);
  std::string err;
  EXPECT_TRUE(cuda::synchronize(&err)) << err;
  EXPECT_TRUE(cuda::toHost(v.data(), p, n * 4, &err)) << err;
  return v;
}

// One layer forward and backward on the CPU (the reference) and on the GPU, over an input of
// `xSize` and an output gradient of `ySize` values drawn from `b` (in that order, scale `sd`):
// cpu(x, dy, y, dx) and gpu(gx, gdy, gy, gdx) each run the forward then the backward. The
// outputs and input gradients must agree within `tol`, then (with `weightGrads`) the weight
// gradients `b` tracks.
template <class Cpu, class Gpu>
void expectLayerMatches(Bench& b, size_t xSize, size_t ySize, float sd, double tol,
                        const std::string& what, Cpu cpu, Gpu gpu, bool weightGrads = true) {
  std::vector<float>& x = b.randn(xSize, sd);
  std::vector<float>& dy = b.randn(ySize, sd);
  std::vector<float> y(ySize), dx(xSize);
  cpu(x.data(), dy.data(), y.data(), dx.data());
  Dev gy(y.size() * 4), gdx(dx.size() * 4);
  gpu(b.up(x), b.up(dy), gy.as(), gdx.as());
  EXPECT_LT(relErr(fetch(gy.as(), y.size()), y), tol) << what;
  EXPECT_LT(relErr(fetch(gdx.as(), dx.size()), dx), tol) << what;
  if (weightGrads)
    b.expectGrads(what);
}

TEST(TrainGradCuda, LinearWithLoraMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  for (int64_t rows : {1, 3, 37})
    for (auto [out, in] : {std::pair<int64_t, int64_t>{40, 128}, {128, 40}})
      for (int r : {0, 1, 8})
        for (bool bias : {false, true}) {
          Bench b;
          auto [cp, gp] = b.proj(out, in, bias, r, "linear");
          const std::string what = "rows " + std::to_string(rows) + " out " + std::to_string(out) +
                                   " in " + std::to_string(in) + " r " + std::to_string(r) +
                                   (bias ? " bias" : "");
          expectLayerMatches(
              b, size_t(rows * in), size_t(rows * out), 0.5f, 1e-4, what,
              [&, &cp = cp](const float* x, const float* dy, float* y, float* dx) {
                g::linearForward(pool, cp, x, rows, y);
                g::linearBackward(pool, cp, x, rows, dy, dx);
              },
              [&, &gp = gp](float* gx, float* gdy, float* gy, float* gdx) {
                cg::linearForward(ctx, gp, gx, rows, gy);
                cg::linearBackward(ctx, gp, gx, rows, gdy, gdx, false);
              });
        }
}

TEST(TrainGradCuda, RmsNormMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  for (int64_t rows : {1, 3, 37})
    for (int64_t dim : {40, 128}) {
      Bench b;
      std::vector<float>& w = b.normWeight(dim);
      const cpu::MatrixView cw = b.view(w, 1, dim);
      float* gw = b.up(w);
      expectLayerMatches(
          b, size_t(rows * dim), size_t(rows * dim), 1.f, 1e-5,
          std::to_string(rows) + "x" + std::to_string(dim),
          [&](const float* x, const float* dy, float* y, float* dx) {
            g::rmsNormForward(pool, x, rows, dim, cw, 1e-6, y);
            g::rmsNormBackward(pool, x, rows, dim, cw, 1e-6, dy, dx);
          },
          [&](float* gx, float* gdy, float* gy, float* gdx) {
            cg::rmsNormForward(ctx, gx, rows, dim, gw, 1e-6f, gy);
            cg::rmsNormBackward(ctx, gx, rows, dim, gw, 1e-6f, gdy, gdx, false);
          },
          /*weightGrads=*/false);
    }
}

TEST(TrainGradCuda, MlpMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  for (int64_t rows : {1, 3, 37})
    for (int r : {1, 8}) {
      const int64_t H = 40, I = 56;
      Bench b;
      auto [cg_, gg] = b.proj(I, H, false, r, "gate");
      auto [cu, gu] = b.proj(I, H, false, r, "up");
      auto [cd, gd] = b.proj(H, I, false, r, "down");
      g::MlpWeights cw{cg_, cu, cd};
      cg::DevMlp gw{gg, gu, gd};
      expectLayerMatches(
          b, size_t(rows * H), size_t(rows * H), 1.f, 1e-4,
          "rows " + std::to_string(rows) + " r " + std::to_string(r),
          [&](const float* x, const float* dy, float* y, float* dx) {
            g::mlpForward(pool, cw, x, rows, y);
            g::mlpBackward(pool, cw, x, rows, dy, dx);
          },
          [&](float* gx, float* gdy, float* gy, float* gdx) {
            cg::mlpForward(ctx, gw, gx, rows, gy);
            cg::mlpBackward(ctx, gw, gx, rows, gdy, gdx, false);
          });
    }
}

cpu::RopeParams ropeCase(int which, int dim) {
  cpu::RopeParams p;
  p.dim = dim;
  p.theta = 10000.0;
  if (which == 1) { // interleaved pairs, partial rotation
    p.interleaved = true;
  } else if (which == 2) { // YaRN with its attention factor
    p.type = cpu::RopeType::Yarn;
    p.factor = 4.0;
    p.originalMaxPosition = 16;
    p.attentionFactor = 1.2;
  }
  return p;
}

TEST(TrainGradCuda, GqaAttentionMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  const int64_t H = 40, hd = 16, batch = 2;
  int cases = 0;
  for (auto [heads, kv] : {std::pair<int, int>{1, 1}, {2, 1}, {3, 3}, {4, 2}})
    for (int64_t L : {1, 5, 33})
      for (int variant = 0; variant < 3; ++variant) {
        Bench b;
        const bool qkNorm = variant == 1, bias = variant == 2;
        const int r = variant == 0 ? 1 : 8;
        g::AttentionParams cp;
        cp.numHeads = heads;
        cp.numKvHeads = kv;
        cp.headDim = int(hd);
        cp.scale = 1.0 / std::sqrt(double(hd));
        cp.rope = ropeCase(variant, variant == 1 ? 8 : int(hd));
        cp.normEps = 1e-6;
        g::AttentionWeights cw;
        cg::DevAttention gw;
        std::tie(cw.q, gw.q) = b.proj(heads * hd, H, bias, r, "q");
        std::tie(cw.k, gw.k) = b.proj(kv * hd, H, bias, r, "k");
        std::tie(cw.v, gw.v) = b.proj(kv * hd, H, bias, r, "v");
        std::tie(cw.o, gw.o) = b.proj(H, heads * hd, false, r, "o");
        if (qkNorm) {
          std::vector<float>& qn = b.normWeight(hd);
          std::vector<float>& kn = b.normWeight(hd);
          cw.qNorm = b.view(qn, 1, hd);
          cw.kNorm = b.view(kn, 1, hd);
          gw.qNorm = b.up(qn);
          gw.kNorm = b.up(kn);
        }
        gw.numHeads = heads;
        gw.numKvHeads = kv;
        gw.headDim = int(hd);
        gw.scale = float(cp.scale);
        gw.rope = b.rope(cp.rope);
        gw.normEps = 1e-6f;
        const size_t n = size_t(batch * L * H);
        expectLayerMatches(
            b, n, n, 1.f, 1e-4,
            "heads " + std::to_string(heads) + "/" + std::to_string(kv) + " L " +
                std::to_string(L) + " variant " + std::to_string(variant),
            [&](const float* x, const float* dy, float* y, float* dx) {
              g::gqaForward(pool, cp, cw, x, batch, L, y);
              g::gqaBackward(pool, cp, cw, x, batch, L, dy, dx);
            },
            [&](float* gx, float* gdy, float* gy, float* gdx) {
              cg::gqaForward(ctx, gw, gx, batch, L, gy);
              cg::gqaBackward(ctx, gw, gx, batch, L, gdy, gdx);
            });
        ++cases;
      }
  EXPECT_EQ(cases, 36);
}

TEST(TrainGradCuda, MlaAttentionMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  const int64_t H = 40, batch = 2;
  for (int heads : {1, 3})
    for (int qLora : {0, 24})
      for (int64_t L : {1, 5, 33}) {
        Bench b;
        g::MlaParams cp;
        cp.numHeads = heads;
        cp.qLoraRank = qLora;
        cp.kvLoraRank = 32;
        cp.qkNopeHeadDim = 16;
        cp.qkRopeHeadDim = 8;
        cp.vHeadDim = 12;
        cp.scale = 1.0 / std::sqrt(24.0);
        cp.rope = ropeCase(qLora ? 2 : 0, 8);
        cp.normEps = 1e-6;
        const int64_t qk = 24;
        g::MlaWeights cw;
        cg::DevMla gw;
        if (qLora) {
          std::tie(cw.qA, gw.qA) = b.proj(qLora, H, false, 8, "q_a");
          std::vector<float>& qn = b.normWeight(qLora);
          cw.qANorm = b.view(qn, 1, qLora);
          gw.qANorm = b.up(qn);
          std::tie(cw.qB, gw.qB) = b.proj(heads * qk, qLora, false, 8, "q_b");
        } else {
          std::tie(cw.q, gw.q) = b.proj(heads * qk, H, false, 8, "q");
        }
        std::tie(cw.kvA, gw.kvA) = b.proj(32 + 8, H, false, 4, "kv_a");
        std::vector<float>& kn = b.normWeight(32);
        cw.kvANorm = b.view(kn, 1, 32);
        gw.kvANorm = b.up(kn);
        std::tie(cw.kvB, gw.kvB) = b.proj(heads * (16 + 12), 32, false, 8, "kv_b");
        std::tie(cw.o, gw.o) = b.proj(H, heads * 12, false, 8, "o");
        gw.numHeads = heads;
        gw.qLoraRank = qLora;
        gw.kvLoraRank = 32;
        gw.qkNopeHeadDim = 16;
        gw.qkRopeHeadDim = 8;
        gw.vHeadDim = 12;
        gw.scale = float(cp.scale);
        gw.rope = b.rope(cp.rope);
        gw.normEps = 1e-6f;
        const size_t n = size_t(batch * L * H);
        expectLayerMatches(
            b, n, n, 1.f, 1e-4,
            "heads " + std::to_string(heads) + " q_lora " + std::to_string(qLora) + " L " +
                std::to_string(L),
            [&](const float* x, const float* dy, float* y, float* dx) {
              g::mlaForward(pool, cp, cw, x, batch, L, y);
              g::mlaBackward(pool, cp, cw, x, batch, L, dy, dx);
            },
            [&](float* gx, float* gdy, float* gy, float* gdx) {
              cg::mlaForward(ctx, gw, gx, batch, L, gy);
              cg::mlaBackward(ctx, gw, gx, batch, L, gdy, gdx);
            });
      }
}

TEST(TrainGradCuda, LmHeadCrossEntropyMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(2);
  cg::Context ctx;
  const int64_t H = 40, V = 97, batch = 2;
  for (int64_t L : {1, 5, 33}) {
    Bench b;
    std::vector<float>& head = b.randn(size_t(V * H), 0.5f);
    std::vector<float>& x = b.randn(size_t(batch * L * H), 1.f);
    std::vector<int32_t> labels(size_t(batch * L));
    for (size_t i = 0; i < labels.size(); ++i)
      labels[i] = i % 4 == 2 ? g::kIgnoreIndex : int32_t((i * 37 + 11) % V);
    std::vector<float> dx(x.size());
    g::LossResult want = g::lmHeadLossBackward(pool, b.view(head, V, H), x.data(), batch, L,
                                               labels.data(), dx.data(), 50);
    Dev gdx(dx.size() * 4);
    cg::LossResult got =
        cg::lmHeadLoss(ctx, b.up(head), V, H, b.up(x), batch, L, labels.data(), gdx.as(), 50);
    EXPECT_EQ(got.count, want.count) << "L " << L;
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, std::fabs(want.loss))) << "L " << L;
    if (want.count > 0) {
      EXPECT_LT(relErr(fetch(gdx.as(), dx.size()), dx), 1e-4) << "L " << L;
    }
    // Forward only (no dx), normalizer 0: the batch's own count.
    g::LossResult want0 =
        g::lmHeadLossForward(pool, b.view(head, V, H), x.data(), batch, L, labels.data(), 0);
    cg::LossResult got0 =
        cg::lmHeadLoss(ctx, b.up(head), V, H, b.up(x), batch, L, labels.data(), nullptr, 0);
    EXPECT_NEAR(got0.loss, want0.loss, 1e-5 * std::max(1.0, std::fabs(want0.loss))) << "L " << L;
  }
}

} // namespace
} // namespace kt
