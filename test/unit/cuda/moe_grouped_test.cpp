// The grouped prefill MoE chunk (runtime/exec/cuda/MoeGrouped.h: runGroupedChunk over the index of
// MoeGrouping.h) in both layouts against the per-expert path on the same inputs (per active
// expert: gather its rows, Blas::linear gate/up, SwiGLU, Blas::linear down; the pairs combined on
// the host in top-k order) and against a scalar host reference: random top-3 routing of 37 tokens
// over 9 experts (two never chosen), the stacks' slices out of order, a chunk that starts at token
// 5 of the step, shared experts with a per-token scale; bf16 and f32 stacks. Skips without a GPU.
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "runtime/exec/cuda/MoeGrouped.h"
#include "runtime/support/DType.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <cmath>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

constexpr int kE = 9, kK = 3;
constexpr int64_t kH = 48, kI = 40, kT = 37, kFirst = 5; // H, I multiples of 8: bf16 alignment

float roundIf(bool bf16, float v) {
  return bf16 ? bf16ToF32(f32ToBf16(v)) : v;
}

// One layer's inputs on the host.
struct Layer {
  bool bf16;
  std::vector<float> gate, up, down;       // exact values, stack order [slice][rows][cols]
  std::vector<uint16_t> gateB, upB, downB; // bf16 bits (bf16 stacks)
  std::vector<int64_t> sliceOf;            // expert e's slice
  std::vector<float> x, shared, scale;     // x: [kFirst + kT, H]; shared [T, H], scale [T]
  std::vector<int32_t> chosen;             // [T * K], the chunk's tokens only
  std::vector<float> weights;              // [T * K]

  Layer(std::mt19937& rng, bool bf16_) : bf16(bf16_) {
    auto stack = [&](int64_t rows, int64_t cols, std::vector<uint16_t>* bits) {
      std::vector<float> w = randomVector(rng, static_cast<size_t>(kE * rows * cols), 0.15f);
      if (bf16) {
        bits->resize(w.size());
        for (size_t i = 0; i < w.size(); ++i) {
          (*bits)[i] = f32ToBf16(w[i]);
          w[i] = bf16ToF32((*bits)[i]);
        }
      }
      return w;
    };
    gate = stack(kI, kH, &gateB);
    up = stack(kI, kH, &upB);
    down = stack(kH, kI, &downB);
    for (int e = 0; e < kE; ++e)
      sliceOf.push_back((e * 4 + 3) % kE); // a permutation of 0..8 (4 is coprime to 9)
    x = randomVector(rng, static_cast<size_t>((kFirst + kT) * kH));
    shared = randomVector(rng, static_cast<size_t>(kT * kH), 0.5f);
    std::uniform_real_distribution<float> u(0.2f, 1.5f);
    for (int64_t t = 0; t < kT; ++t)
      scale.push_back(u(rng));
    std::vector<int32_t> pool = {0, 1, 3, 4, 6, 7, 8}; // experts 2 and 5 never chosen
    for (int64_t t = 0; t < kT; ++t) {
      std::shuffle(pool.begin(), pool.end(), rng);
      for (int j = 0; j < kK; ++j) {
        chosen.push_back(pool[size_t(j)]);
        weights.push_back(u(rng) / kK);
      }
    }
  }
  const float* w(const std::vector<float>& s, int e, int64_t rows, int64_t cols) const {
    return s.data() + sliceOf[size_t(e)] * rows * cols;
  }
  // out[t] = sum_k weights * y_k in top-k order + scale[t] * shared[t] (moeCombine's order).
  std::vector<float> combine(const std::vector<float>& pairY) const {
    std::vector<float> out(static_cast<size_t>(kT * kH));
    for (int64_t t = 0; t < kT; ++t)
      for (int64_t c = 0; c < kH; ++c) {
        float acc = 0;
        for (int j = 0; j < kK; ++j)
          acc += weights[size_t(t * kK + j)] * pairY[size_t((t * kK + j) * kH + c)];
        out[size_t(t * kH + c)] = acc + scale[size_t(t)] * shared[size_t(t * kH + c)];
      }
    return out;
  }
};

// The scalar reference with the runtime's roundings: bf16 stacks take x and the SwiGLU output
// rounded to bf16 (f32 sums, here double).
std::vector<float> hostReference(const Layer& L) {
  std::vector<float> pairY(static_cast<size_t>(kT * kK * kH));
  std::vector<float> h(static_cast<size_t>(kI));
  for (int64_t p = 0; p < kT * kK; ++p) {
    const int e = L.chosen[size_t(p)];
    const float* xr = L.x.data() + (kFirst + p / kK) * kH;
    const float *g = L.w(L.gate, e, kI, kH), *u = L.w(L.up, e, kI, kH), *d = L.w(L.down, e, kH, kI);
    for (int64_t i = 0; i < kI; ++i) {
      double sg = 0, su = 0;
      for (int64_t c = 0; c < kH; ++c) {
        const double xv = roundIf(L.bf16, xr[c]);
        sg += xv * g[i * kH + c];
        su += xv * u[i * kH + c];
      }
      const float gf = float(sg);
      h[size_t(i)] = roundIf(L.bf16, gf / (1.0f + std::exp(-gf)) * float(su));
    }
    for (int64_t c = 0; c < kH; ++c) {
      double s = 0;
      for (int64_t i = 0; i < kI; ++i)
        s += double(h[size_t(i)]) * d[c * kI + i];
      pairY[size_t(p * kH + c)] = float(s);
    }
  }
  return L.combine(pairY);
}

// The per-expert path on the GPU: for each active expert, its rows gathered, Blas::linear gate and
// up, SwiGLU, Blas::linear down (the same products the grouped path batches).
std::vector<float> perExpertPath(cuda::Blas& blas, const Layer& L, const Dev& dx, const Dev& dGate,
                                 const Dev& dUp, const Dev& dDown) {
  const size_t elem = L.bf16 ? 2 : 4;
  std::vector<float> pairY(static_cast<size_t>(kT * kK * kH));
  std::string err;
  for (int e = 0; e < kE; ++e) {
    std::vector<int32_t> rows, pairs;
    for (int64_t p = 0; p < kT * kK; ++p)
      if (L.chosen[size_t(p)] == e) {
        rows.push_back(int32_t(kFirst + p / kK));
        pairs.push_back(int32_t(p));
      }
    if (rows.empty())
      continue;
    const int64_t n = int64_t(rows.size());
    Dev dRows(rows), xe(size_t(n * kH) * 4), g(size_t(n * kI) * 4), u(size_t(n * kI) * 4),
        y(size_t(n * kH) * 4);
    const size_t slice = size_t(L.sliceOf[size_t(e)]);
    cuda::gatherRows(dx.as(), kH, dRows.as<int32_t>(), n, xe.as());
    EXPECT_TRUE(blas.linear(xe.as(), n, dGate.as<char>() + slice * kI * kH * elem, L.bf16, kI, kH,
                            g.as(), &err))
        << err;
    EXPECT_TRUE(blas.linear(xe.as(), n, dUp.as<char>() + slice * kI * kH * elem, L.bf16, kI, kH,
                            u.as(), &err))
        << err;
    cuda::swiglu(g.as(), u.as(), g.as(), n * kI);
    EXPECT_TRUE(blas.linear(g.as(), n, dDown.as<char>() + slice * kH * kI * elem, L.bf16, kH, kI,
                            y.as(), &err))
        << err;
    const std::vector<float> ye = y.get(size_t(n * kH));
    for (int64_t r = 0; r < n; ++r)
      std::copy(ye.begin() + r * kH, ye.begin() + (r + 1) * kH,
                pairY.begin() + int64_t(pairs[size_t(r)]) * kH);
  }
  return L.combine(pairY);
}

TEST(CudaMoeGrouped, ChunkInBothLayoutsMatchesThePerExpertPath) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(3);
  for (const bool bf16 : {true, false}) {
    const Layer L(rng, bf16);
    Dev dx(L.x), dShared(L.shared), dScale(L.scale), dWeights(L.weights), dExperts(L.chosen);
    Dev dGate = bf16 ? Dev(L.gateB) : Dev(L.gate);
    Dev dUp = bf16 ? Dev(L.upB) : Dev(L.up);
    Dev dDown = bf16 ? Dev(L.downB) : Dev(L.down);
    const std::vector<float> want = hostReference(L);
    const std::vector<float> loop = perExpertPath(*blas, L, dx, dGate, dUp, dDown);
    // The per-expert path itself against the host (f32 sums in another order; bf16: a SwiGLU
    // output near a rounding boundary may round the other way).
    EXPECT_LT(maxRelDiff(loop, want), bf16 ? 2e-3 : 1e-5) << (bf16 ? "bf16" : "f32");
    for (const cudaops::GroupedLayout layout :
         {cudaops::GroupedLayout::Padded, cudaops::GroupedLayout::Ragged,
          cudaops::GroupedLayout::Bucketed}) {
      SCOPED_TRACE(std::string(cudaops::groupedLayoutName(layout)) + (bf16 ? " bf16" : " f32"));
      const cudaops::ChunkGrouping g = cudaops::countChunk(L.chosen.data(), kT, kK, kE, layout);
      std::vector<int32_t> index(static_cast<size_t>(g.indexInts()));
      cudaops::fillChunkIndex(g, L.chosen.data(), kFirst, L.sliceOf.data(), index.data());
      Dev dIndex(index);
      const int64_t slotRows = g.slotRows();
      Dev rows(size_t(slotRows * kH) * 4), gate(size_t(slotRows * kI) * 4),
          up(size_t(slotRows * kI) * 4), down(size_t(slotRows * kH) * 4),
          pairY(size_t(kT * kK * kH) * 4), out(size_t(kT * kH) * 4);
      cudaops::GroupedScratch s;
      s.rows = rows.as();
      s.gate = gate.as();
      s.up = up.as();
      s.down = down.as();
      s.pairY = pairY.as();
      cudaops::ExpertStacks w;
      w.gate = dGate.as<void>();
      w.up = dUp.as<void>();
      w.down = dDown.as<void>();
      w.bf16 = bf16;
      w.inter = kI;
      cudaops::GroupedChunk c = cudaops::chunkOver(g, dIndex.as<int32_t>());
      c.x = dx.as();
      c.H = kH;
      c.weights = dWeights.as();
      c.experts = dExperts.as<int32_t>();
      c.shared = dShared.as();
      c.sharedScale = dScale.as();
      c.out = out.as();
      EXPECT_EQ(c.slotRows(), slotRows);
      ASSERT_TRUE(cudaops::runGroupedChunk(*blas, w, c, s, &err)) << err;
      const std::vector<float> got = out.get(size_t(kT * kH));
      // Padded keeps the per-expert products' semantics (f32 sums, another order). Ragged bf16
      // rounds each product's output to bf16 (cuBLAS's grouped GEMM writes bf16 only): gate, up
      // and down each add up to 2^-9 relative.
      const bool roundedOutputs = bf16 && layout == cudaops::GroupedLayout::Ragged;
      EXPECT_LT(maxRelDiff(got, loop), roundedOutputs ? 2e-2 : bf16 ? 2e-4 : 1e-5);
      EXPECT_LT(maxRelDiff(got, want), roundedOutputs ? 2e-2 : bf16 ? 2e-3 : 1e-5);
    }
  }
}

} // namespace
