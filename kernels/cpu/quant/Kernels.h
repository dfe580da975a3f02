#pragma once
// Internal: entry points of the per-ISA translation units. Only plain declarations and
// member-function-free structs cross TU boundaries (see the note at the top of Layout.h).
#include "kernels/cpu/quant/Layout.h"

namespace kt::cpu::quant::detail {

// One matmul call on prepared activations, restricted to output rows [n0, n1).
struct Job {
  Layout w;              // packed weight layout
  const uint8_t* packed; // blob start (header)
  ActLayout a;           // prepared activation layout
  const uint8_t* act;    // prepared activations
  float* y;              // [t][w.n]
  int64_t n0, n1;
};

// Scratch floats the Scalar/Avx2 kernels need (dequantized chunk + per-token accumulators).
static constexpr int64_t kChunkK =
    256; // k columns dequantized at a time (multiple of every kp align)
static inline size_t dequantScratchFloats(const Job& j) {
  return size_t(kChunkK * 16) + size_t(j.a.rows) * 16;
}

void matmulScalarKernel(const Job& j, float* scratch); // MatmulScalar.cpp
void matmulAvx2(const Job& j, float* scratch);         // MatmulAvx2.cpp
void matmulAvx2Int(const Job& j); // MatmulAvx2Int.cpp: int8/int4 weights x int8 activations
// Token rows [r0, r1) of the prepared buffer, byte-identical to prepareActivationsRef's for the
// Int8 modes once the buffer was zeroed (padding is left as it is) (MatmulAvx2Int.cpp).
void prepareAvx2Int8Rows(const ActLayout& a, const float* x, int64_t k, int64_t r0, int64_t r1,
                         uint8_t* buf);
void matmulAvx512(const Job& j); // MatmulAvx512.cpp
void matmulAmx(const Job& j);    // MatmulAmx.cpp (bf16/int8, rows % 16 == 0)
// The same for the Bf16 / Int8 modes (MatmulAvx512.cpp).
void prepareAvx512Rows(const ActLayout& a, const float* x, int64_t k, int64_t r0, int64_t r1,
                       uint8_t* buf);
// DequantAvx512.cpp: QuantMatmul.h's dequantizeRows for f32 / bf16 / int8 blobs.
bool dequantizeRowsAvx512(WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, int64_t r0,
                          int64_t nr, float* out, int64_t ld);

} // namespace kt::cpu::quant::detail
