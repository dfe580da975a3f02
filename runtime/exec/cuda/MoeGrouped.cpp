#include "runtime/exec/cuda/MoeGrouped.h"

#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/CudaBackend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kt::cudaops {

namespace {
// Scratch ids of this file (MoeOp.cpp uses 200..).
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
  auto plain = [](const GpuWeight& w) { return w.local.empty() && !w.int8() && !w.int4(); };
  return !disabled() && plain(gate) && plain(up) && plain(down) && gate.bf16 == up.bf16;
}

void groupedExperts(OpContext& c, const float* x, int64_t T, int64_t H, int K, int E,
                    const int32_t* hChosen, const int32_t* dExperts, const float* dWeights,
                    const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down,
                    const float* shared, const float* sharedScale, float* out) {
  CudaBackend& b = backendOf(c);
  const int64_t inter = gate.rows;
  std::string err;
  // Every chunk's grouping first, into one page-locked buffer that goes up by one async copy: no
  // chunk waits for the host (the next moe step's routing readback synchronizes before this
  // buffer is written again).
  struct Chunk {
    int64_t c0 = 0, n = 0, items = 0, most = 0, offset = 0; // offset: into the index buffer
    std::vector<int32_t> count;                             // pairs per expert
  };
  std::vector<Chunk> chunks;
  std::vector<int32_t> slot(static_cast<size_t>(E)), fill(static_cast<size_t>(E));
  int64_t total = 0, maxSlotRows = 0;
  const int64_t chunk = chunkTokens();
  for (int64_t c0 = 0; c0 < T; c0 += chunk) {
    Chunk ch;
    ch.c0 = c0;
    ch.n = std::min(chunk, T - c0);
    ch.count.assign(size_t(E), 0);
    for (int64_t p = 0; p < ch.n * K; ++p)
      ++ch.count[size_t(hChosen[c0 * K + p])];
    for (int e = 0; e < E; ++e)
      if (ch.count[size_t(e)] > 0) {
        ++ch.items;
        ch.most = std::max<int64_t>(ch.most, ch.count[size_t(e)]);
      }
    ch.offset = total;
    // [rows of the slots | (token, k) -> slot row | slot -> expert stack slice]
    total += ch.items * ch.most + ch.n * K + ch.items;
    maxSlotRows = std::max(maxSlotRows, ch.items * ch.most);
    chunks.push_back(ch);
  }
  auto* index = static_cast<int32_t*>(b.pinned(kHostIndex, size_t(total) * 4));
  for (const Chunk& ch : chunks) {
    const int32_t* chosen = hChosen + ch.c0 * K;
    int32_t* rowToken = index + ch.offset;
    int32_t* pairRow = rowToken + ch.items * ch.most;
    int32_t* slots = pairRow + ch.n * K;
    // Padding rows repeat the chunk's first token: finite inputs whose results nobody reads.
    std::fill(rowToken, rowToken + ch.items * ch.most, int32_t(ch.c0));
    int32_t items = 0;
    for (int e = 0; e < E; ++e)
      if (ch.count[size_t(e)] > 0) {
        slot[size_t(e)] = items;
        slots[items++] = int32_t(gate.at(e));
      }
    std::fill(fill.begin(), fill.end(), 0);
    for (int64_t p = 0; p < ch.n * K; ++p) { // token order within each expert, as the loop path
      const int32_t e = chosen[p];
      const int64_t row = int64_t(slot[size_t(e)]) * ch.most + fill[size_t(e)]++;
      rowToken[row] = int32_t(ch.c0 + p / K);
      pairRow[p] = int32_t(row);
    }
  }
  auto* dIndex = static_cast<int32_t*>(b.scratch(kIndex, size_t(total) * 4));
  b.check(c, cuda::toDeviceAsync(dIndex, index, size_t(total) * 4, &err), err);

  const int64_t maxPairs = std::min(chunk, T) * K;
  GroupedScratch scratch{b.scratchF(kRowsX, maxSlotRows * H),
                         b.scratchF(kGate, maxSlotRows * inter),
                         b.scratchF(kUp, maxSlotRows * inter), b.scratchF(kDown, maxSlotRows * H),
                         b.scratchF(kPairY, maxPairs * H)};
  const ExpertStacks stacks{gate.data, up.data, down.data, gate.bf16, inter};
  for (const Chunk& ch : chunks) {
    GroupedChunk g;
    g.x = x;
    g.H = H;
    g.K = K;
    g.E = E;
    g.tokens = ch.n;
    g.items = ch.items;
    g.rowsPerItem = ch.most;
    g.rowToken = dIndex + ch.offset;
    g.pairRow = g.rowToken + ch.items * ch.most;
    g.slots = g.pairRow + ch.n * K;
    g.weights = dWeights + ch.c0 * K;
    g.experts = dExperts + ch.c0 * K;
    g.shared = shared ? shared + ch.c0 * H : nullptr;
    g.sharedScale = sharedScale ? sharedScale + ch.c0 : nullptr;
    g.out = out + ch.c0 * H;
    b.check(c, runGroupedChunk(b.blas(), stacks, g, scratch, &err), err);
  }
}

bool runGroupedChunk(cuda::Blas& blas, const ExpertStacks& w, const GroupedChunk& g,
                     const GroupedScratch& s, std::string* err) {
  const int64_t slotRows = g.items * g.rowsPerItem;
  cuda::gatherRows(g.x, g.H, g.rowToken, slotRows, s.rows);
  // Gate and up multiply the same rows: bf16 stacks take them rounded once.
  const void* rows = s.rows;
  if (w.bf16 && !(rows = blas.roundedActivations(s.rows, slotRows * g.H, err)))
    return false;
  if (!blas.linearStackPrepared(rows, g.rowsPerItem, g.items, g.slots, w.gate, w.bf16, w.inter, g.H,
                                s.gate, err) ||
      !blas.linearStackPrepared(rows, g.rowsPerItem, g.items, g.slots, w.up, w.bf16, w.inter, g.H,
                                s.up, err))
    return false;
  cuda::swiglu(s.gate, s.up, s.gate, slotRows * w.inter);
  if (!blas.linearStack(s.gate, g.rowsPerItem, g.items, g.slots, w.down, w.bf16, g.H, w.inter,
                        s.down, err))
    return false;
  cuda::gatherRows(s.down, g.H, g.pairRow, g.tokens * g.K, s.pairY);
  cuda::moeCombine(s.pairY, g.weights, g.experts, nullptr, g.E, g.tokens, g.K, g.H, g.shared,
                   g.sharedScale, g.out);
  return true;
}

} // namespace kt::cudaops
