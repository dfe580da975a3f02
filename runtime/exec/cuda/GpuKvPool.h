#pragma once
// The CUDA backend's paged KV cache (docs/cuda.md, "Paged KV cache"). GPU memory is taken in
// segments of whole pages; a page block holds `pageTokens` positions of every GPU attention layer
// (per layer its first array's rows — GQA keys, MLA latent — then its second's — GQA values, MLA
// rope keys). Each sequence slot has one row of a device table [slots][maxPages] of page
// addresses (uint64), shared by all layers; the kernels find position p's rows through
// table[p / pageTokens] (kernels/cuda/DeviceKernels.h, KvPages). Pages are handed out by a
// KvPageAllocator (runtime/exec/KvPages.h) as sequences grow and return when a slot restarts
// (a chunk at position 0), rewinds, or its KvCache resets or goes away.
//
// Why addresses and segments: growing the pool adds a segment and never moves a page, so the
// pages in use are not copied, a pool may fill the whole budget (a copying growth needs old + new
// at once), and CUDA graphs captured before the growth stay valid: only the table's contents
// change, uploaded before each run. The table itself moves only when more slots are used than it
// has rows for (prepare() then says so, and the backend re-captures).
#include "kernels/cuda/DeviceKernels.h"
#include "runtime/exec/Batch.h"
#include "runtime/exec/KvPages.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kt::cudaops {

class GpuKvPool {
public:
  // The rows (floats per position) of one attention layer's two arrays.
  struct LayerRows {
    int layer = 0;
    int64_t firstRow = 0, secondRow = 0;
  };
  // `gpuName` names the device in errors; maxPositions: the model's (the table's width).
  GpuKvPool(std::vector<LayerRows> layers, int64_t maxPositions, int64_t pageTokens,
            std::string gpuName);
  ~GpuKvPool();
  GpuKvPool(const GpuKvPool&) = delete;
  GpuKvPool& operator=(const GpuKvPool&) = delete;

  // What the pool may still grow into, and how to say so when it cannot.
  struct Limit {
    uint64_t bytes = 0; // more device bytes the pool may take
    std::string what;   // e.g. "the plan's GPU budget of 8.00 GiB (weights ...)"
    std::string remedy; // what the user can change
  };
  // Before a run of `batch`: a chunk starting at position 0 restarts its slot (every page back),
  // a chunk starting before the slot's end rewinds it, then each slot takes the pages its chunk
  // reaches; the pool grows by a segment when short (within limit(), asked only then), and the
  // table rows that changed are uploaded (blocking, on the current stream). Throws kt::Error naming
  // the budget, the sequences and positions asked and the free pages when the pages do not fit.
  // Returns true when the device table moved (CUDA graphs that read it must be captured again).
  bool prepare(const Batch& batch, const std::function<Limit()>& limit);
  // The slot's sequence is gone (its KvCache reset or was destroyed): its pages go back.
  void release(int slot) {
    pages_.release(slot);
    if (slot >= 0 && size_t(slot) < uploaded_.size())
      uploaded_[size_t(slot)] = 0;
  }

  // The page view of `slot` for the attention kernels: the slot's table row.
  cuda::KvPages pages(int slot) const;
  // Float offsets of `layer`'s two arrays inside a page block (throws for a layer not here).
  std::pair<int64_t, int64_t> offsets(int layer) const;
  // Positions a slot's table row has room for (the kernels' maxKeys / capacity).
  int64_t maxPositions() const { return width_ * pages_.pageTokens(); }
  int64_t pageTokens() const { return pages_.pageTokens(); }
  uint64_t pageBytes() const { return pageBytes_; }
  uint64_t bytes() const; // device bytes held: segments and table
  const KvPageAllocator& allocator() const { return pages_; }
  // "KV cache 12.0 MiB (48 pages of 16 positions: 12 in use, peak 20)".
  std::string report() const;

  // KT_KV_PAGE_TOKENS (a power of two from 1 to 4096), else kDefaultPageTokens; throws kt::Error
  // naming the variable when it is set to anything else.
  static int64_t pageTokensFromEnv();
  static constexpr int64_t kDefaultPageTokens = 16;
  // The smallest growth, in positions of one sequence (the first segment of a pool for short
  // prompts; later segments double the pool). KT_KV_GROWTH_TOKENS (1 or more) overrides it, for
  // tests that make the pool grow in the middle of a decode.
  static constexpr int64_t kMinGrowthTokens = 1024;
  static int64_t growthTokensFromEnv();

private:
  void grow(int64_t pagesShort, const Batch& batch, const Limit& limit);
  bool ensureTableRows(int slots);
  void uploadRows(int slot);

  std::string gpuName_;
  int64_t growthTokens_ = kMinGrowthTokens;
  std::map<int, std::pair<int64_t, int64_t>> offsets_; // layer -> float offsets in a page
  uint64_t pageBytes_ = 0;
  int64_t width_ = 0; // table entries per slot
  KvPageAllocator pages_;
  struct Segment {
    void* data = nullptr;
    int64_t pages = 0;
  };
  std::vector<Segment> segments_;
  std::vector<uint64_t> address_; // page id -> device address
  uint64_t* table_ = nullptr;     // device [tableSlots_][width_]
  int tableSlots_ = 0;
  std::vector<uint64_t> hostTable_; // what table_ should hold
  std::vector<int64_t> uploaded_;   // per slot: leading entries that are current on the device
};

} // namespace kt::cudaops
