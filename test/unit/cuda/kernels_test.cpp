// Every kernel of kernels/cuda against its CPU reference (kernels/cpu) on randomized odd shapes.
// Without a GPU the tests skip.
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/Norm.h"
#include "kernels/cpu/Rope.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Format.h"
#include "runtime/support/DType.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

std::vector<uint16_t> toBf16(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    b[i] = f32ToBf16(v[i]);
  return b;
}

cpu::MatrixView view(const void* data, DType t, int64_t rows, int64_t cols) {
  return {static_cast<const uint8_t*>(data), t, rows, cols};
}

// cuBLAS is opened with dlopen on first use: where the toolkit is installed (CI compiles with nvcc)
// it must be found and its entry points resolved; without a GPU only cublasCreate may fail.
TEST(CudaBlas, OpensCublasOrSaysWhy) {
  std::string err;
  auto blas = cuda::Blas::create(&err);
  if (blas)
    return;
  EXPECT_EQ(err.find("cannot open cuBLAS"), std::string::npos) << err;
  EXPECT_EQ(err.find("cuBLAS has no"), std::string::npos) << err;
  EXPECT_NE(err.find("cublasCreate"), std::string::npos) << err;
}

TEST(CudaKernels, EmbeddingF32AndBf16) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(1);
  const int64_t vocab = 37, cols = 45;
  std::vector<float> table = randomVector(rng, size_t(vocab * cols));
  std::vector<uint16_t> tableBf16 = toBf16(table);
  std::vector<int32_t> ids = {0, 36, 5, 5, 17, 1, 30};
  const int64_t T = int64_t(ids.size());
  Dev dIds(ids), dTable(table), dTableBf16(tableBf16), dOut(size_t(T * cols) * 4);
  for (bool bf16 : {false, true}) {
    cuda::embedding(dIds.as<int32_t>(), T, bf16 ? dTableBf16.as<void>() : dTable.as<void>(), bf16,
                    cols, dOut.as());
    std::vector<float> got = dOut.get(size_t(T * cols)), want(got.size());
    cpu::MatrixView tv = bf16 ? view(tableBf16.data(), DType::BF16, vocab, cols)
                              : view(table.data(), DType::F32, vocab, cols);
    for (int64_t t = 0; t < T; ++t)
      tv.rowToF32(ids[size_t(t)], want.data() + t * cols);
    EXPECT_EQ(got, want) << (bf16 ? "bf16" : "f32");
  }
}

TEST(CudaKernels, RmsNormRowsStrided) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (int64_t dim : {1, 33, 130, 1025}) {
    const int64_t rows = 7, stride = dim + 3; // normalise the first `dim` of wider rows
    std::vector<float> x = randomVector(rng, size_t(rows * stride)),
                       w = randomVector(rng, size_t(dim));
    Dev dx(x), dw(w), dy(size_t(rows * stride) * 4);
    cuda::rmsNormRows(dx.as(), stride, rows, dim, dw.as(), 1e-5f, dy.as(), stride);
    std::vector<float> got = dy.get(size_t(rows * stride)), g2, want(size_t(rows * dim)), xs;
    for (int64_t r = 0; r < rows; ++r) {
      xs.insert(xs.end(), x.begin() + r * stride, x.begin() + r * stride + dim);
      g2.insert(g2.end(), got.begin() + r * stride, got.begin() + r * stride + dim);
    }
    cpu::rmsNorm(xs.data(), rows, dim, view(w.data(), DType::F32, 1, dim), 1e-5, want.data());
    EXPECT_LT(maxRelDiff(g2, want), 1e-5) << "dim " << dim;
  }
}

// Every frequency schedule, both pair layouts, partial rotation at an offset.
TEST(CudaKernels, RopeAllSchedulesMatchCpu) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(3);
  std::vector<cpu::RopeParams> schedules(5);
  schedules[0].type = cpu::RopeType::Default;
  schedules[1].type = cpu::RopeType::Linear;
  schedules[1].factor = 4;
  schedules[2].type = cpu::RopeType::Yarn;
  schedules[2].factor = 4;
  schedules[2].originalMaxPosition = 64;
  schedules[2].attentionFactor = 1.2;
  schedules[3].type = cpu::RopeType::Llama3;
  schedules[3].factor = 8;
  schedules[3].originalMaxPosition = 64;
  schedules[4] = schedules[0];
  schedules[4].interleaved = true;
  const int heads = 3, headDim = 30, dim = 24, offset = 5;
  const int64_t T = 9;
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int32_t& p : pos)
    p = int32_t(rng() % 700);
  for (size_t si = 0; si < schedules.size(); ++si) {
    cpu::RopeParams p = schedules[si];
    p.dim = dim;
    p.theta = 10000;
    std::vector<float> inv = cpu::ropeInvFreq(p);
    std::vector<float> x = randomVector(rng, size_t(T * heads * headDim)), want = x;
    for (int64_t t = 0; t < T; ++t)
      cpu::applyRope(want.data() + t * heads * headDim, heads, headDim, offset, pos[size_t(t)], p,
                     inv);
    Dev dx(x), dPos(pos), dInv(inv);
    cuda::rope(dx.as(), T, heads, heads * headDim, headDim, offset, dPos.as<int32_t>(), dInv.as(),
               dim, float(p.attentionFactor), p.interleaved);
    EXPECT_LT(maxRelDiff(dx.get(x.size()), want), 2e-5) << "schedule " << si;
  }
}

TEST(CudaKernels, ElementwiseGatherScatter) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(4);
  const int64_t n = 1001, cols = 13;
  std::vector<float> a = randomVector(rng, size_t(n)), b = randomVector(rng, size_t(n));
  Dev da(a), db(b), dout(size_t(n) * 4);
  cuda::add(da.as(), db.as(), dout.as(), n);
  std::vector<float> got = dout.get(static_cast<size_t>(n)), want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    want[size_t(i)] = a[size_t(i)] + b[size_t(i)];
  EXPECT_EQ(got, want);
  cuda::swiglu(da.as(), db.as(), dout.as(), n);
  got = dout.get(size_t(n));
  for (int64_t i = 0; i < n; ++i)
    want[size_t(i)] = a[size_t(i)] / (1 + std::exp(-a[size_t(i)])) * b[size_t(i)];
  EXPECT_LT(maxRelDiff(got, want), 1e-6);

  std::vector<float> x = randomVector(rng, size_t(7 * cols));
  std::vector<int32_t> rows = {6, 0, 3};
  std::vector<float> scale = {0.5f, -2.f, 3.f};
  Dev dx(x), dRows(rows), dScale(scale), dPicked(rows.size() * cols * 4), dAcc(x);
  cuda::gatherRows(dx.as(), cols, dRows.as<int32_t>(), 3, dPicked.as());
  cuda::scatterAddRows(dPicked.as(), cols, dRows.as<int32_t>(), dScale.as(), 3, dAcc.as());
  std::vector<float> picked = dPicked.get(rows.size() * cols), acc = dAcc.get(x.size());
  std::vector<float> wantAcc = x;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t c = 0; c < cols; ++c) {
      EXPECT_EQ(picked[r * cols + size_t(c)], x[size_t(rows[r] * cols + c)]);
      wantAcc[size_t(rows[r] * cols + c)] += scale[r] * x[size_t(rows[r] * cols + c)];
    }
  EXPECT_LT(maxRelDiff(acc, wantAcc), 1e-6);
}

TEST(CudaKernels, LinearF32ExactAndBf16Close) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(5);
  for (int64_t T : {1, 7, 130}) {
    const int64_t N = 37, K = 53;
    std::vector<float> x = randomVector(rng, size_t(T * K)), w = randomVector(rng, size_t(N * K));
    std::vector<uint16_t> wb = toBf16(w);
    std::vector<float> want(size_t(T * N)), wantBf16(size_t(T * N));
    cpu::linearRef(x.data(), T, view(w.data(), DType::F32, N, K), nullptr, want.data());
    // bf16 reference: bf16 weights and bf16-rounded activations, f32 sums.
    std::vector<float> xr(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      xr[i] = bf16ToF32(f32ToBf16(x[i]));
    cpu::linearRef(xr.data(), T, view(wb.data(), DType::BF16, N, K), nullptr, wantBf16.data());
    Dev dx(x), dw(w), dwb(wb), dy(size_t(T * N) * 4);
    ASSERT_TRUE(blas->linear(dx.as(), T, dw.as<void>(), false, N, K, dy.as(), &err)) << err;
    EXPECT_LT(maxRelDiff(dy.get(size_t(T * N)), want), 1e-5) << "f32 T=" << T;
    ASSERT_TRUE(blas->linear(dx.as(), T, dwb.as<void>(), true, N, K, dy.as(), &err)) << err;
    EXPECT_LT(maxRelDiff(dy.get(size_t(T * N)), wantBf16), 1e-4) << "bf16 T=" << T;
  }
}

// Weight-only int8 against a scalar reference (the dequantized q * scale product): the GEMV kernel
// for 1..16 tokens (split at kGemvMaxTokens), its vector path (K % 16 == 0) and scalar path, and
// the widened-bf16 tensor-core path for a longer batch (activations rounded to bf16 there).
TEST(CudaKernels, LinearInt8GemvAndWidenedMatchReference) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(11);
  for (int64_t K : {16, 53, 2048 + 48})
    for (int64_t T : {1, 3, 8, 9, 16, 17, 130}) {
      const int64_t N = 37;
      std::vector<float> x = randomVector(rng, size_t(T * K)), scale(static_cast<size_t>(N));
      std::vector<int8_t> q(size_t(N * K));
      for (int8_t& v : q)
        v = int8_t(int(rng() % 255) - 127);
      for (float& s : scale)
        s = 0.001f + 0.01f * float(rng() % 100);
      const bool widened = T > cuda::Blas::kInt8GemvTokens;
      std::vector<float> want(size_t(T * N));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k) {
            const float xv =
                widened ? bf16ToF32(f32ToBf16(x[size_t(t * K + k)])) : x[size_t(t * K + k)];
            acc += double(xv) * double(q[size_t(n * K + k)]);
          }
          want[size_t(t * N + n)] = float(acc) * scale[size_t(n)];
        }
      Dev dx(x), dq(q), ds(scale), dy(size_t(T * N) * 4);
      ASSERT_TRUE(blas->linearInt8(dx.as(), T, dq.as<int8_t>(), ds.as(), N, K, dy.as(), &err))
          << err;
      EXPECT_LT(maxRelDiff(dy.get(size_t(T * N)), want), 1e-4) << "K=" << K << " T=" << T;
    }
}

// A matrix quantized to the GPU's int4 format (kernels/cuda/Int4Format.h).
struct Int4Matrix {
  int64_t rows, cols;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
  Int4Matrix(const std::vector<float>& w, int64_t rows, int64_t cols)
      : rows(rows), cols(cols), data(size_t(rows * cuda::int4RowBytes(cols))),
        scales(size_t(rows * cuda::int4Groups(cols))) {
    for (int64_t r = 0; r < rows; ++r)
      cuda::quantizeInt4Row(w.data() + r * cols, cols, data.data() + r * cuda::int4RowBytes(cols),
                            scales.data() + r * cuda::int4Groups(cols));
  }
  float at(int64_t r, int64_t c) const {
    return cuda::int4Weight(data.data(), scales.data(), cols, r, c);
  }
};

// The GPU's int4 weights are the CPU's --cpu-quant int4:g128 weights bit for bit (the same rule,
// the same f16 scales): dequantized rows equal the CPU packer's, with a partial last group
// (130, 2048 + 96 columns), a zero group and a group whose largest magnitude is positive. Runs
// without a GPU (host code only).
TEST(CudaInt4Format, SameWeightsAsCpuInt4G128) {
  std::mt19937 rng(17);
  for (int64_t K : {int64_t(64), int64_t(130), int64_t(2048 + 96)}) {
    const int64_t N = 5;
    std::vector<float> w = randomVector(rng, size_t(N * K), 0.05f);
    std::fill_n(w.begin() + K, std::min<int64_t>(K, 128), 0.f); // row 1: a zero (first) group
    w[size_t(2 * K + 3)] = 1.f;                                 // row 2: +max -> q = -8, d < 0
    Int4Matrix m(w, N, K);
    namespace q = cpu::quant;
    std::vector<uint8_t> packed(q::packedBytes(q::WeightFormat::Int4G128Sym, N, K));
    q::packWeights(q::WeightFormat::Int4G128Sym, w.data(), N, K, packed.data());
    std::vector<float> cpuRow(static_cast<size_t>(K));
    for (int64_t r = 0; r < N; ++r) {
      q::dequantizeRow(q::WeightFormat::Int4G128Sym, packed.data(), N, K, r, cpuRow.data());
      for (int64_t c = 0; c < K; ++c)
        ASSERT_EQ(m.at(r, c), cpuRow[size_t(c)]) << "K=" << K << " row " << r << " col " << c;
      // The quantization itself: within one step d of w (half a step unless clamped at +7).
      for (int64_t c = 0; c < K; ++c) {
        const float d = cuda::int4ScaleValue(m.scales[size_t(r * cuda::int4Groups(K) + c / 128)]);
        EXPECT_LE(std::fabs(m.at(r, c) - w[size_t(r * K + c)]),
                  std::fabs(d) * 1.001f); // d is f16-rounded
      }
    }
    EXPECT_EQ(m.at(2, 3), 1.f); // the largest magnitude is exact (-8 d)
    EXPECT_LT(cuda::int4ScaleValue(m.scales[size_t(2 * cuda::int4Groups(K))]), 0.f);
    for (int64_t c = 0; c < std::min<int64_t>(K, 128); ++c)
      EXPECT_EQ(m.at(1, c), 0.f);
    // Padding nibbles of the last group are q = 0 (the kernels read them, times a zero weight).
    if (K % 128 != 0) {
      EXPECT_EQ(cuda::int4At(m.data.data(), cuda::int4RowBytes(K) * 2 - 1), 0);
    }
  }
}

// Weight-only int4 against a scalar reference over the dequantized d * q weights: gemvInt4 for
// 1..16 tokens (every token count 1..8 of the kernel, and several launches past kGemvMaxTokens)
// and the widened bf16 path (int4ToBf16 + cuBLAS, weights bf16(d * q), activations rounded to
// bf16) for 17 and 130 tokens. Rows 1, 3, 5, 17, 31 and 257: none but 1 a multiple of the 2 or 4
// rows a warp computes or of a block's rows, so the last warp's clamped rows are exercised.
// Columns 33 (one chunk, partial), 64 (one partial group), 130 (a full group + 2 columns; scalar
// activation loads), 1408 (11 groups: lanes with 1 and 2 chunks), 2048 + 96 (a partial last
// group) and 4100 (vector loads with a partial last chunk; 5 chunks for lane 0); plus activations
// at an address that is not 16-byte aligned. The widening kernel is also compared bit for bit
// with the host's bf16(d * q).
TEST(CudaKernels, LinearInt4GemvAndWidenedMatchReference) {
  KT_REQUIRE_GPU();
  std::string err;
  auto blas = cuda::Blas::create(&err);
  ASSERT_TRUE(blas) << err;
  std::mt19937 rng(13);
  for (int64_t N : {1, 3, 5, 17, 31, 257})
    for (int64_t K : {33, 64, 130, 1408, 2048 + 96, 4100}) {
      Int4Matrix m(randomVector(rng, size_t(N * K), 0.05f), N, K);
      Dev dData(m.data), dScales(m.scales), dWide(size_t(N * K) * 2);
      cuda::int4ToBf16(dData.as<uint8_t>(), dScales.as<uint16_t>(), N, K, dWide.as<uint16_t>());
      std::vector<uint16_t> wide = dWide.get<uint16_t>(size_t(N * K));
      size_t wideDiffer = 0;
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < K; ++c)
          wideDiffer += wide[size_t(r * K + c)] != f32ToBf16(m.at(r, c));
      EXPECT_EQ(wideDiffer, 0u) << "int4ToBf16 N=" << N << " K=" << K;
      for (int64_t T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 130})
        for (bool offset : {false, true}) {
          if (offset && T != 1 && T != 3 && T != 8)
            continue;
          // The widened path (cuBLAS) on the shapes it always had: keeps the memcheck run short.
          const bool oddShape = N == 3 || N == 5 || N == 17 || K == 33 || K == 1408 || K == 4100;
          if (T > cuda::Blas::kInt8GemvTokens && oddShape)
            continue;
          std::vector<float> x = randomVector(rng, size_t(T * K + 1));
          const bool widened = T > cuda::Blas::kInt8GemvTokens;
          std::vector<float> want(size_t(T * N));
          for (int64_t t = 0; t < T; ++t)
            for (int64_t n = 0; n < N; ++n) {
              double acc = 0;
              for (int64_t k = 0; k < K; ++k) {
                float xv = x[size_t(offset + t * K + k)], wv = m.at(n, k);
                if (widened) {
                  xv = bf16ToF32(f32ToBf16(xv));
                  wv = bf16ToF32(f32ToBf16(wv));
                }
                acc += double(xv) * double(wv);
              }
              want[size_t(t * N + n)] = float(acc);
            }
          Dev dx(x), dy(size_t(T * N) * 4);
          ASSERT_TRUE(blas->linearInt4(dx.as() + offset, T, dData.as<uint8_t>(),
                                       dScales.as<uint16_t>(), N, K, dy.as(), &err))
              << err;
          EXPECT_LT(maxRelDiff(dy.get(size_t(T * N)), want), 1e-4)
              << "N=" << N << " K=" << K << " T=" << T << (offset ? " (x unaligned)" : "");
        }
    }
}

// gemvInt4 on matrices of >= 4,096 rows, where 1 and 2 tokens run 4 rows per warp (3 tokens 2):
// 4,097 rows leave the last warp one real row and three clamped ones; columns as above.
TEST(CudaKernels, Int4GemvManyRowsMatchesReference) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(17);
  const int64_t N = 4097;
  for (int64_t K : {33, 130, 2048 + 96}) {
    Int4Matrix m(randomVector(rng, size_t(N * K), 0.05f), N, K);
    Dev dData(m.data), dScales(m.scales);
    for (int64_t T : {1, 2, 3}) {
      std::vector<float> x = randomVector(rng, size_t(T * K));
      std::vector<float> want(size_t(T * N));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += double(x[size_t(t * K + k)]) * double(m.at(n, k));
          want[size_t(t * N + n)] = float(acc);
        }
      Dev dx(x), dy(want.size() * 4);
      cuda::gemvInt4(dx.as(), T, dData.as<uint8_t>(), dScales.as<uint16_t>(), N, K, dy.as());
      EXPECT_LT(maxRelDiff(dy.get(want.size()), want), 1e-4)
          << "N=" << N << " K=" << K << " T=" << T;
    }
  }
}

// GQA over a cache longer than one 128-position chunk (the online softmax's rescaling runs).
TEST(CudaKernels, GqaAttentionMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(6);
  struct Case {
    int64_t len, pos0;
    int heads, kvHeads, hd;
  };
  for (Case cs : {Case{5, 0, 6, 2, 40}, Case{1, 300, 4, 4, 33}, Case{3, 130, 8, 1, 64}}) {
    const int64_t ctx = cs.pos0 + cs.len, row = int64_t(cs.kvHeads) * cs.hd;
    std::vector<float> q = randomVector(rng, size_t(cs.len * cs.heads * cs.hd));
    std::vector<float> k = randomVector(rng, size_t(ctx * row)),
                       v = randomVector(rng, size_t(ctx * row));
    std::vector<float> want(q.size());
    cpu::gqaAttention(pool, q.data(), cs.len, cs.heads, cs.kvHeads, cs.hd, k.data(), v.data(),
                      cs.pos0, 0.17, want.data());
    Dev dq(q), dk(k), dv(v), dOut(q.size() * 4);
    cuda::AttentionArgs a = cuda::gqaAttentionArgs(dq.as(), dk.as(), dv.as(), dOut.as(), cs.heads,
                                                   cs.kvHeads, cs.hd, cs.len, 0.17f);
    a.pos0 = cs.pos0;
    cuda::attention(a);
    EXPECT_LT(maxRelDiff(dOut.get(q.size()), want), 1e-5)
        << "len " << cs.len << " pos0 " << cs.pos0;
  }
}

TEST(CudaKernels, MlaAttentionMatchesCpu) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(7);
  const int heads = 3, lora = 72, rope = 16;
  for (int64_t pos0 : {0, 150}) {
    const int64_t len = 4, ctx = pos0 + len;
    std::vector<float> qa = randomVector(rng, size_t(len * heads * lora), 0.3f),
                       qp = randomVector(rng, size_t(len * heads * rope), 0.3f),
                       lat = randomVector(rng, size_t(ctx * lora)),
                       kpe = randomVector(rng, size_t(ctx * rope)), want(qa.size());
    cpu::mlaAttention(pool, qa.data(), qp.data(), len, heads, lora, rope, lat.data(), kpe.data(),
                      pos0, 0.11, want.data());
    Dev dqa(qa), dqp(qp), dlat(lat), dkpe(kpe), dOut(qa.size() * 4);
    cuda::AttentionArgs a = cuda::mlaAttentionArgs(dqa.as(), dqp.as(), rope, dlat.as(), dkpe.as(),
                                                   dOut.as(), heads, lora, rope, len, 0.11f);
    a.pos0 = pos0;
    cuda::attention(a);
    EXPECT_LT(maxRelDiff(dOut.get(qa.size()), want), 1e-5) << "pos0 " << pos0;
  }
}

// Every routing variant: softmax/sigmoid scoring, greedy, group-limited, noaux_tc with bias.
TEST(CudaKernels, MoeRoutingAllVariantsMatchCpu) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(8);
  struct Case {
    int e, k;
    bool sigmoid;
    int method, nGroup, topkGroup;
    bool norm, bias;
    double scale;
  };
  const Case cases[] = {{8, 2, false, 0, 1, 1, false, false, 1.0},
                        {60, 4, false, 0, 1, 1, true, false, 1.0},
                        {64, 6, false, 1, 8, 3, false, false, 16.0},
                        {256, 8, true, 2, 8, 4, true, true, 2.5},
                        {17, 3, true, 0, 1, 1, true, false, 1.0},
                        // the warp-per-token greedy kernel: Qwen3's 128 x top-8, the most
                        // experts a warp holds (512), sigmoid with a correction bias
                        {128, 8, false, 0, 1, 1, true, false, 1.0},
                        {512, 10, false, 0, 1, 1, false, false, 1.0},
                        {100, 7, true, 0, 1, 1, true, true, 1.5}};
  const int64_t T = 37;
  for (const Case& cs : cases) {
    std::vector<float> logits = randomVector(rng, size_t(T * cs.e)),
                       bias = randomVector(rng, size_t(cs.e), 0.1f);
    // Ties go to the lower index: a few tokens with repeated or equal logits.
    for (int64_t i = 0; i < cs.e; ++i) {
      logits[size_t(i)] = 0.25f;                      // token 0: all equal
      logits[size_t(cs.e + i)] = float(i % 5) * 0.5f; // token 1: five values
    }
    cpu::MoeRoutingParams p;
    p.numExperts = cs.e;
    p.topK = cs.k;
    p.scoring = cs.sigmoid ? cpu::MoeScoring::Sigmoid : cpu::MoeScoring::Softmax;
    p.method = cs.method == 0   ? cpu::MoeTopk::Greedy
               : cs.method == 1 ? cpu::MoeTopk::GroupLimitedGreedy
                                : cpu::MoeTopk::NoauxTc;
    p.nGroup = cs.nGroup;
    p.topkGroup = cs.topkGroup;
    p.normTopkProb = cs.norm;
    p.routedScalingFactor = cs.scale;
    std::vector<int> wantE(size_t(T * cs.k));
    std::vector<float> wantW(size_t(T * cs.k));
    for (int64_t t = 0; t < T; ++t)
      cpu::routeToken(logits.data() + t * cs.e, cs.bias ? bias.data() : nullptr, p,
                      wantE.data() + t * cs.k, wantW.data() + t * cs.k);
    cuda::RoutingArgs a;
    a.numExperts = cs.e;
    a.topK = cs.k;
    a.sigmoid = cs.sigmoid;
    a.method = cs.method;
    a.nGroup = cs.nGroup;
    a.topkGroup = cs.topkGroup;
    a.normTopkProb = cs.norm;
    a.routedScalingFactor = cs.scale;
    Dev dl(logits), db(bias), dE(wantE.size() * 4), dW(wantW.size() * 4);
    cuda::moeRoute(dl.as(), cs.bias ? db.as() : nullptr, T, a, dE.as<int32_t>(), dW.as());
    std::vector<int32_t> gotE = dE.get<int32_t>(wantE.size());
    EXPECT_EQ(std::vector<int>(gotE.begin(), gotE.end()), wantE) << "experts " << cs.e;
    EXPECT_LT(maxRelDiff(dW.get(wantW.size()), wantW), 1e-5) << "experts " << cs.e;
  }
}

} // namespace
