#include "runtime/pack/SourceSlices.h"

namespace kt::pack {

bool matrixStack(const std::vector<int64_t>& shape, MatrixStack* out) {
  if (shape.size() < 2 || shape.size() > 3)
    return false;
  for (int64_t d : shape)
    if (d <= 0)
      return false;
  out->slices = shape.size() == 3 ? shape[0] : 1;
  out->n = shape[shape.size() - 2];
  out->k = shape[shape.size() - 1];
  return true;
}

bool sourceSlices(const MatrixStack& m, size_t elemBytes, const std::vector<ByteRange>& source,
                  std::vector<ByteRange>* out, std::string* why) {
  const uint64_t sliceBytes = uint64_t(m.n) * uint64_t(m.k) * elemBytes;
  out->clear();
  if (source.size() == size_t(m.slices)) {
    // One segment per matrix (this includes the single matrix of a 2-D weight).
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i].size != sliceBytes) {
        *why = "source segment " + std::to_string(i) + " holds " + std::to_string(source[i].size) +
               " bytes, a [" + std::to_string(m.n) + ", " + std::to_string(m.k) +
               "] matrix needs " + std::to_string(sliceBytes);
        return false;
      }
      out->push_back(source[i]);
    }
    return true;
  }
  if (source.size() == 1) {
    // All matrices back to back in one segment.
    if (source[0].size != sliceBytes * uint64_t(m.slices)) {
      *why = "its source segment holds " + std::to_string(source[0].size) + " bytes, " +
             std::to_string(m.slices) + " matrices need " +
             std::to_string(sliceBytes * uint64_t(m.slices));
      return false;
    }
    for (int64_t i = 0; i < m.slices; ++i)
      out->push_back({source[0].file, source[0].offset + uint64_t(i) * sliceBytes, sliceBytes});
    return true;
  }
  *why = "it has " + std::to_string(source.size()) + " source segments for " +
         std::to_string(m.slices) + " matrices (need 1 or one per matrix)";
  return false;
}

} // namespace kt::pack
