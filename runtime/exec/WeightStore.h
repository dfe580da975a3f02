#pragma once
// Maps the weight files a plan names and hands out views of its weights. Nothing is copied: the
// views point into the page cache, so resident memory follows what the model touches.
#include "kernels/cpu/Matrix.h"
#include "runtime/plan/PlanReader.h"

#include <memory>
#include <vector>

namespace kt {

class MappedFile;

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
  // Bytes of weight files mapped (their total size).
  uint64_t mappedBytes() const { return mappedBytes_; }

private:
  const uint8_t* segmentData(const plan::Segment& s) const;
  void checkPacked(const plan::Weight& w) const;

  const LoadedPlan& plan_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  uint64_t mappedBytes_ = 0;
};

} // namespace kt
