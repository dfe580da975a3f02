#include "runtime/exec/cuda/MoeGrouping.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kt::cudaops {

bool groupedLayoutFromEnv(GroupedLayout* out, std::string* err) {
  const char* v = std::getenv("KT_CUDA_MOE_GEMM");
  if (!v || !*v || std::strcmp(v, "padded") == 0) {
    *out = GroupedLayout::Padded;
    return true;
  }
  if (std::strcmp(v, "ragged") == 0) {
    *out = GroupedLayout::Ragged;
    return true;
  }
  if (err)
    *err = std::string("KT_CUDA_MOE_GEMM: expected padded or ragged, got \"") + v + "\"";
  return false;
}

const char* groupedLayoutName(GroupedLayout layout) {
  return layout == GroupedLayout::Padded ? "padded" : "ragged";
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
      g.itemRows.push_back(n);
      g.most = std::max<int64_t>(g.most, n);
    }
  g.items = int64_t(g.itemRows.size());
  return g;
}

void fillChunkIndex(const ChunkGrouping& g, const int32_t* chosen, int64_t firstToken,
                    const int64_t* sliceOf, int32_t* index) {
  const ChunkIndex v = g.view(index);
  const bool padded = g.layout == GroupedLayout::Padded;
  // Padding rows repeat the chunk's first token: finite inputs whose results nobody reads.
  if (padded)
    std::fill(v.rowToken, v.rowToken + g.slotRows(), int32_t(firstToken));
  // Each active expert's first slot row: item i * most when padded, packed after the previous
  // experts' rows when ragged.
  std::vector<int64_t> next(static_cast<size_t>(g.E), 0);
  int32_t item = 0;
  int64_t row0 = 0;
  for (int e = 0; e < g.E; ++e) {
    if (g.count[size_t(e)] == 0)
      continue;
    next[size_t(e)] = padded ? int64_t(item) * g.most : row0;
    v.slots[item] = int32_t(sliceOf ? sliceOf[e] : e);
    if (!padded)
      v.itemRow0[item] = int32_t(row0);
    row0 += g.count[size_t(e)];
    ++item;
  }
  for (int64_t p = 0; p < g.tokens * g.K; ++p) { // token order within each expert
    const int64_t row = next[size_t(chosen[p])]++;
    v.rowToken[row] = int32_t(firstToken + p / g.K);
    v.pairRow[p] = int32_t(row);
  }
}

} // namespace kt::cudaops
