// The decode MoE kernels (kernels/cuda/MoeDecode.cu) and the device-offset KV append and attention
// (what CUDA graphs replay) against scalar CPU references: odd shapes (rows not a multiple of the
// 8-row block or of the int4 kernels' 2 and 4 rows per warp, cols not a multiple of the
// 8-element loads, and multiples for the vector path; int4 rows of several groups with a partial
// last 32-column chunk: 520 and 1030 columns), T = 1..8, top-k with repeated and -1 ids, split
// layers (experts the GPU does not hold), f32, bf16, int8 and int4 weights (int4: rows shorter than
// one 128-column group, and a partial last group), shared experts with and without a per-token
// scale. Without a GPU they skip.
#include "kernels/cpu/Attention.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Format.h"
#include "runtime/support/DType.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <cmath>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

// A stack of `count` experts [rows, cols] in one of the four GPU formats, with its f32 values as
// the GPU sees them (bf16-rounded, q, or int4's d * q) for the reference.
struct Stack {
  cuda::ExpertDType type;
  int64_t count, rows, cols;
  std::vector<float> f32;            // the raw values (f32 format), or the dequantized ones
  std::vector<uint16_t> bf16;        // bf16 format
  std::vector<int8_t> q;             // int8 format
  std::vector<float> scales;         // int8: count * rows
  std::vector<uint8_t> packed;       // int4 format (Int4Format.h)
  std::vector<uint16_t> groupScales; // int4: count * rows * int4Groups(cols)
  std::unique_ptr<Dev> data, scaleDev;

  Stack(std::mt19937& rng, cuda::ExpertDType t, int64_t n, int64_t r, int64_t c)
      : type(t), count(n), rows(r), cols(c) {
    // Small weights keep SwiGLU's output near 1, where a last-bit difference that moves a bf16
    // rounding by one step changes a sum by ~1e-4 (the bf16 bound below).
    f32 = randomVector(rng, size_t(n * r * c), 0.05f);
    if (t == cuda::ExpertDType::BF16) {
      bf16.resize(f32.size());
      for (size_t i = 0; i < f32.size(); ++i) {
        bf16[i] = f32ToBf16(f32[i]);
        f32[i] = bf16ToF32(bf16[i]);
      }
      data = std::make_unique<Dev>(bf16);
    } else if (t == cuda::ExpertDType::Int8) {
      q.resize(f32.size());
      scales.resize(size_t(n * r));
      for (size_t row = 0; row < scales.size(); ++row) {
        scales[row] = 0.0001f + 0.000004f * float(rng() % 100); // |w| <= 0.064
        for (int64_t i = 0; i < c; ++i) {
          q[row * size_t(c) + size_t(i)] = int8_t(int(rng() % 255) - 127);
          f32[row * size_t(c) + size_t(i)] = float(q[row * size_t(c) + size_t(i)]);
        }
      }
      data = std::make_unique<Dev>(q);
      scaleDev = std::make_unique<Dev>(scales);
    } else if (t == cuda::ExpertDType::Int4) {
      const int64_t rowBytes = cuda::int4RowBytes(c), groups = cuda::int4Groups(c);
      packed.resize(size_t(n * r * rowBytes));
      groupScales.resize(size_t(n * r * groups));
      for (int64_t row = 0; row < n * r; ++row) {
        cuda::quantizeInt4Row(f32.data() + row * c, c, packed.data() + row * rowBytes,
                              groupScales.data() + row * groups);
        for (int64_t i = 0; i < c; ++i)
          f32[size_t(row * c + i)] = cuda::int4Weight(packed.data(), groupScales.data(), c, row, i);
      }
      data = std::make_unique<Dev>(packed);
      scaleDev = std::make_unique<Dev>(groupScales);
    } else {
      data = std::make_unique<Dev>(f32);
    }
  }
  cuda::ExpertStack device(const int32_t* local, int numExperts) const {
    cuda::ExpertStack s;
    s.data = data->as<void>();
    s.dtype = int(type);
    s.scales = scaleDev && type == cuda::ExpertDType::Int8 ? scaleDev->as() : nullptr;
    s.groupScales =
        scaleDev && type == cuda::ExpertDType::Int4 ? scaleDev->as<uint16_t>() : nullptr;
    s.rows = rows;
    s.cols = cols;
    s.local = local;
    s.numExperts = numExperts;
    return s;
  }
  // x . W[slice, row] as the kernel defines it (bf16: activations rounded to bf16; int8: the
  // row's scale applied to the integer-weight sum), accumulated in double.
  float dot(int64_t slice, int64_t row, const float* x) const {
    double acc = 0;
    const float* w = f32.data() + (slice * rows + row) * cols;
    for (int64_t i = 0; i < cols; ++i) {
      const float xv = type == cuda::ExpertDType::BF16 ? bf16ToF32(f32ToBf16(x[i])) : x[i];
      acc += double(w[i]) * double(xv);
    }
    if (type == cuda::ExpertDType::Int8)
      acc *= double(scales[size_t(slice * rows + row)]);
    return float(acc);
  }
};

const char* name(cuda::ExpertDType t) {
  return t == cuda::ExpertDType::F32    ? "f32"
         : t == cuda::ExpertDType::BF16 ? "bf16"
         : t == cuda::ExpertDType::Int8 ? "int8"
                                        : "int4";
}

// Routed experts (with a split map), combined with a shared expert, for every format and shape.
TEST(CudaMoeDecode, RoutedAndSharedMatchReference) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(21);
  const int numExperts = 6, topK = 3;
  struct Shape {
    int64_t hidden, inter;
  };
  for (cuda::ExpertDType type : {cuda::ExpertDType::F32, cuda::ExpertDType::BF16,
                                 cuda::ExpertDType::Int8, cuda::ExpertDType::Int4})
    for (Shape sh : {Shape{45, 13}, Shape{64, 40}, Shape{256 + 8, 33}, Shape{7, 9},
                     Shape{128 + 2, 136}, Shape{520, 150}, Shape{1030, 264}})
      for (int64_t T = 1; T <= cuda::kMoeDecodeMaxTokens; ++T)
        for (bool split : {false, true}) {
          const int64_t H = sh.hidden, I = sh.inter;
          // The GPU holds experts 0, 2, 3, 5 of a split layer (slices 0..3); all 6 otherwise.
          std::vector<int32_t> local = {0, -1, 1, 2, -1, 3};
          const int64_t held = split ? 4 : numExperts;
          Stack gate(rng, type, held, I, H), up(rng, type, held, I, H), down(rng, type, held, H, I);
          Stack sGate(rng, type, 1, I + 3, H), sUp(rng, type, 1, I + 3, H),
              sDown(rng, type, 1, H, I + 3);
          std::vector<float> x = randomVector(rng, size_t(T * H));
          std::vector<int32_t> experts(size_t(T * topK));
          for (int32_t& e : experts)
            e = int32_t(rng() % (numExperts + 1)) - 1; // -1 .. 5, repeats allowed
          experts[0] = -1;
          if (T > 1)
            experts[size_t(topK)] = experts[size_t(topK) + 1] = 2; // a repeated id in one token
          std::vector<float> weights = randomVector(rng, experts.size());
          std::vector<float> scale = randomVector(rng, size_t(T));
          const bool withScale = T % 2 == 1;

          // Reference: per pair SwiGLU(gate, up) then down, summed per token in k order.
          std::vector<float> want(size_t(T * H), 0.f), act(size_t(I + 3));
          for (int64_t t = 0; t < T; ++t) {
            const float* xt = x.data() + t * H;
            for (int k = 0; k < topK; ++k) {
              const int32_t e = experts[size_t(t * topK + k)];
              const int64_t slice = e < 0 ? -1 : split ? local[size_t(e)] : e;
              if (slice < 0)
                continue;
              for (int64_t r = 0; r < I; ++r) {
                const float g = gate.dot(slice, r, xt), u = up.dot(slice, r, xt);
                act[size_t(r)] = g / (1.f + std::exp(-g)) * u;
              }
              for (int64_t h = 0; h < H; ++h)
                want[size_t(t * H + h)] +=
                    weights[size_t(t * topK + k)] * down.dot(slice, h, act.data());
            }
            for (int64_t r = 0; r < I + 3; ++r) {
              const float g = sGate.dot(0, r, xt), u = sUp.dot(0, r, xt);
              act[size_t(r)] = g / (1.f + std::exp(-g)) * u;
            }
            for (int64_t h = 0; h < H; ++h)
              want[size_t(t * H + h)] +=
                  (withScale ? scale[size_t(t)] : 1.f) * sDown.dot(0, h, act.data());
          }

          Dev dx(x), dE(experts), dW(weights), dScale(scale), dLocal(local);
          Dev dAct(size_t(T * topK * I) * 4), dY(size_t(T * topK * H) * 4);
          Dev dSAct(size_t(T * (I + 3)) * 4), dShared(size_t(T * H) * 4), dOut(size_t(T * H) * 4);
          const int32_t* loc = split ? dLocal.as<int32_t>() : nullptr;
          cuda::moeGateUpDecode(dx.as(), T, topK, dE.as<int32_t>(), gate.device(loc, numExperts),
                                up.device(loc, numExperts), dAct.as());
          cuda::moeDownDecode(dAct.as(), T * topK, dE.as<int32_t>(), down.device(loc, numExperts),
                              dY.as());
          cuda::moeGateUpDecode(dx.as(), T, 1, nullptr, sGate.device(nullptr, 1),
                                sUp.device(nullptr, 1), dSAct.as());
          cuda::moeDownDecode(dSAct.as(), T, nullptr, sDown.device(nullptr, 1), dShared.as());
          cuda::moeCombine(dY.as(), dW.as(), dE.as<int32_t>(), loc, numExperts, T, topK, H,
                           dShared.as(), withScale ? dScale.as() : nullptr, dOut.as());
          std::string err;
          ASSERT_TRUE(cuda::launchOk(&err)) << err;
          // bf16: SwiGLU's output is rounded to bf16 before the down projection on both sides;
          // a last-bit difference in it can move a rounding by one bf16 step. A wrong or missing
          // pair moves outputs by ~0.1.
          const double tol = type == cuda::ExpertDType::BF16 ? 1e-3 : 1e-5;
          EXPECT_LT(maxRelDiff(dOut.get(size_t(T * H)), want), tol)
              << name(type) << " H=" << H << " I=" << I << " T=" << T << " split=" << split;
        }
}

// moeCombine without routed rows (hybrid layers: only the shared experts on the GPU), and a
// skipped pair's rows are exactly zero.
TEST(CudaMoeDecode, SkippedPairsAreZeroAndSharedOnlyCombine) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(22);
  const int64_t H = 19, I = 11, T = 2;
  Stack gate(rng, cuda::ExpertDType::F32, 2, I, H), up(rng, cuda::ExpertDType::F32, 2, I, H);
  std::vector<float> x = randomVector(rng, size_t(T * H)),
                     shared = randomVector(rng, size_t(T * H));
  std::vector<int32_t> experts = {-1, 1, 7, 0}; // -1, held, out of range, held
  Dev dx(x), dE(experts), dAct(size_t(T * 2 * I) * 4), dShared(shared), dOut(size_t(T * H) * 4);
  cuda::moeGateUpDecode(dx.as(), T, 2, dE.as<int32_t>(), gate.device(nullptr, 2),
                        up.device(nullptr, 2), dAct.as());
  std::vector<float> act = dAct.get(size_t(T * 2 * I));
  for (int64_t r = 0; r < I; ++r) {
    EXPECT_EQ(act[size_t(0 * I + r)], 0.f);
    EXPECT_EQ(act[size_t(2 * I + r)], 0.f);
    EXPECT_NE(act[size_t(1 * I + r)], 0.f);
  }
  cuda::moeCombine(nullptr, nullptr, nullptr, nullptr, 0, T, 0, H, dShared.as(), nullptr,
                   dOut.as());
  EXPECT_EQ(dOut.get(size_t(T * H)), shared);
}

// The KV append at a position read from device memory, and attention whose pos0 comes from
// device memory, equal the host-offset versions (CUDA graphs replay these at every position).
TEST(CudaMoeDecode, DeviceOffsetAppendAndAttention) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(23);
  const int heads = 4, kvHeads = 2, hd = 24, capacity = 300;
  const int64_t row = int64_t(kvHeads) * hd;
  for (int64_t pos0 : {0, 5, 131}) {
    const int64_t len = pos0 == 5 ? 3 : 1;
    std::vector<float> cacheK = randomVector(rng, size_t(capacity * row)),
                       cacheV = randomVector(rng, size_t(capacity * row));
    // New keys/values: `len` rows inside wider rows (srcPitch > width).
    const int64_t pitch = row + 5;
    std::vector<float> newK = randomVector(rng, size_t(len * pitch)),
                       newV = randomVector(rng, size_t(len * pitch));
    std::vector<float> wantK = cacheK, wantV = cacheV;
    for (int64_t r = 0; r < len; ++r)
      for (int64_t c = 0; c < row; ++c) {
        wantK[size_t((pos0 + r) * row + c)] = newK[size_t(r * pitch + c)];
        wantV[size_t((pos0 + r) * row + c)] = newV[size_t(r * pitch + c)];
      }
    std::vector<int32_t> p0 = {int32_t(pos0)};
    Dev dK(cacheK), dV(cacheV), dNK(newK), dNV(newV), dP0(p0);
    cuda::appendRows(dK.as(), row, capacity, dNK.as(), pitch, row, len, dP0.as<int32_t>(), -7);
    cuda::appendRows(dV.as(), row, capacity, dNV.as(), pitch, row, len, nullptr, pos0);
    EXPECT_EQ(dK.get(cacheK.size()), wantK) << "pos0 " << pos0;
    EXPECT_EQ(dV.get(cacheV.size()), wantV) << "pos0 " << pos0;

    std::vector<float> q = randomVector(rng, size_t(len * heads * hd)), want(q.size());
    cpu::gqaAttention(pool, q.data(), len, heads, kvHeads, hd, wantK.data(), wantV.data(), pos0,
                      0.2, want.data());
    Dev dq(q), dOut(q.size() * 4);
    cuda::AttentionArgs a =
        cuda::gqaAttentionArgs(dq.as(), dK.as(), dV.as(), dOut.as(), heads, kvHeads, hd, len, 0.2f);
    a.pos0 = -1; // must not be used: pos0Dev wins
    a.pos0Dev = dP0.as<int32_t>();
    cuda::attention(a);
    EXPECT_LT(maxRelDiff(dOut.get(q.size()), want), 1e-5) << "pos0 " << pos0;
  }
}

} // namespace
