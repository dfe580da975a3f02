#include "runtime/exec/KvPages.h"

#include "runtime/support/Error.h"

#include <algorithm>
#include <limits>
#include <string>

namespace kt {

namespace {
const std::vector<int32_t> kNoPages;
} // namespace

KvPageAllocator::KvPageAllocator(int64_t pageTokens) : pageTokens_(pageTokens) {
  if (pageTokens < 1)
    throw Error("KV pages: a page must hold at least one position (got " +
                std::to_string(pageTokens) + ")");
}

void KvPageAllocator::addPages(int64_t n) {
  if (n < 0 || capacity_ + n > std::numeric_limits<int32_t>::max())
    throw Error("KV pages: cannot add " + std::to_string(n) + " pages to a pool of " +
                std::to_string(capacity_) + " (page ids are int32)");
  // Pushed highest first, so that the lowest new page is taken first.
  for (int64_t p = capacity_ + n - 1; p >= capacity_; --p)
    free_.push_back(int32_t(p));
  capacity_ += n;
}

int64_t KvPageAllocator::shortfall(int slot, int64_t tokens) const {
  return std::max<int64_t>(0, pagesFor(tokens) - int64_t(pages(slot).size()));
}

void KvPageAllocator::reserve(int slot, int64_t tokens) {
  if (slot < 0)
    throw Error("KV pages: sequence slot " + std::to_string(slot) + " is negative");
  const int64_t need = shortfall(slot, tokens);
  if (need == 0)
    return;
  if (need > freePages())
    throw Error("KV pages: slot " + std::to_string(slot) + " needs " + std::to_string(need) +
                " more page(s) of " + std::to_string(pageTokens_) + " positions for " +
                std::to_string(tokens) + " positions, but only " + std::to_string(freePages()) +
                " of " + std::to_string(capacity_) + " are free");
  if (size_t(slot) >= held_.size())
    held_.resize(size_t(slot) + 1);
  std::vector<int32_t>& mine = held_[size_t(slot)];
  for (int64_t i = 0; i < need; ++i) {
    mine.push_back(free_.back());
    free_.pop_back();
  }
  peak_ = std::max(peak_, inUse());
}

void KvPageAllocator::truncate(int slot, int64_t tokens) {
  if (slot < 0 || size_t(slot) >= held_.size())
    return;
  std::vector<int32_t>& mine = held_[size_t(slot)];
  const size_t keep = size_t(std::min<int64_t>(pagesFor(tokens), int64_t(mine.size())));
  // Returned last page first, so that a slot that grows again gets the same pages back.
  while (mine.size() > keep) {
    free_.push_back(mine.back());
    mine.pop_back();
  }
}

const std::vector<int32_t>& KvPageAllocator::pages(int slot) const {
  return slot >= 0 && size_t(slot) < held_.size() ? held_[size_t(slot)] : kNoPages;
}

} // namespace kt
