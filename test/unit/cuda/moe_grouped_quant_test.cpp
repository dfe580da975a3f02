// The grouped prefill MoE over weight-only int8 and int4 expert stacks (runtime/exec/cuda/
// MoeGroupedQuant.h): one chunk through runGroupedChunk against the per-expert path the moe op
// ran before (Blas::linearInt8 / linearInt4 per expert, SwiGLU, the same moeCombine) and against
// a scalar double-precision reference over the very weights the GPU multiplies (int8: q, then
// the row scale; int4: bf16(d * q)) with bf16-rounded activations. Odd shapes (the widening's
// scalar path, int4 groups cut short) and 8-multiple ones (its vector path), both row layouts
// (padded, ragged), a routing that leaves one expert idle and one that gives an expert 2 rows.
// The selection and error paths run without a GPU; the rest skips there.
// DISABLED_TimeDeepSeekV2LiteShape (run with --gtest_also_run_disabled_tests) times a layer of
// DeepSeek-V2-Lite's shape grouped and per expert in bf16, int8 and int4.
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/QuantWiden.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/exec/cuda/MoeGrouped.h"
#include "runtime/exec/cuda/MoeGroupedQuant.h"
#include "runtime/exec/cuda/MoeGrouping.h"
#include "runtime/support/DType.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

using namespace kt;
using kt::cudaops::ExpertProduct;
using kt::cudaops::ExpertStacks;
using kt::cudaops::GroupedChunk;
using kt::cudaops::GroupedLayout;
using kt::cudaops::GroupedScratch;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

bool groupedOff() {
  const char* v = std::getenv("KT_CUDA_MOE_GROUPED");
  return v && std::strcmp(v, "0") == 0;
}

// ---- Without a GPU: which stacks take the grouped path, and the scratch checks.

TEST(CudaMoeGroupedQuant, Int8AndInt4StacksTakeTheGroupedPath) {
  float scale = 1.f;
  uint16_t group = 0;
  auto weight = [&](char format) {
    cudaops::GpuWeight w;
    w.data = &scale; // never read here
    w.rows = 4;
    w.cols = 8;
    w.count = 3;
    w.bf16 = format == 'b';
    w.scales = format == '8' ? &scale : nullptr;
    w.groupScales = format == '4' ? &group : nullptr;
    return w;
  };
  const bool on = !groupedOff();
  for (char f : {'f', 'b', '8', '4'})
    EXPECT_EQ(cudaops::groupedExpertsApply(weight(f), weight(f), weight(f)), on) << f;
  // Mixed formats, and split layers (some experts on the CPU), stay on the per-expert path.
  EXPECT_FALSE(cudaops::groupedExpertsApply(weight('8'), weight('8'), weight('4')));
  EXPECT_FALSE(cudaops::groupedExpertsApply(weight('8'), weight('b'), weight('8')));
  EXPECT_FALSE(cudaops::groupedExpertsApply(weight('b'), weight('b'), weight('f')));
  cudaops::GpuWeight split = weight('8');
  split.local = {0, -1, 1};
  EXPECT_FALSE(cudaops::groupedExpertsApply(split, weight('8'), weight('8')));

  const ExpertStacks s8 = cudaops::expertStacksOf(weight('8'), weight('8'), weight('8'));
  EXPECT_TRUE(s8.int8);
  EXPECT_FALSE(s8.int4 || s8.bf16);
  EXPECT_EQ(s8.gateScales, &scale);
  EXPECT_EQ(s8.inter, 4);
  const ExpertStacks s4 = cudaops::expertStacksOf(weight('4'), weight('4'), weight('4'));
  EXPECT_TRUE(s4.int4);
  EXPECT_FALSE(s4.int8 || s4.bf16);
  EXPECT_EQ(s4.downGroups, &group);
  EXPECT_TRUE(cudaops::expertStacksOf(weight('b'), weight('b'), weight('b')).bf16);
}

TEST(CudaMoeGroupedQuant, PrepareStackChecksTheWideningScratch) {
  ExpertStacks w;
  int8_t q = 0;
  float scale = 1.f;
  w.gate = w.up = w.down = &q;
  w.int8 = true;
  w.gateScales = w.upScales = w.downScales = &scale;
  w.inter = 6;
  GroupedChunk g;
  g.H = 10;
  g.items = 3;
  const int32_t slots[3] = {2, 0, 1};
  g.slots = slots;
  GroupedScratch s;
  cudaops::ProductStack ps;
  std::string err;
  // No scratch, then one too small (3 items of 6 x 10 need 180 weights): refused, nothing runs.
  EXPECT_FALSE(cudaops::prepareStack(w, ExpertProduct::Gate, g, s, &ps, &err));
  EXPECT_NE(err.find("need 180"), std::string::npos) << err;
  uint16_t fake = 0;
  s.widened = &fake;
  s.identity = slots;
  s.widenedElems = 179;
  err.clear();
  EXPECT_FALSE(cudaops::prepareStack(w, ExpertProduct::Down, g, s, &ps, &err));
  EXPECT_NE(err.find("down"), std::string::npos) << err;
  EXPECT_NE(err.find("have 179"), std::string::npos) << err;
  EXPECT_EQ(cudaops::widenedElems(w, g.H, 3), 180);
  // f32 / bf16 stacks multiply the stack itself with the chunk's slots (no widening).
  w.int8 = false;
  w.bf16 = true;
  ASSERT_TRUE(cudaops::prepareStack(w, ExpertProduct::Up, g, GroupedScratch{}, &ps, &err)) << err;
  EXPECT_EQ(ps.stack, w.up);
  EXPECT_EQ(ps.slots, g.slots);
  EXPECT_TRUE(ps.bf16);
}

// ---- On the GPU.

// One expert stack [count][n][k] quantized from random weights: int8 (per-row f32 scale) or int4
// (Int4Format.h), on the host and the device.
struct QuantStack {
  bool int4 = false;
  int64_t count = 0, n = 0, k = 0;
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<uint8_t> data;
  std::vector<uint16_t> groups;
  std::unique_ptr<Dev> dQ, dScales;

  QuantStack(std::mt19937& rng, bool int4, int64_t count, int64_t n, int64_t k)
      : int4(int4), count(count), n(n), k(k) {
    const std::vector<float> w = randomVector(rng, size_t(count * n * k), 0.05f);
    if (int4) {
      data.resize(size_t(count * n * cuda::int4RowBytes(k)));
      groups.resize(size_t(count * n * cuda::int4Groups(k)));
      for (int64_t r = 0; r < count * n; ++r)
        cuda::quantizeInt4Row(w.data() + r * k, k, data.data() + r * cuda::int4RowBytes(k),
                              groups.data() + r * cuda::int4Groups(k));
      dQ = std::make_unique<Dev>(data);
      dScales = std::make_unique<Dev>(groups);
      return;
    }
    q.resize(w.size());
    scales.resize(size_t(count * n));
    for (int64_t r = 0; r < count * n; ++r) { // symmetric per row, as the backend's upload
      float m = 0.f;
      for (int64_t c = 0; c < k; ++c)
        m = std::max(m, std::fabs(w[size_t(r * k + c)]));
      const float s = m > 0.f ? m / 127.f : 1.f;
      scales[size_t(r)] = s;
      for (int64_t c = 0; c < k; ++c)
        q[size_t(r * k + c)] = int8_t(std::nearbyint(w[size_t(r * k + c)] / s));
    }
    dQ = std::make_unique<Dev>(q);
    dScales = std::make_unique<Dev>(scales);
  }
  // The weight the GPU's product uses for (slice e, row r, column c), in double: int8 q * scale
  // (the GEMM multiplies q, the scale comes after), int4 bf16(d * q) (QuantWiden.h).
  double weightAt(int64_t e, int64_t r, int64_t c) const {
    const int64_t row = e * n + r;
    if (!int4)
      return double(q[size_t(row * k + c)]) * double(scales[size_t(row)]);
    const float d = cuda::int4ScaleValue(groups[size_t(row * cuda::int4Groups(k) + c / 128)]);
    return double(bf16ToF32(
        cuda::int4WidenedBits(d, data[size_t(row * cuda::int4RowBytes(k) + c / 2)], c % 2 != 0)));
  }
  // weightAt for every element, [count][n][k] (the reference reads each many times).
  std::vector<double> weights() const {
    std::vector<double> w(size_t(count * n * k));
    for (int64_t e = 0; e < count; ++e)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
          w[size_t((e * n + r) * k + c)] = weightAt(e, r, c);
    return w;
  }
  const void* stack() const { return dQ->as<void>(); }
  // Blas::linearInt8 / linearInt4 of slice e: y [tokens, n] = x [tokens, k] . W_e^T.
  bool linear(cuda::Blas& blas, const float* x, int64_t tokens, int64_t e, float* y,
              std::string* err) const {
    if (int4)
      return blas.linearInt4(x, tokens, dQ->as<uint8_t>() + e * n * cuda::int4RowBytes(k),
                             dScales->as<uint16_t>() + e * n * cuda::int4Groups(k), n, k, y, err);
    return blas.linearInt8(x, tokens, dQ->as<int8_t>() + e * n * k, dScales->as() + e * n, n, k, y,
                           err);
  }
};

struct Experts {
  QuantStack gate, up, down;
  Experts(std::mt19937& rng, bool int4, int64_t E, int64_t H, int64_t inter)
      : gate(rng, int4, E, inter, H), up(rng, int4, E, inter, H), down(rng, int4, E, H, inter) {}
  ExpertStacks stacks() const {
    ExpertStacks w;
    w.gate = gate.stack();
    w.up = up.stack();
    w.down = down.stack();
    w.inter = gate.n;
    w.int8 = !gate.int4;
    w.int4 = gate.int4;
    if (w.int8) {
      w.gateScales = gate.dScales->as();
      w.upScales = up.dScales->as();
      w.downScales = down.dScales->as();
    } else {
      w.gateGroups = gate.dScales->as<uint16_t>();
      w.upGroups = up.dScales->as<uint16_t>();
      w.downGroups = down.dScales->as<uint16_t>();
    }
    return w;
  }
};

struct Routing {
  int64_t T = 0;
  int K = 0, E = 0;
  std::vector<int32_t> chosen; // [T * K]
  std::vector<float> weights;  // [T * K]
};

// Every active expert gets more than Blas::kInt8GemvTokens rows (so the per-expert path widens
// too, and its products are the grouped path's up to summation order); expert 4 of 6 gets none.
Routing denseRouting(std::mt19937& rng) {
  Routing r;
  r.T = 70;
  r.K = 2;
  r.E = 6;
  const int active[5] = {0, 1, 2, 3, 5};
  for (int64_t t = 0; t < r.T; ++t) {
    const int a = int(t % 5), b = int((t % 5 + 1 + (t / 5) % 4) % 5);
    r.chosen.push_back(active[a]);
    r.chosen.push_back(active[b]);
  }
  std::uniform_real_distribution<float> u(0.05f, 1.f);
  for (size_t p = 0; p < r.chosen.size(); ++p)
    r.weights.push_back(u(rng));
  return r;
}

// Three distinct experts a token among 0..4, and expert 5 for tokens 0 and 1 only (2 rows).
Routing sparseRouting(std::mt19937& rng) {
  Routing r;
  r.T = 41;
  r.K = 3;
  r.E = 6;
  for (int64_t t = 0; t < r.T; ++t) {
    std::vector<int32_t> pick = {0, 1, 2, 3, 4};
    std::shuffle(pick.begin(), pick.end(), rng);
    if (t < 2)
      pick[1] = 5;
    r.chosen.insert(r.chosen.end(), pick.begin(), pick.begin() + 3);
  }
  std::uniform_real_distribution<float> u(0.05f, 1.f);
  for (size_t p = 0; p < r.chosen.size(); ++p)
    r.weights.push_back(u(rng));
  return r;
}

double silu(double v) {
  return v / (1.0 + std::exp(-v));
}

// out [T, H] in double over the GPU's weights: activations rounded to bf16 before each product
// (as the bf16 GEMMs take them), the SwiGLU output too, each token's pairs summed in top-k order.
std::vector<float> reference(const Experts& ex, const Routing& r, const std::vector<float>& x,
                             int64_t H) {
  const int64_t inter = ex.gate.n;
  const std::vector<double> wg = ex.gate.weights(), wu = ex.up.weights(), wd = ex.down.weights();
  std::vector<float> out(size_t(r.T * H), 0.f);
  std::vector<double> xr(static_cast<size_t>(H)), act(static_cast<size_t>(inter)),
      acc(static_cast<size_t>(H));
  for (int64_t t = 0; t < r.T; ++t) {
    for (int64_t c = 0; c < H; ++c)
      xr[size_t(c)] = bf16ToF32(f32ToBf16(x[size_t(t * H + c)]));
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int k = 0; k < r.K; ++k) {
      const int64_t e = r.chosen[size_t(t * r.K + k)];
      for (int64_t j = 0; j < inter; ++j) {
        const double* gr = wg.data() + (e * inter + j) * H;
        const double* ur = wu.data() + (e * inter + j) * H;
        double g = 0, u = 0;
        for (int64_t c = 0; c < H; ++c) {
          g += xr[size_t(c)] * gr[c];
          u += xr[size_t(c)] * ur[c];
        }
        act[size_t(j)] = bf16ToF32(f32ToBf16(float(silu(g) * u)));
      }
      for (int64_t h = 0; h < H; ++h) {
        const double* dr = wd.data() + (e * H + h) * inter;
        double y = 0;
        for (int64_t j = 0; j < inter; ++j)
          y += act[size_t(j)] * dr[j];
        acc[size_t(h)] += double(r.weights[size_t(t * r.K + k)]) * y;
      }
    }
    for (int64_t h = 0; h < H; ++h)
      out[size_t(t * H + h)] = float(acc[size_t(h)]);
  }
  return out;
}

// The device copies of a routing and the step's rows.
struct StepOnGpu {
  Dev x, chosen, weights;
  StepOnGpu(const std::vector<float>& xv, const Routing& r)
      : x(xv), chosen(r.chosen), weights(r.weights) {}
};

// One chunk's grouping (the whole step), its index on the device and the scratch
// runGroupedChunk needs, for experts of `inter` x `H`.
struct ChunkOnGpu {
  std::unique_ptr<Dev> index, out, rows, gate, up, down, pairY, widened, identity;
  GroupedChunk g;
  GroupedScratch s;
  ChunkOnGpu(const Routing& r, const StepOnGpu& d, int64_t H, int64_t inter, GroupedLayout layout) {
    const cudaops::ChunkGrouping cg = cudaops::countChunk(r.chosen.data(), r.T, r.K, r.E, layout);
    std::vector<int32_t> host(static_cast<size_t>(cg.indexInts()));
    cudaops::fillChunkIndex(cg, r.chosen.data(), 0, nullptr, host.data());
    index = std::make_unique<Dev>(host);
    g = cudaops::chunkOver(cg, index->as<int32_t>());
    g.x = d.x.as();
    g.H = H;
    g.weights = d.weights.as();
    g.experts = d.chosen.as<int32_t>();
    const int64_t slotRows = g.slotRows(), pairs = r.T * r.K;
    auto floats = [](int64_t n) { return std::make_unique<Dev>(size_t(n) * 4); };
    out = floats(r.T * H);
    rows = floats(slotRows * H);
    gate = floats(slotRows * inter);
    up = floats(slotRows * inter);
    down = floats(slotRows * H);
    pairY = floats(pairs * H);
    widened = std::make_unique<Dev>(size_t(g.items * inter * H) * 2);
    identity = floats(g.items);
    g.out = out->as();
    cuda::fillSequence(identity->as<int32_t>(), g.items);
    s = GroupedScratch{rows->as(), gate->as(), up->as(), down->as(), pairY->as()};
    s.widened = widened->as<uint16_t>();
    s.widenedElems = g.items * inter * H;
    s.identity = identity->as<int32_t>();
  }
};

// One chunk of the whole step through runGroupedChunk with the given layout.
std::vector<float> grouped(cuda::Blas& blas, const Experts& ex, const Routing& r,
                           const StepOnGpu& d, int64_t H, GroupedLayout layout) {
  ChunkOnGpu c(r, d, H, ex.gate.n, layout);
  std::string err;
  EXPECT_TRUE(cudaops::runGroupedChunk(blas, ex.stacks(), c.g, c.s, &err))
      << cudaops::groupedLayoutName(layout) << ": " << err;
  EXPECT_TRUE(cuda::launchOk(&err)) << err;
  return c.out->get(size_t(r.T * H));
}

// The moe op's per-expert path: per active expert its rows gathered in token order, the three
// products by Blas::linearInt8/linearInt4, SwiGLU; the pairs' outputs summed by moeCombine.
std::vector<float> perExpert(cuda::Blas& blas, const Experts& ex, const Routing& r,
                             const StepOnGpu& d, int64_t H) {
  const int64_t inter = ex.gate.n;
  std::vector<float> pairY(size_t(r.T * r.K * H));
  std::string err;
  for (int e = 0; e < r.E; ++e) {
    std::vector<int32_t> tokens, pairs;
    for (int64_t p = 0; p < r.T * r.K; ++p)
      if (r.chosen[size_t(p)] == e) {
        tokens.push_back(int32_t(p / r.K));
        pairs.push_back(int32_t(p));
      }
    if (tokens.empty())
      continue;
    const int64_t n = int64_t(tokens.size());
    Dev dTokens(tokens), xe(size_t(n * H) * 4), gv(size_t(n * inter) * 4),
        uv(size_t(n * inter) * 4), y(size_t(n * H) * 4);
    cuda::gatherRows(d.x.as(), H, dTokens.as<int32_t>(), n, xe.as());
    EXPECT_TRUE(ex.gate.linear(blas, xe.as(), n, e, gv.as(), &err) &&
                ex.up.linear(blas, xe.as(), n, e, uv.as(), &err))
        << err;
    cuda::swiglu(gv.as(), uv.as(), gv.as(), n * inter);
    EXPECT_TRUE(ex.down.linear(blas, gv.as(), n, e, y.as(), &err)) << err;
    const std::vector<float> ye = y.get(size_t(n * H));
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(ye.begin() + i * H, H, pairY.begin() + int64_t(pairs[size_t(i)]) * H);
  }
  Dev dPairY(pairY), out(size_t(r.T * H) * 4);
  cuda::moeCombine(dPairY.as(), d.weights.as(), d.chosen.as<int32_t>(), nullptr, r.E, r.T, r.K, H,
                   nullptr, nullptr, out.as());
  EXPECT_TRUE(cuda::launchOk(&err)) << err;
  return out.get(size_t(r.T * H));
}

TEST(CudaMoeGroupedQuant, ChunkMatchesPerExpertPathAndReference) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(41);
  // (H, inter): odd (the widening's scalar path; int4 groups of 75 and 9 columns at the end),
  // 8-multiples (the vector path; int4 down's last group 8 columns).
  for (auto [H, inter] : {std::pair<int64_t, int64_t>{203, 137}, {256, 136}})
    for (bool int4 : {false, true}) {
      const Experts ex(rng, int4, 6, H, inter);
      for (bool dense : {true, false}) {
        const Routing r = dense ? denseRouting(rng) : sparseRouting(rng);
        const std::vector<float> x = randomVector(rng, size_t(r.T * H));
        const StepOnGpu d(x, r);
        const std::vector<float> want = reference(ex, r, x, H);
        const std::vector<float> padded = grouped(*blas, ex, r, d, H, GroupedLayout::Padded);
        const std::vector<float> ragged = grouped(*blas, ex, r, d, H, GroupedLayout::Ragged);
        const std::vector<float> bucketed = grouped(*blas, ex, r, d, H, GroupedLayout::Bucketed);
        const std::string what = std::string(int4 ? "int4" : "int8") + " H=" + std::to_string(H) +
                                 " inter=" + std::to_string(inter) +
                                 (dense ? " dense" : " sparse") + " routing";
        // Bounds: outputs are ~0.2; the bf16 rounding of the activations flips now and then
        // between summation orders (2^-8 of one term), far below a wrong slice or scale (O(1)).
        const double dRef = maxRelDiff(padded, want), dRagged = maxRelDiff(ragged, want);
        std::printf("[grouped-quant] %s: padded vs reference %.3g, ragged vs reference %.3g",
                    what.c_str(), dRef, dRagged);
        EXPECT_LT(dRef, 5e-3) << what << ", padded";
        // Ragged rounds each product to bf16 before widening it (Blas::linearStackRagged).
        EXPECT_LT(dRagged, 1e-2) << what << ", ragged";
        // Bucketed: the padded path's products over each bucket (other paddings, same sums).
        const double dBucketed = maxRelDiff(bucketed, want);
        std::printf(", bucketed vs reference %.3g", dBucketed);
        EXPECT_LT(dBucketed, 5e-3) << what << ", bucketed";
        if (dense) { // every expert > 16 rows: the per-expert path widens the same weights
          const std::vector<float> loop = perExpert(*blas, ex, r, d, H);
          const double dLoop = maxRelDiff(padded, loop);
          std::printf(", padded vs per-expert %.3g", dLoop);
          EXPECT_LT(dLoop, 1e-3) << what << ", padded vs the per-expert path";
          EXPECT_LT(maxRelDiff(loop, want), 5e-3) << what << ", per-expert vs reference";
        }
        std::printf("\n");
      }
    }
}

// ---- Timing (disabled by default; scripts/device/grouped-quant.sh runs it on the H100).

// A stack of E experts [n, k] with patterned values (timing only: no host quantization of ~0.5
// GB of random weights).
struct TimingStack {
  std::unique_ptr<Dev> data, scales;
  TimingStack(char format, int64_t E, int64_t n, int64_t k) {
    if (format == '4') {
      std::vector<uint8_t> d(size_t(E * n * cuda::int4RowBytes(k)));
      for (size_t i = 0; i < d.size(); ++i)
        d[i] = uint8_t((i * 2654435761u) >> 13);
      std::vector<uint16_t> s(size_t(E * n * cuda::int4Groups(k)), cuda::int4ScaleBits(0.004f));
      data = std::make_unique<Dev>(d);
      scales = std::make_unique<Dev>(s);
    } else if (format == '8') {
      std::vector<int8_t> q(size_t(E * n * k));
      for (size_t i = 0; i < q.size(); ++i)
        q[i] = int8_t(int(((i * 2654435761u) >> 13) % 255) - 127);
      data = std::make_unique<Dev>(q);
      scales = std::make_unique<Dev>(std::vector<float>(size_t(E * n), 2e-4f));
    } else {
      std::vector<uint16_t> b(size_t(E * n * k));
      for (size_t i = 0; i < b.size(); ++i)
        b[i] = f32ToBf16(float(int(((i * 2654435761u) >> 13) % 255) - 127) * 2e-4f);
      data = std::make_unique<Dev>(b);
    }
  }
};

TEST(CudaMoeGroupedQuant, DISABLED_TimeDeepSeekV2LiteShape) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  const int E = 64, K = 6;
  const int64_t H = 2048, inter = 1408;
  std::mt19937 rng(7);
  for (char format : {'b', '8', '4'}) {
    const TimingStack gate(format, E, inter, H), up(format, E, inter, H), down(format, E, H, inter);
    ExpertStacks w;
    w.gate = gate.data->as<void>();
    w.up = up.data->as<void>();
    w.down = down.data->as<void>();
    w.inter = inter;
    w.bf16 = format == 'b';
    w.int8 = format == '8';
    w.int4 = format == '4';
    if (w.int8) {
      w.gateScales = gate.scales->as();
      w.upScales = up.scales->as();
      w.downScales = down.scales->as();
    } else if (w.int4) {
      w.gateGroups = gate.scales->as<uint16_t>();
      w.upGroups = up.scales->as<uint16_t>();
      w.downGroups = down.scales->as<uint16_t>();
    }
    const char* name = format == 'b' ? "bf16" : format == '8' ? "int8" : "int4";
    for (int64_t T : {512, 1024}) {
      Routing r;
      r.T = T;
      r.K = K;
      r.E = E;
      std::vector<int32_t> all(static_cast<size_t>(E));
      for (int e = 0; e < E; ++e)
        all[size_t(e)] = e;
      for (int64_t t = 0; t < T; ++t) {
        std::shuffle(all.begin(), all.end(), rng);
        r.chosen.insert(r.chosen.end(), all.begin(), all.begin() + K);
      }
      r.weights.assign(r.chosen.size(), 1.f / K);
      const std::vector<float> x = randomVector(rng, size_t(T * H));
      const StepOnGpu d(x, r);
      ChunkOnGpu c(r, d, H, inter, GroupedLayout::Padded);
      GroupedChunk& g = c.g;
      GroupedScratch& s = c.s;
      // Best of 5 after a warm-up, whole chunk (synchronized).
      auto best = [&](auto&& fn) {
        double ms = 1e30;
        for (int rep = 0; rep < 6; ++rep) {
          const auto t0 = std::chrono::steady_clock::now();
          fn();
          EXPECT_TRUE(cuda::synchronize(&err)) << err;
          const double m =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count();
          if (rep > 0)
            ms = std::min(ms, m);
        }
        return ms;
      };
      bool ok = true;
      const double groupedMs =
          best([&] { ok = ok && cudaops::runGroupedChunk(*blas, w, g, s, &err); });
      ASSERT_TRUE(ok) << err;
      // The widening alone (one product's active slices; int8/int4 only).
      double widenMs = 0;
      if (!w.bf16)
        widenMs = best([&] {
          cudaops::ProductStack ps;
          ok = ok && cudaops::prepareStack(w, ExpertProduct::Gate, g, s, &ps, &err);
        });
      ASSERT_TRUE(ok) << err;
      // The per-expert path: per expert a gather, three products, SwiGLU, a weighted scatter-add.
      std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(E));
      std::vector<std::vector<float>> tw(static_cast<size_t>(E));
      for (int64_t p = 0; p < T * K; ++p) {
        tokens[size_t(r.chosen[size_t(p)])].push_back(int32_t(p / K));
        tw[size_t(r.chosen[size_t(p)])].push_back(r.weights[size_t(p)]);
      }
      std::vector<std::unique_ptr<Dev>> dTok, dTw;
      int64_t most = 0;
      for (int e = 0; e < E; ++e) {
        const bool idle = tokens[size_t(e)].empty(); // no allocation of 0 bytes
        dTok.push_back(idle ? nullptr : std::make_unique<Dev>(tokens[size_t(e)]));
        dTw.push_back(idle ? nullptr : std::make_unique<Dev>(tw[size_t(e)]));
        most = std::max<int64_t>(most, int64_t(tokens[size_t(e)].size()));
      }
      Dev xe(size_t(most * H) * 4), gv(size_t(most * inter) * 4), uv(size_t(most * inter) * 4),
          y(size_t(most * H) * 4);
      auto lin = [&](const TimingStack& st, const float* in, int64_t n, int e, int64_t rowsN,
                     int64_t k, float* yo) {
        if (format == '8')
          return blas->linearInt8(in, n, st.data->as<int8_t>() + e * rowsN * k,
                                  st.scales->as() + e * rowsN, rowsN, k, yo, &err);
        if (format == '4')
          return blas->linearInt4(in, n, st.data->as<uint8_t>() + e * rowsN * cuda::int4RowBytes(k),
                                  st.scales->as<uint16_t>() + e * rowsN * cuda::int4Groups(k),
                                  rowsN, k, yo, &err);
        return blas->linear(in, n, st.data->as<uint16_t>() + e * rowsN * k, true, rowsN, k, yo,
                            &err);
      };
      const double loopMs = best([&] {
        ok = ok && cuda::fillZero(c.out->as(), size_t(T * H) * 4, &err);
        for (int e = 0; e < E; ++e) {
          const int64_t n = int64_t(tokens[size_t(e)].size());
          if (n == 0)
            continue;
          cuda::gatherRows(d.x.as(), H, dTok[size_t(e)]->as<int32_t>(), n, xe.as());
          ok = ok && lin(gate, xe.as(), n, e, inter, H, gv.as()) &&
               lin(up, xe.as(), n, e, inter, H, uv.as());
          cuda::swiglu(gv.as(), uv.as(), gv.as(), n * inter);
          ok = ok && lin(down, gv.as(), n, e, H, inter, y.as());
          cuda::scatterAddRows(y.as(), H, dTok[size_t(e)]->as<int32_t>(), dTw[size_t(e)]->as(), n,
                               c.out->as());
        }
      });
      ASSERT_TRUE(ok) << err;
      std::printf("[grouped-quant-time] DeepSeek-V2-Lite layer (64 x 1408 x 2048, top-6) %s "
                  "T=%lld: grouped %.3f ms (%.0f tok/s a layer; widening one product %.3f ms), "
                  "per-expert %.3f ms (x%.2f)\n",
                  name, (long long)T, groupedMs, double(T) / (groupedMs * 1e-3), widenMs, loopMs,
                  loopMs / groupedMs);
      std::fflush(stdout);
    }
  }
}

} // namespace
