#pragma once
// The grouped prefill MoE (MoeGrouped.h) over weight-only int8 and int4 expert stacks. cuBLAS has
// no int8-weight x f32-activation GEMM, so each of a chunk's three products first widens the
// chunk's active slices of its stack (the chunk's slot list) into one bf16 scratch stack
// [items][N][K] — one launch, the element definition Blas::linearInt8 / linearInt4 use for their
// row blocks (kernels/cuda/QuantWiden.h) — then runs the batched bf16 GEMM over it with the
// identity slots 0 .. items - 1, and for int8 scales each item's output columns by its expert's
// row scales (f32, after the GEMM). So every product sees exactly the weights of the per-expert
// path (int8: q, then y * scale; int4: bf16(d * q)) and the parity bounds do not move.
// One scratch serves gate, up and down in turn (widen, GEMM; widen, GEMM; widen, GEMM: the stream
// orders them): E x inter x H x 2 bytes (DeepSeek-V2-Lite 369 MB, Qwen3-30B-A3B 403 MB), held in
// the backend's scratch, which the memory summary counts under "activations".
#include "runtime/exec/cuda/MoeGrouped.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kt {
struct OpContext;
}

namespace kt::cudaops {

struct GpuWeight;

// The step's routed-expert stacks as runGroupedChunk reads them (f32/bf16, or int8/int4 q and
// their scales).
ExpertStacks expertStacksOf(const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down);

// Whether the stacks' products widen first (int8/int4).
inline bool widens(const ExpertStacks& w) {
  return w.int8 || w.int4;
}

// Weights of GroupedScratch::widened for `items` items: the largest product's N x K each (gate
// and up inter x H, down H x inter: the same).
int64_t widenedElems(const ExpertStacks& w, int64_t H, int64_t items);

// For widening stacks: points s->widened / s->identity at the backend's scratch (ids 246, 247)
// with room for `slices` items (the stack's slice count: a long prefill's chunks activate nearly
// every expert, so the scratch is sized once for all and the plan's budget sees a fixed amount)
// and fills the identity list. Nothing for f32/bf16 stacks.
void attachWidening(OpContext& c, const ExpertStacks& w, int64_t H, int64_t slices,
                    GroupedScratch* s);

enum class ExpertProduct { Gate, Up, Down };

// What one product of a chunk multiplies: f32/bf16 stacks themselves with the chunk's slots, or
// for int8/int4 the chunk's active slices widened into s.widened (one launch) with the identity
// slots. bf16: the weights are bf16 (the activations are then rounded to bf16).
struct ProductStack {
  const void* stack = nullptr;
  bool bf16 = false;
  const int32_t* slots = nullptr;
};
// False with *err when a widening stack has no (or too small a) widening scratch.
bool prepareStack(const ExpertStacks& w, ExpertProduct p, const GroupedChunk& g,
                  const GroupedScratch& s, ProductStack* out, std::string* err);

// After product p into y (g.slotRows() rows): int8 multiplies each item's output columns by its
// expert's row scales (as Blas::linearInt8 does after its GEMM); nothing for the other formats.
void finishProduct(const ExpertStacks& w, ExpertProduct p, const GroupedChunk& g, float* y);

} // namespace kt::cudaops
