#pragma once
// The GPU moe op's prefill path for layers whose routed experts are all on the GPU in f32, bf16,
// int8 or int4 (MoeOp.cpp decides; int8/int4 widen per product: MoeGroupedQuant.h): instead of a
// gather, three GEMMs and a scatter per expert (some 9 launches an expert, each GEMM a few row
// tiles that leave most of the GPU idle: 13 ms a layer for DeepSeek-V2-Lite at 2048 tokens on the
// H100), a chunk of tokens runs as
//   one gather of every (expert, token) row into per-expert slots padded to the busiest expert,
//   three batched GEMMs over the active experts (Blas::linearStack), one SwiGLU,
//   one gather back into (token, k) order and moeCombine (the decode path's deterministic sum in
//   top-k order, shared experts included).
// Padding costs (busiest expert's rows x active experts) / (tokens x top-k) of the GEMM work;
// KT_CUDA_MOE_GEMM=ragged packs the rows instead (MoeGrouping.h: GroupedLayout).
#include "runtime/exec/cuda/MoeGrouping.h"

#include <cstdint>
#include <string>

namespace kt {
struct OpContext;
}
namespace kt::cuda {
class Blas;
}

namespace kt::cudaops {

struct GpuWeight;

// Tokens per chunk: bounds the scratch (~300 MB for DeepSeek-V2-Lite) while giving each expert
// ~100 rows, where the batched GEMM runs at ~2/3 of its large-row rate on the H100 (512-token
// chunks, ~48 rows, ran it at a quarter: docs/cuda.md).
constexpr int64_t kGroupedChunkTokens = 1024;

// Whether a prefill MoE step with these routed-expert stacks takes the grouped path (every expert
// on the GPU, the three stacks f32, bf16, int8 or int4 alike; KT_CUDA_MOE_GROUPED=0 turns it off
// for comparisons).
bool groupedExpertsApply(const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down);

// out[T, H] = sum over each token's top-k pairs (weights/experts: the routing on the GPU;
// hChosen: the same choices on the host) of weight x expert(x), plus sharedScale[t] (1 when null)
// x shared[t] when shared is given. Every element of out is written.
void groupedExperts(OpContext& c, const float* x, int64_t T, int64_t H, int K, int E,
                    const int32_t* hChosen, const int32_t* dExperts, const float* dWeights,
                    const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down,
                    const float* shared, const float* sharedScale, float* out);

// One chunk's kernel sequence, on explicit device memory (kt-rt probe times it too:
// grouped_gemm_gflops, grouped_moe_gflops). Items are the chunk's active experts: with the
// Padded layout each padded to rowsPerItem rows, with Ragged item i has itemRows[i] rows starting
// at slot row itemRow0[i] (the index MoeGrouping.h's fillChunkIndex writes).
struct ExpertStacks {
  const void* gate = nullptr; // [E][inter][H] (f32 or bf16), up alike, down [E][H][inter]
  const void* up = nullptr;
  const void* down = nullptr;
  bool bf16 = false;
  int64_t inter = 0;
  // Weight-only int8 or int4 stacks (GpuWeight::int8() / int4(); bf16 is false then): gate, up
  // and down hold q, and each product first widens the chunk's active slices of its stack to bf16
  // in GroupedScratch::widened (MoeGroupedQuant.h). int8: one f32 scale per row, [E][N];
  // int4: the f16 group scales, [E][N][int4Groups(K)] (kernels/cuda/Int4Format.h).
  bool int8 = false, int4 = false;
  const float *gateScales = nullptr, *upScales = nullptr, *downScales = nullptr;
  const uint16_t *gateGroups = nullptr, *upGroups = nullptr, *downGroups = nullptr;
};
struct GroupedChunk {
  const float* x = nullptr; // [T, H]: the step's rows (rowToken indexes them)
  int64_t H = 0;
  int K = 0, E = 0;
  int64_t tokens = 0, items = 0, rowsPerItem = 0; // rowsPerItem: Padded only
  GroupedLayout layout = GroupedLayout::Padded;
  // Bucketed: the buckets (HOST memory, in the grouping), each run as a Padded chunk of its items.
  const ChunkBucket* buckets = nullptr;
  int64_t bucketCount = 0, bucketedRows = 0;
  const int32_t* itemRows = nullptr; // Ragged: [items] rows of each item, HOST memory
  const int32_t* itemRow0 = nullptr; // Ragged: [items] each item's first slot row (device)
  const int32_t* rowToken = nullptr; // [slot rows]: the row of x each slot row takes
  const int32_t* pairRow = nullptr;  // [tokens * K]: the slot row of each (token, k)
  const int32_t* slots = nullptr;    // [items]: each item's slice of the stacks
  const float* weights = nullptr;    // [tokens * K] routing weights
  const int32_t* experts = nullptr;  // [tokens * K] routing choices
  const float* shared = nullptr;     // [tokens, H] or null
  const float* sharedScale = nullptr;
  float* out = nullptr; // [tokens, H], every element written
  // Rows gathered and multiplied: items x rowsPerItem (Padded), tokens x K (Ragged), the
  // buckets' rows (Bucketed).
  int64_t slotRows() const {
    return layout == GroupedLayout::Padded   ? items * rowsPerItem
           : layout == GroupedLayout::Ragged ? tokens * K
                                             : bucketedRows;
  }
};
// A chunk whose grouping is g and whose index (fillChunkIndex's, g.indexInts() ints) is at
// deviceIndex: K, E, tokens, items, rowsPerItem, layout and the index arrays set (itemRows points
// into g, which must outlive the chunk's run); the caller sets x, H, the routing, shared, out.
GroupedChunk chunkOver(const ChunkGrouping& g, const int32_t* deviceIndex);
struct GroupedScratch {
  float *rows = nullptr, *gate = nullptr, *up = nullptr, *down = nullptr, *pairY = nullptr;
  // int8/int4 stacks only (MoeGroupedQuant.h): widenedElems bf16 weights (items x inter x H)
  // for the widened slices of one product at a time, and the identity slots 0 .. items - 1 (as
  // many items as widenedElems holds).
  uint16_t* widened = nullptr;
  int64_t widenedElems = 0;
  const int32_t* identity = nullptr;
};
bool runGroupedChunk(cuda::Blas& blas, const ExpertStacks& w, const GroupedChunk& g,
                     const GroupedScratch& s, std::string* err);

} // namespace kt::cudaops
