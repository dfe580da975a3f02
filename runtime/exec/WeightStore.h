#pragma once
// Maps the weight files a plan names and hands out views of its weights. Nothing is copied: the
// views point into the page cache, so resident memory follows what the model touches.
#include "kernels/cpu/Matrix.h"
#include "runtime/io/HugeBuffer.h"
#include "runtime/plan/PlanReader.h"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace kt {

class MappedFile;

// Bytes derived from a weight at run time (e.g. MLA's kv_b split per head and repacked), 64-byte
// aligned.
struct DerivedBlob {
  HugeBuffer storage; // streamed every token like the packed weights: huge pages where possible
  uint8_t* data = nullptr;
  size_t size = 0;
  void allocate(size_t n) {
    storage = HugeBuffer(n, "a matrix derived at plan load");
    data = storage.data();
    size = n;
  }
};

class WeightStore {
public:
  // Maps every weight file of the plan; checks each file's size against the plan and each weight's
  // byte range against its file (naming the weight and the file on failure).
  explicit WeightStore(const LoadedPlan& plan);
  ~WeightStore();

  // A 2-D view of weight `id` (1-D tensors are one row; N-D are [prod(dims[:-1]), dims[-1]]).
  cpu::MatrixView matrix(int32_t id) const;
  // Slice `i` of a stacked weight (an expert of an MoE layer) as a 2-D view of its trailing dims.
  cpu::MatrixView slice(int32_t id, int64_t i) const;
  const plan::Weight& weight(int32_t id) const {
    return *plan_.root().weights()->Get(uint32_t(id));
  }
  // The mapped bytes of weight `id`, one (address, size) per segment (prefaulting, NUMA binding).
  std::vector<std::pair<const uint8_t*, size_t>> byteRanges(int32_t id) const;
  // The blob derived from weight `id` under `tag`, made by `make` on first use and kept as long as
  // the store (so a plan's weights are converted once, not at every step). Thread-safe.
  const DerivedBlob& derived(int32_t id, int tag,
                             const std::function<void(DerivedBlob&)>& make) const;
  // Bytes of weight files mapped (their total size).
  uint64_t mappedBytes() const { return mappedBytes_; }

private:
  const uint8_t* segmentData(const plan::Segment& s) const;
  void checkPacked(const plan::Weight& w) const;

  const LoadedPlan& plan_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  uint64_t mappedBytes_ = 0;
  mutable std::mutex derivedMu_;
  mutable std::map<std::pair<int32_t, int>, std::unique_ptr<DerivedBlob>> derived_;
};

} // namespace kt
