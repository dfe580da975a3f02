#include "runtime/exec/cuda/GpuKvPool.h"

#include "kernels/cuda/Memory.h"
#include "runtime/support/Error.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace kt::cudaops {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;

std::string mib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", bytes / kMiB);
  return b;
}
} // namespace

int64_t GpuKvPool::pageTokensFromEnv() {
  const char* e = std::getenv("KT_KV_PAGE_TOKENS");
  if (!e || !*e)
    return kDefaultPageTokens;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);
  if (*end != '\0' || v < 1 || v > 4096 || (v & (v - 1)) != 0)
    throw Error(std::string("KT_KV_PAGE_TOKENS='") + e +
                "': the KV cache's page size must be a power of two from 1 to 4096 positions");
  return v;
}

int64_t GpuKvPool::growthTokensFromEnv() {
  const char* e = std::getenv("KT_KV_GROWTH_TOKENS");
  if (!e || !*e)
    return kMinGrowthTokens;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);
  if (*end != '\0' || v < 1)
    throw Error(std::string("KT_KV_GROWTH_TOKENS='") + e +
                "': the KV cache's smallest growth must be a positive number of positions");
  return v;
}

GpuKvPool::GpuKvPool(std::vector<LayerRows> layers, int64_t maxPositions, int64_t pageTokens,
                     std::string gpuName)
    : gpuName_(std::move(gpuName)), growthTokens_(growthTokensFromEnv()), pages_(pageTokens) {
  // A page block: per layer (in layer order) the first array's rows, then the second's.
  std::sort(layers.begin(), layers.end(),
            [](const LayerRows& a, const LayerRows& b) { return a.layer < b.layer; });
  int64_t floats = 0;
  for (const LayerRows& l : layers) {
    offsets_[l.layer] = {floats, floats + pageTokens * l.firstRow};
    floats += pageTokens * (l.firstRow + l.secondRow);
  }
  pageBytes_ = uint64_t(floats) * sizeof(float);
  width_ = std::max<int64_t>(1, pages_.pagesFor(maxPositions));
}

GpuKvPool::~GpuKvPool() {
  for (Segment& s : segments_)
    cuda::release(s.data);
  cuda::release(table_);
}

std::pair<int64_t, int64_t> GpuKvPool::offsets(int layer) const {
  auto it = offsets_.find(layer);
  if (it == offsets_.end())
    throw Error(gpuName_ + ": the KV pool has no pages for layer " + std::to_string(layer) +
                " (its attention step was not placed on this GPU when the plan was loaded)");
  return it->second;
}

cuda::KvPages GpuKvPool::pages(int slot) const {
  if (slot < 0 || slot >= tableSlots_)
    throw Error(gpuName_ + ": sequence slot " + std::to_string(slot) +
                " has no KV page table (the run did not reserve its pages)");
  return {table_ + int64_t(slot) * width_, pages_.pageTokens()};
}

uint64_t GpuKvPool::bytes() const {
  uint64_t b = uint64_t(tableSlots_) * uint64_t(width_) * sizeof(uint64_t);
  for (const Segment& s : segments_)
    b += uint64_t(s.pages) * pageBytes_;
  return b;
}

std::string GpuKvPool::report() const {
  char line[200];
  std::snprintf(line, sizeof line,
                "KV cache %.1f MiB (%lld pages of %lld positions: %lld in use, "
                "peak %lld)",
                double(bytes()) / kMiB, (long long)pages_.capacity(),
                (long long)pages_.pageTokens(), (long long)pages_.inUse(),
                (long long)pages_.peakInUse());
  return line;
}

bool GpuKvPool::prepare(const Batch& batch, const std::function<Limit()>& limit) {
  if (offsets_.empty())
    return false; // no attention layer on this GPU
  if (batch.chunks.empty())
    return false;
  // Per slot of the batch: where its first chunk starts and how far its chunks reach.
  std::map<int, std::pair<int64_t, int64_t>> span;
  for (const SequenceChunk& c : batch.chunks) {
    auto it = span.find(c.slot);
    if (it == span.end())
      span[c.slot] = {c.pos0, c.pos0 + c.len};
    else
      it->second = {std::min(it->second.first, c.pos0),
                    std::max(it->second.second, c.pos0 + c.len)};
  }
  // Restarts and rewinds first: their pages are free for this step.
  for (const auto& [slot, s] : span) {
    pages_.truncate(slot, s.first);
    if (pages_.heldTokens(slot) < s.first)
      throw Error(gpuName_ + ": sequence slot " + std::to_string(slot) + " continues at position " +
                  std::to_string(s.first) + ", but its GPU KV pages hold only " +
                  std::to_string(pages_.heldTokens(slot)) +
                  " positions (its cache was released: another KvCache of the same slot was "
                  "reset or destroyed meanwhile)");
    if (s.second > maxPositions())
      throw Error(gpuName_ + ": sequence slot " + std::to_string(slot) + " would reach position " +
                  std::to_string(s.second) + ", past the KV page table's " +
                  std::to_string(maxPositions()) + " positions");
    if (size_t(slot) < uploaded_.size())
      uploaded_[size_t(slot)] =
          std::min<int64_t>(uploaded_[size_t(slot)], int64_t(pages_.pages(slot).size()));
  }
  int64_t short_ = 0;
  for (const auto& [slot, s] : span)
    short_ += pages_.shortfall(slot, s.second);
  if (short_ > pages_.freePages())
    grow(short_ - pages_.freePages(), batch, limit());
  for (const auto& [slot, s] : span)
    pages_.reserve(slot, s.second);
  const bool moved = ensureTableRows(span.rbegin()->first + 1);
  if (moved) // every slot's row is uploaded again
    for (int slot = 0; slot < pages_.slots(); ++slot)
      uploadRows(slot);
  else
    for (const auto& [slot, s] : span)
      uploadRows(slot);
  return moved;
}

void GpuKvPool::grow(int64_t pagesShort, const Batch& batch, const Limit& limit) {
  const int64_t room = pageBytes_ ? int64_t(limit.bytes / pageBytes_) : 0;
  if (room < pagesShort) {
    std::string asked;
    int64_t positions = 0, n = 0;
    for (const SequenceChunk& c : batch.chunks) {
      positions += c.pos0 + c.len;
      if (++n <= 8)
        asked += (n > 1 ? ", " : "") + std::string("slot ") + std::to_string(c.slot) + " to " +
                 std::to_string(c.pos0 + c.len);
    }
    if (n > 8)
      asked += ", ...";
    throw Error(gpuName_ + ": the KV cache is full: " + std::to_string(n) +
                " sequence(s) asked for positions (" + asked + "; " + std::to_string(positions) +
                " in all), which needs " + std::to_string(pagesShort) + " more page(s) of " +
                std::to_string(pages_.pageTokens()) + " positions (" + mib(double(pageBytes_)) +
                " each) than the " + std::to_string(pages_.freePages()) + " free of " +
                std::to_string(pages_.capacity()) + " (" + std::to_string(pages_.inUse()) +
                " in use); " + limit.what + " leaves room for " + std::to_string(room) + " more. " +
                limit.remedy);
  }
  const int64_t minPages = std::max<int64_t>(1, pages_.pagesFor(growthTokens_));
  int64_t want = std::min(room, std::max({pagesShort, pages_.capacity(), minPages}));
  std::string err;
  void* data = cuda::allocate(size_t(want) * pageBytes_, &err);
  if (!data && want > pagesShort) { // the budget allowed more than the device has free
    want = pagesShort;
    data = cuda::allocate(size_t(want) * pageBytes_, &err);
  }
  if (!data)
    throw Error(gpuName_ + ": the KV cache could not grow by " + std::to_string(want) +
                " page(s) (" + mib(double(want) * double(pageBytes_)) +
                "), which the step's sequences need: " + err + ". " + limit.remedy);
  segments_.push_back({data, want});
  for (int64_t i = 0; i < want; ++i)
    address_.push_back(reinterpret_cast<uint64_t>(data) + uint64_t(i) * pageBytes_);
  pages_.addPages(want);
  if (double(bytes()) >= 64 * kMiB)
    std::fprintf(stderr, "[kt-rt] %s: KV cache grew to %lld pages of %lld positions (%s)\n",
                 gpuName_.c_str(), (long long)pages_.capacity(), (long long)pages_.pageTokens(),
                 mib(double(bytes())).c_str());
}

bool GpuKvPool::ensureTableRows(int slots) {
  if (slots <= tableSlots_)
    return false;
  const int rows = std::max({slots, 2 * tableSlots_, 4});
  const size_t bytes = size_t(rows) * size_t(width_) * sizeof(uint64_t);
  std::string err;
  if (table_ && !cuda::synchronizeStream(&err)) // earlier kernels may still read the old table
    throw Error(gpuName_ + ": KV page table: " + err);
  cuda::release(table_);
  table_ = nullptr;
  tableSlots_ = 0;
  table_ = static_cast<uint64_t*>(cuda::allocate(bytes, &err));
  if (!table_ || !cuda::fillZero(table_, bytes, &err))
    throw Error(gpuName_ + ": KV page table for " + std::to_string(rows) + " sequence slots (" +
                mib(double(bytes)) + "): " + err);
  tableSlots_ = rows;
  hostTable_.assign(size_t(rows) * size_t(width_), 0);
  uploaded_.assign(size_t(rows), 0);
  return true;
}

void GpuKvPool::uploadRows(int slot) {
  const std::vector<int32_t>& held = pages_.pages(slot);
  const int64_t from = uploaded_[size_t(slot)], to = int64_t(held.size());
  if (from >= to)
    return;
  uint64_t* host = hostTable_.data() + int64_t(slot) * width_;
  for (int64_t i = from; i < to; ++i)
    host[i] = address_[size_t(held[size_t(i)])];
  std::string err;
  if (!cuda::toDevice(table_ + int64_t(slot) * width_ + from, host + from,
                      size_t(to - from) * sizeof(uint64_t), &err))
    throw Error(gpuName_ + ": uploading the KV page table of slot " + std::to_string(slot) + ": " +
                err);
  uploaded_[size_t(slot)] = to;
}

} // namespace kt::cudaops
