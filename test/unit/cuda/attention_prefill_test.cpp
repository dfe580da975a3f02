// Prefill attention through cuBLAS (kernels/cuda/PrefillAttention.h) against the scalar CPU
// references (kernels/cpu/Attention: gqaAttentionRef, mlaAttentionRef): GQA with 1, 2 and 3 query
// heads per KV head, MHA, absorbed MLA (DeepSeek's 512 + 64 and odd sizes), prompts with and
// without cached positions before them, and query blocks forced small so that several blocks and
// a partial last block run. Keys past the last visible position hold huge values, so a mask that
// let one through would be far off. Also the gather of a paged cache into dense rows. Without a
// GPU only the host-side rules are checked.
#include "kernels/cpu/Attention.h"
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/PrefillAttention.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"
#include "test/unit/cuda/MlaProblem.h"

#include <algorithm>
#include <cmath>
#include <numeric>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::MlaProblem;
using kt::cudatest::mlaProblem;
using kt::cudatest::MlaShape;
using kt::cudatest::poisonPast;
using kt::cudatest::randomVector;

namespace {

std::vector<float> runGemm(const cuda::AttentionArgs& a, int64_t maxScoreFloats, size_t outFloats,
                           Dev& out) {
  std::string err;
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
  EXPECT_TRUE(blas) << err;
  if (!blas)
    return {};
  EXPECT_TRUE(cuda::usePrefillGemm(a));
  Dev scratch(size_t(cuda::prefillGemmScratchFloats(a, maxScoreFloats)) * 4);
  EXPECT_TRUE(cuda::prefillAttentionGemm(*blas, a, scratch.as(), &err, maxScoreFloats)) << err;
  EXPECT_TRUE(cuda::launchOk(&err)) << err;
  return out.get<float>(outFloats);
}

} // namespace

TEST(CudaPrefillAttention, TakesLongHostPositionedDenseChunksOnly) {
  cuda::AttentionArgs a;
  a.k1 = a.v = reinterpret_cast<const float*>(16);
  a.heads = 8;
  a.kvHeads = 2;
  a.len = cuda::kPrefillGemmMinTokens;
  EXPECT_TRUE(cuda::usePrefillGemm(a));
  a.len = cuda::kPrefillGemmMinTokens - 1;
  EXPECT_FALSE(cuda::usePrefillGemm(a)) << "short chunks keep the generic kernel";
  a.len = 100;
  int32_t pos = 0;
  a.pos0Dev = &pos;
  EXPECT_FALSE(cuda::usePrefillGemm(a)) << "a position read on the GPU (graph replay)";
  a.pos0Dev = nullptr;
  uint64_t page = 0;
  a.kv.pages = &page;
  EXPECT_FALSE(cuda::usePrefillGemm(a)) << "a paged cache is gathered first";
  a.kv.pages = nullptr;
  // Blocks: 4 heads per KV head x 150 keys x block <= 3000 floats -> 5 query rows per block.
  a.pos0 = 50;
  EXPECT_EQ(cuda::prefillGemmBlockTokens(a, 3000), 5);
  EXPECT_EQ(cuda::prefillGemmScratchFloats(a, 3000), 4 * 5 * 150);
  EXPECT_EQ(cuda::prefillGemmBlockTokens(a, 1), 1) << "at least one query row";
  EXPECT_EQ(cuda::prefillGemmBlockTokens(a), 100) << "the whole chunk when it fits";
}

struct GqaCase {
  int heads, kvHeads, hd;
};

TEST(CudaPrefillAttention, GqaMatchesCpuReference) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(41);
  for (GqaCase g : {GqaCase{6, 2, 40}, GqaCase{4, 4, 16}, GqaCase{3, 1, 33}, GqaCase{32, 4, 128}})
    for (int64_t len : {32, 45, 130})
      for (int64_t pos0 : {0, 7})
        for (int64_t bound : {int64_t(0), int64_t(1000)}) { // 0: one block
          const int64_t ctx = pos0 + len, capacity = ctx + 9, row = int64_t(g.kvHeads) * g.hd;
          const double scale = 1.0 / std::sqrt(double(g.hd));
          std::vector<float> q = randomVector(rng, size_t(len * g.heads * g.hd), 0.5f);
          std::vector<float> k = randomVector(rng, size_t(capacity * row)),
                             v = randomVector(rng, size_t(capacity * row)), want(q.size());
          cpu::gqaAttentionRef(pool, q.data(), len, g.heads, g.kvHeads, g.hd, k.data(), v.data(),
                               pos0, scale, want.data());
          poisonPast(k, ctx, row);
          poisonPast(v, ctx, row);
          Dev dq(q), dk(k), dv(v), dOut(q.size() * 4);
          cuda::AttentionArgs a = cuda::gqaAttentionArgs(
              dq.as(), dk.as(), dv.as(), dOut.as(), g.heads, g.kvHeads, g.hd, len, float(scale));
          a.pos0 = pos0;
          const int64_t maxScores = bound ? bound : cuda::kPrefillScoreFloats;
          std::vector<float> got = runGemm(a, maxScores, q.size(), dOut);
          EXPECT_LT(maxRelDiff(got, want), 1e-5)
              << "heads " << g.heads << "/" << g.kvHeads << " hd " << g.hd << " len " << len
              << " pos0 " << pos0 << " block " << cuda::prefillGemmBlockTokens(a, maxScores);
        }
}

TEST(CudaPrefillAttention, MlaMatchesCpuReference) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(42);
  for (MlaShape m : {MlaShape{16, 512, 64}, MlaShape{3, 72, 16}, MlaShape{1, 33, 7}})
    for (int64_t len : {33, 100})
      for (int64_t pos0 : {0, 5})
        for (int64_t bound : {int64_t(0), int64_t(2500)}) {
          const int64_t ctx = pos0 + len, capacity = ctx + 3;
          MlaProblem p = mlaProblem(rng, pool, m, len, pos0, capacity);
          const double scale = p.scale;
          std::vector<float>&qa = p.qa, &qp = p.qp, &lat = p.lat, &kpe = p.kpe, &want = p.want;
          poisonPast(lat, ctx, m.lora);
          poisonPast(kpe, ctx, m.rope);
          Dev dqa(qa), dqp(qp), dlat(lat), dkpe(kpe), dOut(qa.size() * 4);
          cuda::AttentionArgs a =
              cuda::mlaAttentionArgs(dqa.as(), dqp.as(), m.rope, dlat.as(), dkpe.as(), dOut.as(),
                                     m.heads, m.lora, m.rope, len, float(scale));
          a.pos0 = pos0;
          const int64_t maxScores = bound ? bound : cuda::kPrefillScoreFloats;
          std::vector<float> got = runGemm(a, maxScores, qa.size(), dOut);
          EXPECT_LT(maxRelDiff(got, want), 1e-5)
              << "heads " << m.heads << " lora " << m.lora << " rope " << m.rope << " len " << len
              << " pos0 " << pos0 << " block " << cuda::prefillGemmBlockTokens(a, maxScores);
        }
}

// Pages of 4 positions in a shuffled order, rows of 5 floats at offset 3 with a pitch of 7.
TEST(CudaPrefillAttention, GatherPagedRowsReadsThroughThePageTable) {
  KT_REQUIRE_GPU();
  const int64_t pageTokens = 4, offset = 3, pitch = 7, rowFloats = 5, count = 13;
  const int64_t numPages = (count + pageTokens - 1) / pageTokens, pageFloats = 40;
  std::vector<float> pool(size_t(numPages * pageFloats));
  std::iota(pool.begin(), pool.end(), 0.f);
  Dev dPool(pool);
  std::vector<int64_t> order = {2, 0, 3, 1};
  std::vector<uint64_t> table;
  for (int64_t i = 0; i < numPages; ++i)
    table.push_back(reinterpret_cast<uint64_t>(dPool.as() + order[size_t(i)] * pageFloats));
  Dev dTable(table), dOut(size_t(count * rowFloats) * 4);
  cuda::KvPages kv;
  kv.pages = dTable.as<uint64_t>();
  kv.pageTokens = pageTokens;
  cuda::gatherPagedRows(kv, offset, pitch, rowFloats, count, dOut.as());
  std::vector<float> got = dOut.get<float>(size_t(count * rowFloats));
  for (int64_t p = 0; p < count; ++p)
    for (int64_t c = 0; c < rowFloats; ++c)
      ASSERT_EQ(got[size_t(p * rowFloats + c)],
                pool[size_t(order[size_t(p / pageTokens)] * pageFloats + offset +
                            (p % pageTokens) * pitch + c)])
          << "position " << p << " float " << c;
}
