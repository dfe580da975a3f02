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
//   Bucketed (the default): experts grouped by count into buckets of 8, 12, 16, 24, 32, 48, ...
//           rows (each at most 1.5x its count), each bucket padded to its rows: one
//           cublasGemmBatchedEx per bucket and product. A skewed routing (the synthetic
//           DeepSeek-V2-Lite's layers: busiest expert 1.7-3.4x the mean at 512 tokens) padded every
//           expert to the busiest one; f32 outputs as Padded (Ragged's bf16 GEMMs write bf16).
enum class GroupedLayout { Padded, Ragged, Bucketed };

// KT_CUDA_MOE_GEMM: unset or "bucketed" -> Bucketed, "padded" -> Padded, "ragged" -> Ragged;
// anything else is false with *err naming the variable and the value.
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

// Items [firstItem, firstItem + items) of a Padded or Bucketed chunk, each padded to `rows` rows,
// their slot rows starting at row0.
struct ChunkBucket {
  int64_t firstItem = 0, items = 0, rows = 0, row0 = 0;
};
// Rows of the bucket of an expert with `count` pairs: the first of 8, 12, 16, 24, 32, 48, 64, ...
// (powers of two and 1.5x them) that holds it.
int64_t bucketRows(int64_t count);

// One chunk's grouping: counted by countChunk, written by fillChunkIndex.
struct ChunkGrouping {
  GroupedLayout layout = GroupedLayout::Padded;
  int64_t tokens = 0;
  int K = 0, E = 0;
  int64_t items = 0;                // active experts (at least one pair)
  int64_t most = 0;                 // pairs of the busiest expert
  std::vector<int32_t> count;       // [E] pairs per expert
  std::vector<int32_t> itemExpert;  // [items] each item's expert: expert order, except Bucketed
                                    // (bucket by bucket, largest first, expert order within)
  std::vector<int32_t> itemRows;    // [items] rows of each item (its expert's count)
  std::vector<ChunkBucket> buckets; // Padded: one; Bucketed: one per row count; Ragged: none
  int64_t bucketedRows = 0;         // Padded/Bucketed: rows of all buckets

  // Rows of the gathered activations and of each product's output.
  int64_t slotRows() const { return layout == GroupedLayout::Ragged ? tokens * K : bucketedRows; }
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
