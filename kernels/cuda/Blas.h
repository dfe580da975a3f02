#pragma once
// Matrix products through cuBLAS for the CUDA backend (plain C++ header; device pointers).
// f32 weights: exact f32 GEMM (CUBLAS_COMPUTE_32F, no TF32), so GPU plans match the fixtures like
// the CPU does. bf16 weights: the activations are rounded to bf16 and the sums kept in f32 (the
// tensor-core path; the same semantics as a CPU plan compiled with --dtype bf16).
#include <cstdint>
#include <memory>
#include <string>

namespace kt::cuda {

class Blas {
public:
  // nullptr and *err when cuBLAS cannot start (no GPU, no driver).
  static std::unique_ptr<Blas> create(std::string* err);
  ~Blas();

  // y[T, N] = x[T, K] . W[N, K]^T with W row-major f32 or bf16 (ldw = K). y must not alias x.
  bool linear(const float* x, int64_t tokens, const void* w, bool wBf16, int64_t n, int64_t k,
              float* y, std::string* err);

  // Column-major f32 strided batched GEMM, C_b = op(A_b) . op(B_b) (cuBLAS conventions), used by
  // MLA's per-head absorption and value up-projection.
  bool gemmBatched(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const float* a,
                   int64_t lda, int64_t strideA, const float* b, int64_t ldb, int64_t strideB,
                   float* c, int64_t ldc, int64_t strideC, int64_t batch, std::string* err);

private:
  Blas() = default;
  void* handle_ = nullptr;
  uint16_t* scratch_ = nullptr; // activations rounded to bf16
  size_t scratchElems_ = 0;
};

} // namespace kt::cuda
