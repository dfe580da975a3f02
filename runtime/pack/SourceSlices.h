#pragma once
// Which checkpoint bytes each packed matrix of a weight comes from. A packed weight is one [n, k]
// matrix or a stack [E, n, k] of E matrices (one blob each); its source is either one segment per
// matrix (per-expert tensors kept in place) or one segment holding all of them back to back (a
// fused expert tensor). This rule is shared by the plan emitter (when packing) and `kt-rt pack`
// (when rebuilding), so blob i always comes from the same bytes. Throws nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kt::pack {

// A byte range of one of the plan's weight files (plan::Segment without FlatBuffers).
struct ByteRange {
  uint32_t file = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

// The matrices of a packed weight: `slices` of [n, k].
struct MatrixStack {
  int64_t slices = 1, n = 0, k = 0;
};

// [n, k] or [E, n, k]; false for any other rank or a non-positive dimension.
bool matrixStack(const std::vector<int64_t>& shape, MatrixStack* out);

// The source range of every matrix, given the weight's source segments and bytes per element.
// False with `why` when the segments do not cover the stack (wrong count or byte size).
bool sourceSlices(const MatrixStack& m, size_t elemBytes, const std::vector<ByteRange>& source,
                  std::vector<ByteRange>* out, std::string* why);

} // namespace kt::pack
