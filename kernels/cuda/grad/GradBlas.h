#pragma once
// Row-major f32 GEMMs for training: a row-major face of kernels/cuda/Blas (cuBLAS opened with
// dlopen, so CPU runs never map it; exact f32: CUBLAS_PEDANTIC_MATH, never TF32, so GPU training
// matches the f32 fixtures as the CPU does). Plain C++ header; device pointers; the current stream.
#include <cstdint>
#include <memory>
#include <string>

namespace kt::cuda {
class Blas;
}

namespace kt::cuda::grad {

class GradBlas {
public:
  // nullptr and *err when cuBLAS cannot start.
  static std::unique_ptr<GradBlas> create(std::string* err);
  ~GradBlas();

  // Row-major C[M, N] = alpha · op(A) · op(B) + beta · C with op(A) [M, K], op(B) [K, N]; A is
  // stored [M, K] (or [K, M] when transA) with row pitch lda, likewise B; `batch` products at the
  // given element strides. False and *err (naming cuBLAS's status) on failure.
  bool gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
            std::string* err, int64_t batch = 1, int64_t strideA = 0, int64_t strideB = 0,
            int64_t strideC = 0);

private:
  GradBlas() = default;
  std::unique_ptr<Blas> blas_;
};

} // namespace kt::cuda::grad
