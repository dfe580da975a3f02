#include "runtime/exec/WeightStore.h"

#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <chrono>
#include <cstdio>

namespace kt {

WeightStore::WeightStore(const LoadedPlan& plan) : plan_(plan) {
  const plan::Plan& p = plan.root();
  // Files holding packed weights (the sidecar) are read into huge pages: the kernels stream their
  // expert matrices at scattered offsets, which 4 KiB page-cache mappings slow 2-4x (MappedFile.h).
  // Checkpoint files stay mapped (what the CPU reads from them per token is small).
  std::vector<bool> packedFile(p.weight_files() ? p.weight_files()->size() : 0, false);
  if (p.weights())
    for (const plan::Weight* w : *p.weights())
      if (w->layout() == plan::Layout::Packed)
        for (const plan::Segment* s : *w->segments())
          if (s->file() < packedFile.size())
            packedFile[s->file()] = true;
  if (p.weight_files()) {
    for (const plan::WeightFile* f : *p.weight_files()) {
      std::string path = plan.resolveWeightPath(f->path()->str());
      const bool packed = packedFile[files_.size()];
      const auto start = std::chrono::steady_clock::now();
      auto mapped = std::make_unique<MappedFile>(path, packed ? MappedFile::Residency::HugePages
                                                              : MappedFile::Residency::Mapped);
      if (mapped->residency() == MappedFile::Residency::HugePages && mapped->size() > (256u << 20))
        std::fprintf(
            stderr, "[kt-rt] read %.2f GiB of packed weights into huge pages in %.1f s (%s)\n",
            double(mapped->size()) / double(1u << 30),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            path.c_str());
      if (mapped->size() != f->size())
        throw Error(plan.origin() + ": weight file '" + path + "' has " +
                    std::to_string(mapped->size()) + " bytes but the plan was compiled against " +
                    std::to_string(f->size()) + " (file changed or truncated; recompile the plan)");
      mappedBytes_ += mapped->size();
      files_.push_back(std::move(mapped));
    }
  }
  if (p.weights()) {
    for (const plan::Weight* w : *p.weights()) {
      if (w->layout() == plan::Layout::Packed)
        checkPacked(*w);
      if (w->layout() == plan::Layout::RowMajor && w->segments()->size() != 1)
        throw Error(plan.origin() + ": weight '" + w->name()->str() +
                    "' is row-major but split over " + std::to_string(w->segments()->size()) +
                    " segments");
      for (const plan::Segment* s : *w->segments())
        if (s->offset() + s->size() > files_[s->file()]->size())
          throw Error(plan.origin() + ": weight '" + w->name()->str() + "' lies outside '" +
                      files_[s->file()]->path() + "'");
    }
  }
}

WeightStore::~WeightStore() = default;

// A packed blob must carry the header the kernels expect for its format and shape, so a stale or
// foreign sidecar is refused here instead of being read as garbage.
void WeightStore::checkPacked(const plan::Weight& w) const {
  const auto fmt = cpu::quant::WeightFormat(w.packed_format());
  const auto* shape = w.shape();
  int64_t n = shape->Get(shape->size() - 2), k = shape->Get(shape->size() - 1);
  for (const plan::Segment* s : *w.segments()) {
    std::string err;
    if (s->offset() % cpu::quant::kPackedAlign)
      throw Error(plan_.origin() + ": packed weight '" + w.name()->str() +
                  "' is not 64-byte aligned in its sidecar");
    if (!cpu::quant::checkPacked(fmt, segmentData(*s), s->size(), n, k, &err))
      throw Error(plan_.origin() + ": packed weight '" + w.name()->str() + "' in '" +
                  files_[s->file()]->path() + "': " + err);
  }
}

const uint8_t* WeightStore::segmentData(const plan::Segment& s) const {
  return files_[s.file()]->data() + s.offset();
}

std::vector<std::pair<const uint8_t*, size_t>> WeightStore::byteRanges(int32_t id) const {
  std::vector<std::pair<const uint8_t*, size_t>> ranges;
  for (const plan::Segment* s : *weight(id).segments())
    ranges.push_back({segmentData(*s), size_t(s->size())});
  return ranges;
}

const DerivedBlob& WeightStore::derived(int32_t id, int tag,
                                        const std::function<void(DerivedBlob&)>& make) const {
  std::lock_guard<std::mutex> lock(derivedMu_);
  std::unique_ptr<DerivedBlob>& slot = derived_[{id, tag}];
  if (!slot) {
    auto blob = std::make_unique<DerivedBlob>();
    make(*blob);
    slot = std::move(blob);
  }
  return *slot;
}

cpu::MatrixView WeightStore::matrix(int32_t id) const {
  const plan::Weight& w = weight(id);
  cpu::MatrixView v;
  v.dtype = DType(w.dtype());
  v.cols = w.shape()->Get(w.shape()->size() - 1);
  v.rows = 1;
  for (uint32_t i = 0; i + 1 < w.shape()->size(); ++i)
    v.rows *= w.shape()->Get(i);
  v.data = segmentData(*w.segments()->Get(0));
  if (w.layout() == plan::Layout::Packed)
    v.packed = int32_t(w.packed_format());
  return v;
}

cpu::MatrixView WeightStore::slice(int32_t id, int64_t i) const {
  const plan::Weight& w = weight(id);
  cpu::MatrixView v;
  v.dtype = DType(w.dtype());
  v.cols = w.shape()->Get(w.shape()->size() - 1);
  v.rows = 1;
  for (uint32_t d = 1; d + 1 < w.shape()->size(); ++d)
    v.rows *= w.shape()->Get(d);
  if (w.layout() == plan::Layout::Packed) {
    v.data = segmentData(*w.segments()->Get(uint32_t(i)));
    v.packed = int32_t(w.packed_format());
  } else if (w.layout() == plan::Layout::Stacked) {
    v.data = segmentData(*w.segments()->Get(uint32_t(i)));
  } else {
    v.data = segmentData(*w.segments()->Get(0)) + size_t(i) * size_t(v.rows) * v.rowBytes();
  }
  return v;
}

} // namespace kt
