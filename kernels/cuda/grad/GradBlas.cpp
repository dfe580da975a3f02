#include "kernels/cuda/grad/GradBlas.h"

#include "kernels/cuda/Blas.h"

namespace kt::cuda::grad {

std::unique_ptr<GradBlas> GradBlas::create(std::string* err) {
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(err);
  if (!blas)
    return nullptr;
  std::unique_ptr<GradBlas> b(new GradBlas());
  b->blas_ = std::move(blas);
  return b;
}

GradBlas::~GradBlas() = default;

bool GradBlas::gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc, std::string* err, int64_t batch, int64_t strideA, int64_t strideB,
                    int64_t strideC) {
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, the shapes swapped.
  return blas_->gemmBatched(transB, transA, N, M, K, b, ldb, strideB, a, lda, strideA, c, ldc,
                            strideC, batch, err, alpha, beta);
}

} // namespace kt::cuda::grad
