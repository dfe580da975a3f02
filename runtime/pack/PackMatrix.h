#pragma once
// One checkpoint matrix -> one packed blob of a CPU kernel format (kernels/cpu/quant/Layout.h).
// The single packing rule shared by kt-compile (which appends blobs to the sidecar) and
// `kt-rt pack` (which rebuilds the sidecar later), so both write the same bytes.
#include "runtime/support/DType.h"

#include <cstddef>
#include <cstdint>

namespace kt::pack {

// Blobs start at multiples of this in the sidecar (the kernels' alignment, checked at load).
uint64_t packedAlign();
// `offset` rounded up to packedAlign(); the gap before a blob is zero bytes.
inline uint64_t alignPacked(uint64_t offset) {
  const uint64_t a = packedAlign();
  return (offset + a - 1) / a * a;
}

// Bytes of the packed [n, k] matrix in `format` (a kt::cpu::quant::WeightFormat value, equal to
// plan::PackedFormat); throws kt::Error naming format and shape when the format cannot hold it.
size_t packedMatrixBytes(int format, int64_t n, int64_t k);

// Packs the row-major [n, k] matrix `src` of dtype `srcType` (f32, bf16 or f16) into
// out[packedMatrixBytes(format, n, k)]. Throws kt::Error on an unsupported source dtype.
void packMatrix(int format, DType srcType, const uint8_t* src, int64_t n, int64_t k, uint8_t* out);

} // namespace kt::pack
