#include "runtime/exec/cuda/MoeGrouped.h"

#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/exec/cuda/MoeGroupedQuant.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kt::cudaops {

namespace {
// Scratch ids of this file (MoeOp.cpp uses 200.., MoeGroupedQuant.cpp 246 and 247).
enum Scratch { kIndex = 240, kRowsX, kGate, kUp, kDown, kPairY };
// Page-locked staging id (MoeOp.cpp uses 0..3).
constexpr int kHostIndex = 20;

bool disabled() {
  static const bool off = [] {
    const char* v = std::getenv("KT_CUDA_MOE_GROUPED");
    return v && std::strcmp(v, "0") == 0;
  }();
  return off;
}
// KT_CUDA_MOE_CHUNK=N: chunks of N tokens (tests run short fixture prompts through several).
int64_t chunkTokens() {
  static const int64_t n = [] {
    const char* v = std::getenv("KT_CUDA_MOE_CHUNK");
    const long long t = v ? std::atoll(v) : 0;
    return t > 0 ? int64_t(t) : kGroupedChunkTokens;
  }();
  return n;
}
} // namespace

bool groupedExpertsApply(const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down) {
  // Every expert on the GPU (split layers stay on the per-expert path), the three stacks in one
  // format: f32, bf16, or int8 / int4 (widened per product: MoeGroupedQuant.h).
  auto format = [](const GpuWeight& w) { return w.int8() ? 3 : w.int4() ? 2 : w.bf16 ? 1 : 0; };
  auto whole = [](const GpuWeight& w) { return w.local.empty(); };
  return !disabled() && whole(gate) && whole(up) && whole(down) && format(gate) == format(up) &&
         format(up) == format(down);
}

void groupedExperts(OpContext& c, const float* x, int64_t T, int64_t H, int K, int E,
                    const int32_t* hChosen, const int32_t* dExperts, const float* dWeights,
                    const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down,
                    const float* shared, const float* sharedScale, float* out) {
  CudaBackend& b = backendOf(c);
  const int64_t inter = gate.rows;
  std::string err;
  GroupedLayout layout = GroupedLayout::Padded;
  b.check(c, groupedLayoutFromEnv(&layout, &err), err);
  // Every chunk's grouping first (MoeGrouping.h), into one page-locked buffer that goes up by one
  // async copy: no chunk waits for the host (the next moe step's routing readback synchronizes
  // before this buffer is written again).
  std::vector<ChunkGrouping> chunks;
  std::vector<int64_t> offsets; // of each chunk's index in the buffer
  std::vector<int64_t> sliceOf(static_cast<size_t>(E));
  for (int e = 0; e < E; ++e)
    sliceOf[size_t(e)] = gate.at(e);
  int64_t total = 0, maxSlotRows = 0;
  const int64_t chunk = chunkTokens();
  for (int64_t c0 = 0; c0 < T; c0 += chunk) {
    chunks.push_back(countChunk(hChosen + c0 * K, std::min(chunk, T - c0), K, E, layout));
    offsets.push_back(total);
    total += chunks.back().indexInts();
    maxSlotRows = std::max(maxSlotRows, chunks.back().slotRows());
  }
  auto* index = static_cast<int32_t*>(b.pinned(kHostIndex, size_t(total) * 4));
  for (size_t i = 0; i < chunks.size(); ++i)
    fillChunkIndex(chunks[i], hChosen + int64_t(i) * chunk * K, int64_t(i) * chunk, sliceOf.data(),
                   index + offsets[i]);
  auto* dIndex = static_cast<int32_t*>(b.scratch(kIndex, size_t(total) * 4));
  b.check(c, cuda::toDeviceAsync(dIndex, index, size_t(total) * 4, &err), err);

  const int64_t maxPairs = std::min(chunk, T) * K;
  GroupedScratch scratch{b.scratchF(kRowsX, maxSlotRows * H),
                         b.scratchF(kGate, maxSlotRows * inter),
                         b.scratchF(kUp, maxSlotRows * inter), b.scratchF(kDown, maxSlotRows * H),
                         b.scratchF(kPairY, maxPairs * H)};
  const ExpertStacks stacks = expertStacksOf(gate, up, down);
  attachWidening(c, stacks, H, gate.count, &scratch); // int8/int4 only
  for (size_t i = 0; i < chunks.size(); ++i) {
    const int64_t c0 = int64_t(i) * chunk;
    GroupedChunk g = chunkOver(chunks[i], dIndex + offsets[i]);
    g.x = x;
    g.H = H;
    g.weights = dWeights + c0 * K;
    g.experts = dExperts + c0 * K;
    g.shared = shared ? shared + c0 * H : nullptr;
    g.sharedScale = sharedScale ? sharedScale + c0 : nullptr;
    g.out = out + c0 * H;
    b.check(c, runGroupedChunk(b.blas(), stacks, g, scratch, &err), err);
  }
}

GroupedChunk chunkOver(const ChunkGrouping& g, const int32_t* deviceIndex) {
  // The index arrays are only read on the device; view() takes a mutable base for host writers.
  const ChunkIndex v = g.view(const_cast<int32_t*>(deviceIndex));
  GroupedChunk c;
  c.K = g.K;
  c.E = g.E;
  c.tokens = g.tokens;
  c.items = g.items;
  c.rowsPerItem = g.layout == GroupedLayout::Padded ? g.most : 0;
  c.layout = g.layout;
  if (g.layout == GroupedLayout::Bucketed) {
    c.buckets = g.buckets.data();
    c.bucketCount = int64_t(g.buckets.size());
    c.bucketedRows = g.bucketedRows;
  }
  c.itemRows = g.itemRows.data();
  c.itemRow0 = v.itemRow0;
  c.rowToken = v.rowToken;
  c.pairRow = v.pairRow;
  c.slots = v.slots;
  return c;
}

bool runGroupedChunk(cuda::Blas& blas, const ExpertStacks& w, const GroupedChunk& g,
                     const GroupedScratch& s, std::string* err) {
  const int64_t slotRows = g.slotRows();
  cuda::gatherRows(g.x, g.H, g.rowToken, slotRows, s.rows);
  // Gate and up multiply the same rows: bf16 stacks take them rounded once.
  const void* rows = s.rows;
  if ((w.bf16 || widens(w)) && !(rows = blas.roundedActivations(s.rows, slotRows * g.H, err)))
    return false;
  // One product over every item of chunk c: y [slotRows, n] = in . W_slot^T, in already in the
  // stack's type (prepared) or f32. Padded: one batched GEMM of rowsPerItem rows an item; Ragged:
  // one grouped GEMM of each item's own rows (g.itemRows on the host, g.itemRow0 on the device).
  // ps: the product's stack, weight type and slots (prepareStack's: the chunk's own, or the
  // int8/int4 slices widened to bf16 with identity slots).
  auto product = [&](const GroupedChunk& c, const void* in, bool prepared, const ProductStack& ps,
                     int64_t n, int64_t k, float* y) {
    if (c.layout == GroupedLayout::Ragged)
      return prepared
                 ? blas.linearStackRaggedPrepared(in, c.itemRows, c.itemRow0, c.items, ps.slots,
                                                  ps.stack, ps.bf16, n, k, y, err)
                 : blas.linearStackRagged(static_cast<const float*>(in), c.itemRows, c.itemRow0,
                                          c.items, ps.slots, ps.stack, ps.bf16, n, k, y, err);
    return prepared ? blas.linearStackPrepared(in, c.rowsPerItem, c.items, ps.slots, ps.stack,
                                               ps.bf16, n, k, y, err)
                    : blas.linearStack(static_cast<const float*>(in), c.rowsPerItem, c.items,
                                       ps.slots, ps.stack, ps.bf16, n, k, y, err);
  };
  // Each product in turn: its stack (int8/int4 widen the chunk's active slices into the one
  // widening scratch: MoeGroupedQuant.h), the GEMM, then int8's column scales.
  auto runOn = [&](const GroupedChunk& c, ExpertProduct p, const void* in, bool prepared, int64_t n,
                   int64_t k, float* y) {
    ProductStack ps;
    if (!prepareStack(w, p, c, s, &ps, err) || !product(c, in, prepared, ps, n, k, y))
      return false;
    finishProduct(w, p, c, y);
    return true;
  };
  // Bucketed: each bucket is a Padded chunk of its items over its slot rows.
  const size_t preparedBytes = (w.bf16 || widens(w)) ? 2 : 4;
  auto run = [&](ExpertProduct p, const void* in, bool prepared, int64_t n, int64_t k, float* y) {
    if (g.layout != GroupedLayout::Bucketed)
      return runOn(g, p, in, prepared, n, k, y);
    for (int64_t i = 0; i < g.bucketCount; ++i) {
      const ChunkBucket& b = g.buckets[i];
      GroupedChunk sub = g;
      sub.layout = GroupedLayout::Padded;
      sub.items = b.items;
      sub.rowsPerItem = b.rows;
      sub.slots = g.slots + b.firstItem;
      const void* inB = static_cast<const char*>(in) +
                        size_t(b.row0 * k) * (prepared ? preparedBytes : sizeof(float));
      if (!runOn(sub, p, inB, prepared, n, k, y + b.row0 * n))
        return false;
    }
    return true;
  };
  if (!run(ExpertProduct::Gate, rows, /*prepared=*/true, w.inter, g.H, s.gate) ||
      !run(ExpertProduct::Up, rows, /*prepared=*/true, w.inter, g.H, s.up))
    return false;
  cuda::swiglu(s.gate, s.up, s.gate, slotRows * w.inter);
  if (!run(ExpertProduct::Down, s.gate, /*prepared=*/false, g.H, w.inter, s.down))
    return false;
  cuda::gatherRows(s.down, g.H, g.pairRow, g.tokens * g.K, s.pairY);
  cuda::moeCombine(s.pairY, g.weights, g.experts, nullptr, g.E, g.tokens, g.K, g.H, g.shared,
                   g.sharedScale, g.out);
  return true;
}

} // namespace kt::cudaops
