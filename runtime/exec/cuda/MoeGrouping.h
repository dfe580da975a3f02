#pragma once
// The host half of the grouped prefill MoE (MoeGrouped.h): one chunk's (token, k) pairs grouped
// by expert from the routing choices read back to the host, written as the int32 index the
// chunk's kernels read. The runtime (groupedExperts) and kt-rt probe (grouped_moe_gflops) both
// build their chunks here, so the probe times the very layout the runtime runs. Plain C++ (no
// CUDA): test/unit/cuda/moe_grouping_test.cpp checks it without a GPU.
#include <cstdint>
#include <string>
#include <vector>

namespace kt::cudaops {

// How a chunk's rows are laid out for its three expert products (KT_CUDA_MOE_GEMM):
//   Padded: every active expert gets the busiest expert's row count (the extra rows repeat the
//           chunk's first token and are never read back); one cublasGemmBatchedEx per product
//           (Blas::linearStack).
//   Ragged: rows packed expert after expert, each expert exactly its own count; one
//           cublasGemmGroupedBatchedEx per product (Blas::linearStackRagged).
enum class GroupedLayout { Padded, Ragged };

// KT_CUDA_MOE_GEMM: unset or "padded" -> Padded, "ragged" -> Ragged; anything else is false with
// *err naming the variable and the value.
bool groupedLayoutFromEnv(GroupedLayout* out, std::string* err);
const char* groupedLayoutName(GroupedLayout layout);

// Views of one chunk's index (host or device memory alike):
//   rowToken [slotRows]: the row of x each slot row takes,
//   pairRow [tokens * K]: the slot row of each (token, k) pair,
//   slots [items]: each item's slice of the expert stacks,
//   itemRow0 [items] (Ragged only, else null): each item's first slot row.
struct ChunkIndex {
  int32_t* rowToken = nullptr;
  int32_t* pairRow = nullptr;
  int32_t* slots = nullptr;
  int32_t* itemRow0 = nullptr;
};

// One chunk's grouping: counted by countChunk, written by fillChunkIndex.
struct ChunkGrouping {
  GroupedLayout layout = GroupedLayout::Padded;
  int64_t tokens = 0;
  int K = 0, E = 0;
  int64_t items = 0;             // active experts (at least one pair), in expert order
  int64_t most = 0;              // pairs of the busiest expert
  std::vector<int32_t> count;    // [E] pairs per expert
  std::vector<int32_t> itemRows; // [items] rows of each item (its expert's count)

  // Rows of the gathered activations and of each product's output.
  int64_t slotRows() const { return layout == GroupedLayout::Padded ? items * most : tokens * K; }
  // Ints of the chunk's index: slotRows + tokens * K + items (+ items when Ragged).
  int64_t indexInts() const {
    return slotRows() + tokens * K + items + (layout == GroupedLayout::Ragged ? items : 0);
  }
  // The index's arrays inside `base` (indexInts() ints), in the order listed by ChunkIndex.
  ChunkIndex view(int32_t* base) const;
};

// Counts the pairs of `tokens` tokens' top-K choices (chosen[t * K + j], each in [0, E)).
ChunkGrouping countChunk(const int32_t* chosen, int64_t tokens, int K, int E, GroupedLayout layout);

// Writes g's index into `index` (g.indexInts() ints). firstToken: the chunk's first token in the
// step (rowToken holds rows of the step's x); sliceOf[e]: expert e's slice of the stacks (null:
// e). Within each expert, its pairs keep token order (as the per-expert loop path takes them).
void fillChunkIndex(const ChunkGrouping& g, const int32_t* chosen, int64_t firstToken,
                    const int64_t* sliceOf, int32_t* index);

} // namespace kt::cudaops
