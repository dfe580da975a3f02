#include "runtime/exec/cuda/MoeGrouping.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kt::cudaops {

bool groupedLayoutFromEnv(GroupedLayout* out, std::string* err) {
  const char* v = std::getenv("KT_CUDA_MOE_GEMM");
  if (!v || !*v || std::strcmp(v, "bucketed") == 0) {
    *out = GroupedLayout::Bucketed;
    return true;
  }
  if (std::strcmp(v, "padded") == 0) {
    *out = GroupedLayout::Padded;
    return true;
  }
  if (std::strcmp(v, "ragged") == 0) {
    *out = GroupedLayout::Ragged;
    return true;
  }
  if (err)
    *err = std::string("KT_CUDA_MOE_GEMM: expected bucketed, padded or ragged, got \"") + v + "\"";
  return false;
}

const char* groupedLayoutName(GroupedLayout layout) {
  return layout == GroupedLayout::Padded   ? "padded"
         : layout == GroupedLayout::Ragged ? "ragged"
                                           : "bucketed";
}

int64_t bucketRows(int64_t count) {
  int64_t r = 8;
  while (r < count)
    r = (r & (r - 1)) == 0 ? r + r / 2 : r / 3 * 4; // 8 12 16 24 32 48 64 ...
  return r;
}

ChunkIndex ChunkGrouping::view(int32_t* base) const {
  ChunkIndex v;
  v.rowToken = base;
  v.pairRow = v.rowToken + slotRows();
  v.slots = v.pairRow + tokens * K;
  if (layout == GroupedLayout::Ragged)
    v.itemRow0 = v.slots + items;
  return v;
}

ChunkGrouping countChunk(const int32_t* chosen, int64_t tokens, int K, int E,
                         GroupedLayout layout) {
  ChunkGrouping g;
  g.layout = layout;
  g.tokens = tokens;
  g.K = K;
  g.E = E;
  g.count.assign(static_cast<size_t>(E), 0);
  for (int64_t p = 0; p < tokens * K; ++p)
    ++g.count[size_t(chosen[p])];
  for (int e = 0; e < E; ++e)
    if (const int32_t n = g.count[size_t(e)]; n > 0) {
      g.itemExpert.push_back(e);
      g.most = std::max<int64_t>(g.most, n);
    }
  g.items = int64_t(g.itemExpert.size());
  if (layout == GroupedLayout::Bucketed) // largest bucket first; expert order within a bucket
    std::stable_sort(g.itemExpert.begin(), g.itemExpert.end(), [&](int32_t a, int32_t b) {
      return bucketRows(g.count[size_t(a)]) > bucketRows(g.count[size_t(b)]);
    });
  for (int32_t e : g.itemExpert)
    g.itemRows.push_back(g.count[size_t(e)]);
  if (layout == GroupedLayout::Padded && g.items > 0)
    g.buckets.push_back({0, g.items, g.most, 0});
  if (layout == GroupedLayout::Bucketed)
    for (int64_t i = 0; i < g.items; ++i) {
      const int64_t rows = bucketRows(g.itemRows[size_t(i)]);
      if (g.buckets.empty() || g.buckets.back().rows != rows) {
        const int64_t row0 = g.buckets.empty() ? 0
                                               : g.buckets.back().row0 +
                                                     g.buckets.back().items * g.buckets.back().rows;
        g.buckets.push_back({i, 0, rows, row0});
      }
      ++g.buckets.back().items;
    }
  for (const ChunkBucket& b : g.buckets)
    g.bucketedRows += b.items * b.rows;
  return g;
}

void fillChunkIndex(const ChunkGrouping& g, const int32_t* chosen, int64_t firstToken,
                    const int64_t* sliceOf, int32_t* index) {
  const ChunkIndex v = g.view(index);
  const bool ragged = g.layout == GroupedLayout::Ragged;
  // Padding rows repeat the chunk's first token: finite inputs whose results nobody reads.
  if (!ragged)
    std::fill(v.rowToken, v.rowToken + g.slotRows(), int32_t(firstToken));
  // Each active expert's first slot row: its bucket's row0 + its place in the bucket x the
  // bucket's rows (Padded, Bucketed), or packed after the previous experts' rows (Ragged).
  std::vector<int64_t> next(static_cast<size_t>(g.E), 0);
  int64_t row0 = 0;
  size_t bucket = 0;
  for (int64_t item = 0; item < g.items; ++item) {
    const int32_t e = g.itemExpert[size_t(item)];
    if (ragged) {
      next[size_t(e)] = row0;
      v.itemRow0[item] = int32_t(row0);
      row0 += g.count[size_t(e)];
    } else {
      while (item >= g.buckets[bucket].firstItem + g.buckets[bucket].items)
        ++bucket;
      const ChunkBucket& b = g.buckets[bucket];
      next[size_t(e)] = b.row0 + (item - b.firstItem) * b.rows;
    }
    v.slots[item] = int32_t(sliceOf ? sliceOf[e] : e);
  }
  for (int64_t p = 0; p < g.tokens * g.K; ++p) { // token order within each expert
    const int64_t row = next[size_t(chosen[p])]++;
    v.rowToken[row] = int32_t(firstToken + p / g.K);
    v.pairRow[p] = int32_t(row);
  }
}

} // namespace kt::cudaops
