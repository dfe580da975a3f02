// The paged KV cache's kernels (kernels/cuda/Attention.cu with AttentionArgs.kv, appendRows with a
// page table) against the dense ones: the same keys and values, laid out in pages of P positions
// that a random permutation scatters over a pool (page blocks holding two arrays at offsets, the
// rest of the pool poisoned with huge values), for GQA and absorbed MLA, 1..9 and 33 query
// tokens, contexts crossing page boundaries (P = 1, 16, 64; contexts 1, P-1, P, P+1, 3P+5), with
// no split, the automatic split count and a forced one. The kernel reads the same floats in the
// same order either way, so paged results must be bit-identical to dense ones; the dense results
// are also checked against the scalar CPU references (1e-5), so a fault both share is caught.
#include "kernels/cpu/Attention.h"
#include "kernels/cuda/DeviceKernels.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"
#include "test/unit/cuda/MlaProblem.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::randomVector;

namespace {

constexpr float kPoison = 1e4f;

// A pool of page blocks: block b holds P rows of the first array (row1 floats each) at `off1`
// floats into the block, then P rows of the second (row2 floats) at `off2`. Sequence page i lives
// in block perm[i]; the table has `width` entries (0 past the sequence's pages).
struct PagedCopy {
  int64_t P, row1, row2, off1, off2, blockFloats, width;
  std::vector<int32_t> perm;
  std::vector<float> pool;

  PagedCopy(std::mt19937& rng, int64_t P_, int64_t positions, int64_t row1_, int64_t row2_,
            int64_t width_)
      : P(P_), row1(row1_), row2(row2_), width(width_) {
    off1 = 7; // something else (another layer) before this layer's rows
    off2 = off1 + P * row1;
    blockFloats = off2 + P * row2 + 3;
    const int64_t pages = (positions + P - 1) / P, blocks = pages + 3; // spare blocks unused
    perm.resize(size_t(blocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    perm.resize(size_t(pages));
    pool.assign(size_t(blocks * blockFloats), kPoison);
  }
  float* row(int64_t p, bool second) {
    return pool.data() + perm[size_t(p / P)] * blockFloats + (second ? off2 : off1) +
           (p % P) * (second ? row2 : row1);
  }
  // Copies positions [0, n) of the dense arrays into their pages.
  void fill(const std::vector<float>& a1, const std::vector<float>& a2, int64_t n) {
    for (int64_t p = 0; p < n; ++p) {
      std::copy_n(a1.data() + p * row1, row1, row(p, false));
      std::copy_n(a2.data() + p * row2, row2, row(p, true));
    }
  }
  // Device addresses of the pages, given where the pool landed.
  std::vector<uint64_t> table(const float* devicePool) const {
    std::vector<uint64_t> t(size_t(width), 0);
    for (size_t i = 0; i < perm.size(); ++i)
      t[i] = reinterpret_cast<uint64_t>(devicePool + perm[i] * blockFloats);
    return t;
  }
};

// Runs `a` with split mode `splits` (-1: no scratch, so no split; 0: automatic; > 0: forced).
std::vector<float> run(cuda::AttentionArgs a, int splits, Dev& out, size_t outFloats) {
  std::unique_ptr<Dev> scratch;
  if (splits >= 0) {
    a.splits = splits;
    a.partialFloats = splits > 0 ? int64_t(splits) * a.heads * a.len * (a.dv + 2)
                                 : cuda::attentionPartialFloats(a.heads, a.len, a.dv);
    if (a.partialFloats > 0) {
      scratch = std::make_unique<Dev>(size_t(a.partialFloats) * 4);
      a.partials = scratch->as();
    }
  }
  std::vector<float> poison(outFloats, -7.f);
  std::string err;
  EXPECT_TRUE(cuda::toDevice(out.as(), poison.data(), outFloats * 4, &err)) << err;
  cuda::attention(a);
  EXPECT_TRUE(cuda::launchOk(&err)) << err;
  return out.get(outFloats);
}

bool bitEqual(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<int64_t> contexts(int64_t P) {
  std::vector<int64_t> c = {1, P - 1, P, P + 1, 3 * P + 5};
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  c.erase(std::remove_if(c.begin(), c.end(), [](int64_t x) { return x < 1; }), c.end());
  return c;
}

const std::vector<int64_t> kLens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 33};

struct GqaShape {
  int heads, kvHeads, hd;
};

TEST(CudaAttentionPaged, GqaBitIdenticalToDense) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(71);
  int cases = 0;
  for (GqaShape g : {GqaShape{4, 2, 33}, GqaShape{8, 1, 64}})
    for (int64_t P : {1, 16, 64})
      for (int64_t ctx : contexts(P))
        for (int64_t len : kLens) {
          if (len > ctx)
            continue;
          const int64_t pos0 = ctx - len, row = int64_t(g.kvHeads) * g.hd;
          const int64_t width = (ctx + P - 1) / P + 2, capacity = width * P;
          const double scale = 1.0 / std::sqrt(double(g.hd));
          std::vector<float> q = randomVector(rng, size_t(len * g.heads * g.hd), 0.5f);
          std::vector<float> k = randomVector(rng, size_t(capacity * row)),
                             v = randomVector(rng, size_t(capacity * row));
          std::vector<float> want(q.size());
          cpu::gqaAttentionRef(pool, q.data(), len, g.heads, g.kvHeads, g.hd, k.data(), v.data(),
                               pos0, scale, want.data());
          for (size_t i = size_t(ctx * row); i < k.size(); ++i) // past the context: never read
            k[i] = v[i] = kPoison;
          PagedCopy pc(rng, P, ctx, row, row, width);
          pc.fill(k, v, ctx);
          Dev dq(q), dk(k), dv(v), dPool(pc.pool), dOut(q.size() * 4);
          Dev dTable(pc.table(dPool.as()));
          std::vector<int32_t> p0 = {int32_t(pos0)};
          Dev dP0(p0);
          cuda::AttentionArgs dense = cuda::gqaAttentionArgs(
              dq.as(), dk.as(), dv.as(), dOut.as(), g.heads, g.kvHeads, g.hd, len, float(scale));
          dense.maxKeys = capacity;
          if (len % 2) { // position from device memory (as in a CUDA graph) or from the host
            dense.pos0 = -1;
            dense.pos0Dev = dP0.as<int32_t>();
          } else {
            dense.pos0 = pos0;
          }
          cuda::AttentionArgs paged = dense;
          cuda::usePages(paged, cuda::KvPages{dTable.as<uint64_t>(), P}, pc.off1, pc.off2,
                         capacity);
          for (int splits : {-1, 0, 7}) {
            const std::vector<float> d = run(dense, splits, dOut, q.size());
            const std::vector<float> p = run(paged, splits, dOut, q.size());
            const std::string what =
                "heads " + std::to_string(g.heads) + "/" + std::to_string(g.kvHeads) + " hd " +
                std::to_string(g.hd) + " P " + std::to_string(P) + " ctx " + std::to_string(ctx) +
                " len " + std::to_string(len) + " splits " + std::to_string(splits);
            EXPECT_LT(maxRelDiff(d, want), 1e-5) << "dense: " << what;
            EXPECT_TRUE(bitEqual(p, d))
                << "paged differs from dense by " << maxRelDiff(p, d) << ": " << what;
            ++cases;
          }
        }
  std::printf("[paged] GQA: %d cases bit-identical to dense\n", cases);
}

using kt::cudatest::MlaProblem;
using kt::cudatest::mlaProblem;
using kt::cudatest::MlaShape;

TEST(CudaAttentionPaged, MlaBitIdenticalToDense) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(72);
  int cases = 0;
  for (MlaShape m : {MlaShape{3, 72, 16}, MlaShape{16, 512, 64}})
    for (int64_t P : {1, 16, 64})
      for (int64_t ctx : contexts(P))
        for (int64_t len : kLens) {
          if (len > ctx || (m.heads == 16 && len > 2 && len != 33)) // the big shape: decode sizes
            continue;
          const int64_t pos0 = ctx - len;
          const int64_t width = (ctx + P - 1) / P + 1, capacity = width * P;
          MlaProblem p = mlaProblem(rng, pool, m, len, pos0, capacity);
          const double scale = p.scale;
          std::vector<float>&qa = p.qa, &qp = p.qp, &lat = p.lat, &kpe = p.kpe, &want = p.want;
          std::fill(lat.begin() + ctx * m.lora, lat.end(), kPoison);
          std::fill(kpe.begin() + ctx * m.rope, kpe.end(), kPoison);
          PagedCopy pc(rng, P, ctx, m.lora, m.rope, width);
          pc.fill(lat, kpe, ctx);
          Dev dqa(qa), dqp(qp), dlat(lat), dkpe(kpe), dPool(pc.pool), dOut(qa.size() * 4);
          Dev dTable(pc.table(dPool.as()));
          std::vector<int32_t> p0 = {int32_t(pos0)};
          Dev dP0(p0);
          cuda::AttentionArgs dense =
              cuda::mlaAttentionArgs(dqa.as(), dqp.as(), m.rope, dlat.as(), dkpe.as(), dOut.as(),
                                     m.heads, m.lora, m.rope, len, float(scale));
          dense.maxKeys = capacity;
          dense.pos0 = -1;
          dense.pos0Dev = dP0.as<int32_t>();
          cuda::AttentionArgs paged = dense;
          cuda::usePages(paged, cuda::KvPages{dTable.as<uint64_t>(), P}, pc.off1, pc.off2,
                         capacity);
          EXPECT_EQ(paged.v, nullptr);
          EXPECT_EQ(paged.vPage, paged.k1Page); // the latent is keys and values
          for (int splits : {-1, 0, 5}) {
            const std::vector<float> d = run(dense, splits, dOut, qa.size());
            const std::vector<float> p = run(paged, splits, dOut, qa.size());
            const std::string what = "heads " + std::to_string(m.heads) + " lora " +
                                     std::to_string(m.lora) + " P " + std::to_string(P) + " ctx " +
                                     std::to_string(ctx) + " len " + std::to_string(len) +
                                     " splits " + std::to_string(splits);
            EXPECT_LT(maxRelDiff(d, want), 1e-5) << "dense: " << what;
            EXPECT_TRUE(bitEqual(p, d))
                << "paged differs from dense by " << maxRelDiff(p, d) << ": " << what;
            ++cases;
          }
        }
  std::printf("[paged] MLA: %d cases bit-identical to dense\n", cases);
}

// appendRows through a page table: rows land in their pages at the array's offset, nothing else
// of the pool changes, and rows past the capacity or in a page never given (address 0) are
// dropped. Position from device memory and from the host.
TEST(CudaAttentionPaged, AppendRowsThroughTable) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(73);
  for (int64_t P : {1, 16, 64})
    for (int64_t pos0 : {int64_t(0), P - 1, P + 3})
      for (int64_t rows : {1, 5, 33})
        for (bool onDevice : {false, true}) {
          const int64_t row1 = 40, row2 = 9; // rows of the second array go in (odd offsets)
          const int64_t end = pos0 + rows, given = (end + P - 1) / P;
          // The table holds `given` pages; when the last of them is withheld (address 0), its
          // rows must be dropped; capacity cuts the last row too.
          const bool withhold = given >= 2;
          const int64_t capacity = end - 1;
          PagedCopy pc(rng, P, end, row1, row2, given + 1);
          const int64_t srcPitch = row2 + 5;
          std::vector<float> src = randomVector(rng, size_t(rows * srcPitch));
          Dev dPool(pc.pool), dSrc(src);
          std::vector<uint64_t> table = pc.table(dPool.as());
          if (withhold)
            table[size_t(given - 1)] = 0;
          Dev dTable(table);
          std::vector<int32_t> p0 = {int32_t(pos0)};
          Dev dP0(p0);
          cuda::appendRows(nullptr, cuda::KvPages{dTable.as<uint64_t>(), P}, pc.off2, row2,
                           capacity, dSrc.as(), srcPitch, row2, rows,
                           onDevice ? dP0.as<int32_t>() : nullptr, onDevice ? -99 : pos0);
          std::string err;
          ASSERT_TRUE(cuda::launchOk(&err)) << err;
          std::vector<float> got = dPool.get(pc.pool.size());
          // The expected pool: the poisoned one with each kept row written (pc.pool is that).
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t p = pos0 + r;
            if (p >= capacity || (withhold && p / P == given - 1))
              continue;
            std::copy_n(src.data() + r * srcPitch, row2, pc.row(p, true));
          }
          EXPECT_TRUE(bitEqual(got, pc.pool)) << "P " << P << " pos0 " << pos0 << " rows " << rows
                                              << (onDevice ? " (device pos0)" : "");
        }
}

} // namespace
