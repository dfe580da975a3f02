#pragma once
// f32 values -> the bytes of a checkpoint dtype (little-endian, as safetensors stores them).
#include "runtime/support/DType.h"

#include <cstddef>
#include <cstdint>

namespace kt::synth {

// IEEE half, round to nearest even (as torch casts); overflow becomes inf, NaN stays NaN.
uint16_t f32ToF16(float f);

// Writes n values as `dtype` (f32, bf16 or f16) to out, which holds n * dtypeSize(dtype) bytes.
void encode(const float* in, size_t n, DType dtype, uint8_t* out);

} // namespace kt::synth
