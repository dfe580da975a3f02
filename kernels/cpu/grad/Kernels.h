#pragma once
// The f32 building blocks of dx = dy · W, the product every backward runs with a frozen weight
// (each projection's, each expert's and lm_head's): W [N, K] in any storage format is converted to
// f32 a block of rows at a time (int8 packed panels by an AVX-512 transpose of the 64-byte lines),
// then a register-tiled kernel accumulates the block into dx. Each has a scalar definition the
// faster paths are tested against (test/unit/train/dyw_kernels_test.cpp).
//
// Internal to kernels/cpu/grad (matmulDyW in MatMul.cpp is the user).
#include "kernels/cpu/Matrix.h"

#include <cstdint>

namespace kt::cpu::grad::kernels {

enum class Path {
  Generic, // portable C++ (compiled for AVX-512 / AVX2 / baseline by target_clones)
  Avx512,  // AVX-512 F/BW/DQ/VL intrinsics (DyWAvx512.cpp), only after CPUID says so
};
// Avx512 when the CPU (and KT_ISA, as the quantized kernels read it) allows AVX-512, else Generic.
Path bestPath();
bool pathSupported(Path path);

// Rows [r0, r0 + nr) of w as f32, row i at out + i * ld (ld >= w.cols): exactly
// MatrixView::rowToF32's values, for every format (packed int8/bf16/f32 panels are converted 16
// rows x 16 lines per AVX-512 transpose on the Avx512 path; other formats row by row).
void weightRowsToF32(Path path, const MatrixView& w, int64_t r0, int64_t nr, float* out,
                     int64_t ld);

// c[m, j] += Σ_p a[m * lda + p] · b[p * ldb + j]  for m < M, j < N, p < P (row-major f32).
// Each c element sums its P products in order p = 0, 1, ... onto its old value (one FMA chain on
// the Avx512 path), so splitting c into tiles never changes a result.
void gemmAcc(Path path, int64_t M, int64_t N, int64_t P, const float* a, int64_t lda,
             const float* b, int64_t ldb, float* c, int64_t ldc);
// The definition: the same sum in double, rounded to f32 once.
void gemmAccRef(int64_t M, int64_t N, int64_t P, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* c, int64_t ldc);

// The loss's softmax pass over one row of logits: l[j] := exp(l[j] - max(l)) for j < n; returns
// the max and the sum of the new values (n >= 1).
struct ExpSum {
  float max = 0, sum = 0;
};
ExpSum expShift(Path path, float* l, int64_t n);
// The definition: std::exp, summed in order in double.
ExpSum expShiftRef(float* l, int64_t n);

namespace avx512 { // DyWAvx512.cpp; call only when pathSupported(Path::Avx512)
void gemmAcc(int64_t M, int64_t N, int64_t P, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc);
// exp by a degree-6 polynomial on [-ln2/2, ln2/2] and an exponent shift (Cephes expf, ~2 ulp);
// arguments below -87.3 (results below FLT_MIN) give 0.
ExpSum expShift(float* l, int64_t n);
} // namespace avx512

} // namespace kt::cpu::grad::kernels
