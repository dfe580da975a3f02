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
    for (const GroupedLayout layout : {GroupedLayout::Padded, GroupedLayout::Ragged}) {
      SCOPED_TRACE(std::string(groupedLayoutName(layout)) + " T=" + std::to_string(T));
      const std::vector<int32_t> chosen = randomChoices(rng, T, K, pool);
      const ChunkGrouping g = countChunk(chosen.data(), T, K, E, layout);
      const int64_t first = 100; // the chunk's first token in the step
      std::vector<int32_t> index(static_cast<size_t>(g.indexInts()), -7);
      fillChunkIndex(g, chosen.data(), first, sliceOf.data(), index.data());
      const ChunkIndex v = g.view(index.data());
      // Items are the active experts in order; each item's first row and rows.
      std::vector<int32_t> itemOf(E, -1);
      std::vector<int64_t> row0, rows;
      int64_t next = 0;
      for (int e = 0; e < E; ++e)
        if (g.count[size_t(e)] > 0) {
          const int32_t item = int32_t(row0.size());
          itemOf[size_t(e)] = item;
          EXPECT_EQ(v.slots[item], sliceOf[size_t(e)]);
          row0.push_back(layout == GroupedLayout::Padded ? item * g.most : next);
          rows.push_back(g.count[size_t(e)]);
          next += g.count[size_t(e)];
          if (layout == GroupedLayout::Ragged) {
            EXPECT_EQ(v.itemRow0[item], row0.back());
          }
        }
      ASSERT_EQ(int64_t(row0.size()), g.items);
      EXPECT_EQ(v.itemRow0 == nullptr, layout == GroupedLayout::Padded);
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
      // The rows no pair took are padding (Padded only) and repeat the chunk's first token.
      EXPECT_EQ(int64_t(used.size()) +
                    (layout == GroupedLayout::Padded ? g.items * g.most - T * K : 0),
                g.slotRows());
      for (int64_t row = 0; row < g.slotRows(); ++row)
        if (!used.count(int32_t(row))) {
          EXPECT_EQ(v.rowToken[row], first);
        }
    }
}

TEST(MoeGrouping, LayoutFromTheEnvironmentOrAClearError) {
  GroupedLayout l = GroupedLayout::Ragged;
  std::string err;
  unsetenv("KT_CUDA_MOE_GEMM");
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Padded); // the default
  setenv("KT_CUDA_MOE_GEMM", "ragged", 1);
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Ragged);
  setenv("KT_CUDA_MOE_GEMM", "padded", 1);
  ASSERT_TRUE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(l, GroupedLayout::Padded);
  setenv("KT_CUDA_MOE_GEMM", "grouped", 1);
  EXPECT_FALSE(groupedLayoutFromEnv(&l, &err));
  EXPECT_EQ(err, "KT_CUDA_MOE_GEMM: expected padded or ragged, got \"grouped\"");
  unsetenv("KT_CUDA_MOE_GEMM");
}

} // namespace
