#pragma once
// The bookkeeping of a paged KV cache (docs/cuda.md, "Paged KV cache"): a pool of pages of
// `pageTokens` positions each, and per sequence slot the pages that hold its positions in order
// (page i of a slot holds positions i * pageTokens .. (i + 1) * pageTokens - 1). Plain C++ with no
// device memory: the CUDA backend (runtime/exec/cuda/GpuKvPool) owns the pages this hands out, so
// the rules are tested without a GPU (test/unit/cuda/kv_pages_test.cpp).
#include <cstdint>
#include <vector>

namespace kt {

class KvPageAllocator {
public:
  explicit KvPageAllocator(int64_t pageTokens);

  int64_t pageTokens() const { return pageTokens_; }
  // Pages that hold `tokens` positions.
  int64_t pagesFor(int64_t tokens) const {
    return tokens <= 0 ? 0 : (tokens + pageTokens_ - 1) / pageTokens_;
  }
  int64_t capacity() const { return capacity_; } // pages in the pool
  int64_t freePages() const { return int64_t(free_.size()); }
  int64_t inUse() const { return capacity_ - freePages(); }
  int64_t peakInUse() const { return peak_; }

  // The pool grew: pages capacity() .. capacity() + n - 1 join it, free.
  void addPages(int64_t n);
  // Pages `slot` must still take to hold positions [0, tokens).
  int64_t shortfall(int slot, int64_t tokens) const;
  // Takes free pages until `slot` holds positions [0, tokens) (a slot never gives pages back
  // here). Throws kt::Error, taking nothing, when fewer than shortfall() pages are free: the
  // caller grows the pool first.
  void reserve(int slot, int64_t tokens);
  // Keeps the pages of positions [0, tokens) and returns the slot's others to the pool (a
  // sequence rewound, e.g. a chat turn that reuses only part of the cached prefix).
  void truncate(int slot, int64_t tokens);
  // Every page of the slot goes back (the sequence restarts or ended).
  void release(int slot) { truncate(slot, 0); }
  // The slot's pages in position order (empty for a slot never seen).
  const std::vector<int32_t>& pages(int slot) const;
  // Positions the slot's pages have room for.
  int64_t heldTokens(int slot) const { return int64_t(pages(slot).size()) * pageTokens_; }
  // 1 + the largest slot ever given pages (0: none).
  int slots() const { return int(held_.size()); }

private:
  int64_t pageTokens_ = 0, capacity_ = 0, peak_ = 0;
  std::vector<int32_t> free_;              // a stack: the last page returned is taken first
  std::vector<std::vector<int32_t>> held_; // per slot
};

} // namespace kt
