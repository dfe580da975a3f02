// The grouped prefill MoE's host grouping (runtime/exec/cuda/MoeGrouping.h), which the runtime and
// kt-rt probe share: counts per expert, the busiest expert, the padding, and every (token, k) pair
// placed exactly once in its expert's rows, in both layouts. Plain C++: runs without a GPU.
#include "runtime/exec/cuda/MoeGrouping.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>

using namespace kt::cudaops;

namespace {

// Random top-k choices of `tokens` tokens among the experts `pool` (distinct within a token).
std::vector<int32_t> randomChoices(std::mt19937& rng, int64_t tokens, int K,
                                   std::vector<int32_t> pool) {
  std::vector<int32_t> chosen;
  for (int64_t t = 0; t < tokens; ++t) {
    std::shuffle(pool.begin(), pool.end(), rng);
    chosen.insert(chosen.end(), pool.begin(), pool.begin() + K);
  }
  return chosen;
}

TEST(MoeGrouping, CountsItemsAndTheBusiestExpert) {
  // 3 tokens, top-2 over 5 experts; expert 1 and 4 unused.
  const std::vector<int32_t> chosen = {0, 2, 2, 3, 2, 0};
  const ChunkGrouping g = countChunk(chosen.data(), 3, 2, 5, GroupedLayout::Padded);
  EXPECT_EQ(g.count, (std::vector<int32_t>{2, 0, 3, 1, 0}));
  EXPECT_EQ(g.items, 3);
  EXPECT_EQ(g.most, 3);
  EXPECT_EQ(g.itemRows, (std::vector<int32_t>{2, 3, 1}));
  EXPECT_EQ(g.slotRows(), 9); // 3 items padded to 3 rows
  EXPECT_EQ(g.indexInts(), 9 + 6 + 3);
  const ChunkGrouping r = countChunk(chosen.data(), 3, 2, 5, GroupedLayout::Ragged);
  EXPECT_EQ(r.slotRows(), 6); // exactly the pairs
  EXPECT_EQ(r.indexInts(), 6 + 6 + 3 + 3);
}

TEST(MoeGrouping, EveryPairPlacedOnceInItsExpertsRows) {
  std::mt19937 rng(5);
  const int E = 11, K = 3;
  // Experts 4 and 7 never chosen; the stacks hold expert e at slice 10 - e (out of order).
  const std::vector<int32_t> pool = {0, 1, 2, 3, 5, 6, 8, 9, 10};
  std::vector<int64_t> sliceOf(E);
  for (int e = 0; e < E; ++e)
    sliceOf[size_t(e)] = E - 1 - e;
  for (const int64_t T : {int64_t(1), int64_t(2), int64_t(37)})
    for (const GroupedLayout layout :
         {GroupedLayout::Padded, GroupedLayout::Ragged, GroupedLayout::Bucketed}) {
      SCOPED_TRACE(std::string(groupedLayoutName(layout)) + " T=" + std::to_string(T));
      const std::vector<int32_t> chosen = randomChoices(rng, T, K, pool);
      const ChunkGrouping g = countChunk(chosen.data(), T, K, E, layout);
      const int64_t first = 100; // the chunk's first token in the step
      std::vector<int32_t> index(static_cast<size_t>(g.indexInts()), -7);
      fillChunkIndex(g, chosen.data(), first, sliceOf.data(), index.data());
      const ChunkIndex v = g.view(index.data());
      // Every active expert is one item (expert order, or bucket by bucket, largest first);
      // each item's first row and padded rows.
      ASSERT_EQ(int64_t(g.itemExpert.size()), g.items);
      std::vector<int32_t> itemOf(E, -1);
      std::vector<int64_t> row0, rows;
      int64_t next = 0;
      for (int64_t item = 0; item < g.items; ++item) {
        const int32_t e = g.itemExpert[size_t(item)];
        ASSERT_GT(g.count[size_t(e)], 0);
        ASSERT_EQ(itemOf[size_t(e)], -1) << "expert " << e << " twice";
        itemOf[size_t(e)] = int32_t(item);
        EXPECT_EQ(v.slots[item], sliceOf[size_t(e)]);
        EXPECT_EQ(g.itemRows[size_t(item)], g.count[size_t(e)]);
        rows.push_back(g.count[size_t(e)]);
        if (layout == GroupedLayout::Ragged) {
          row0.push_back(next);
          EXPECT_EQ(v.itemRow0[item], row0.back());
        } else {
          const ChunkBucket* b = nullptr;
          for (const ChunkBucket& c : g.buckets)
            if (item >= c.firstItem && item < c.firstItem + c.items)
              b = &c;
          ASSERT_NE(b, nullptr);
          row0.push_back(b->row0 + (item - b->firstItem) * b->rows);
          EXPECT_GE(b->rows, g.count[size_t(e)]);
          if (layout == GroupedLayout::Padded)
            EXPECT_EQ(b->rows, g.most);
          else // a bucket holds at most 1.5x its experts' counts (8 rows at least)
            EXPECT_LE(b->rows, std::max<int64_t>(8, g.count[size_t(e)] * 3 / 2 + 1));
        }
        next += g.count[size_t(e)];
      }
      for (int e = 0; e < E; ++e)
        EXPECT_EQ(itemOf[size_t(e)] >= 0, g.count[size_t(e)] > 0) << "expert " << e;
      EXPECT_EQ(v.itemRow0 == nullptr, layout != GroupedLayout::Ragged);
      // Every pair once, inside its expert's rows, reading its token; in token order per expert.
      std::set<int32_t> used;
      std::vector<int32_t> last(E, -1);
      for (int64_t p = 0; p < T * K; ++p) {
        const int32_t e = chosen[size_t(p)], row = v.pairRow[p];
        const int32_t item = itemOf[size_t(e)];
        ASSERT_GE(row, row0[size_t(item)]);
        ASSERT_LT(row, row0[size_t(item)] + rows[size_t(item)]);
        EXPECT_TRUE(used.insert(row).second) << "row " << row << " taken twice";
        EXPECT_EQ(v.rowToken[row], first + p / K);
        EXPECT_GT(row, last[size_t(e)]);
        last[size_t(e)] = row;
      }
      // The rows no pair took are padding (not Ragged) and repeat the chunk's first token.
      if (layout == GroupedLayout::Ragged) {
        EXPECT_EQ(int64_t(used.size()), g.slotRows());
      }
      for (int64_t row = 0; row < g.slotRows(); ++row)
        if (!used.count(int32_t(row))) {
          EXPECT_EQ(v.rowToken[row], first);
        }
    }
}

TEST(MoeGrouping, BucketRowsGrowByAtMostHalf) {
  EXPECT_EQ(bucketRows(1), 8);
  EXPECT_EQ(bucketRows(8), 8);
  EXPECT_EQ(bucketRows(9), 12);
  EXPECT_EQ(bucketRows(13), 16);
  EXPECT_EQ(bucketRows(17), 24);
  EXPECT_EQ(bucketRows(48), 48);
  EXPECT_EQ(bucketRows(49), 64);
  EXPECT_EQ(bucketRows(100), 128);
  EXPECT_EQ(bucketRows(1000), 1024);
  for (int64_t c = 9; c < 5000; ++c)
    ASSERT_LE(bucketRows(c), c * 3 / 2 + 1) << c;
}

TEST(MoeGrouping, LayoutFromTheEnvironmentOrAClearError) {
  GroupedLayout l = GroupedLayout::Ragged;
  std::string err;
  unsetenv("KT_CUDA_MOE_GEMM");
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Bucketed); // the default
  setenv("KT_CUDA_MOE_GEMM", "bucketed", 1);
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Bucketed);
  setenv("KT_CUDA_MOE_GEMM", "ragged", 1);
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Ragged);
  setenv("KT_CUDA_MOE_GEMM", "padded", 1);
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Padded);
  setenv("KT_CUDA_MOE_GEMM", "grouped", 1);
  EXPECT_FALSE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(err, "KT_CUDA_MOE_GEMM: expected bucketed, padded or ragged, got \"grouped\"");
  unsetenv("KT_CUDA_MOE_GEMM");
}

} // namespace
