// cuda::grad::Context (TrainKernels.h): cuBLAS, grow-only scratch slots and error checks.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

namespace kt::cuda::grad {

Context::Context() {
  std::string err;
  blas_ = GradBlas::create(&err);
  if (!blas_)
    throw Error("GPU training: " + err);
}

Context::~Context() {
  for (Slot& s : slots_)
    release(s.p);
}

float* Context::scratch(int i, int64_t floats) {
  if (size_t(i) >= slots_.size())
    slots_.resize(size_t(i) + 1);
  Slot& s = slots_[size_t(i)];
  if (floats <= s.floats)
    return s.p;
  std::string err;
  if (s.p) {
    check(synchronize(&err), err, "scratch growth"); // queued kernels may still read the old one
    release(s.p);
  }
  s.floats = 0;
  s.p = static_cast<float*>(allocate(size_t(floats) * 4, &err));
  if (!s.p)
    throw Error("GPU training: cannot allocate " + std::to_string(floats * 4) +
                " bytes of scratch: " + err);
  s.floats = floats;
  return s.p;
}

size_t Context::scratchBytes() const {
  size_t n = 0;
  for (const Slot& s : slots_)
    n += size_t(s.floats) * 4;
  return n;
}

void Context::check(bool ok, const std::string& err, const char* op) {
  if (!ok)
    throw Error(std::string("GPU training ") + op + ": " + err);
}

void Context::checkLaunch(const char* op) {
  std::string err;
  check(launchOk(&err), err, op);
}

void Context::gemm(const char* op, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                   float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                   float beta, float* c, int64_t ldc, int64_t batch, int64_t strideA,
                   int64_t strideB, int64_t strideC) {
  std::string err;
  check(blas_->gemm(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, &err, batch,
                    strideA, strideB, strideC),
        err, op);
}

} // namespace kt::cuda::grad
