#include "kernels/cuda/Stream.cuh"
#include "kernels/cuda/grad/GradBlas.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

namespace kt::cuda::grad {

namespace {
struct Api {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetMathMode) setMathMode = nullptr;
  decltype(&cublasSetStream_v2) setStream = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemmStridedBatched = nullptr;
  decltype(&cublasGetStatusString) statusString = nullptr;
  std::string error;
};

const Api& api() {
  static const Api a = [] {
    Api r;
    void* lib = nullptr;
    std::string tried;
    for (const char* name : {"libcublas.so." KT_CUBLAS_SOVERSION,
                             KT_CUBLAS_DIR "/libcublas.so." KT_CUBLAS_SOVERSION, "libcublas.so"}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
        break;
      tried += std::string(tried.empty() ? "" : ", ") + name;
    }
    if (!lib) {
      r.error = "cannot open cuBLAS (tried " + tried + "; set LD_LIBRARY_PATH to CUDA's lib64)";
      return r;
    }
    auto sym = [&](const char* name) {
      void* f = dlsym(lib, name);
      if (!f && r.error.empty())
        r.error = std::string("cuBLAS has no ") + name;
      return f;
    };
    r.create = reinterpret_cast<decltype(r.create)>(sym("cublasCreate_v2"));
    r.destroy = reinterpret_cast<decltype(r.destroy)>(sym("cublasDestroy_v2"));
    r.setMathMode = reinterpret_cast<decltype(r.setMathMode)>(sym("cublasSetMathMode"));
    r.setStream = reinterpret_cast<decltype(r.setStream)>(sym("cublasSetStream_v2"));
    r.sgemmStridedBatched =
        reinterpret_cast<decltype(r.sgemmStridedBatched)>(sym("cublasSgemmStridedBatched"));
    r.statusString = reinterpret_cast<decltype(r.statusString)>(sym("cublasGetStatusString"));
    return r;
  }();
  return a;
}

bool ok(cublasStatus_t s, const char* what, std::string* err) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return true;
  if (err)
    *err = std::string(what) + ": " + api().statusString(s);
  return false;
}
} // namespace

std::unique_ptr<GradBlas> GradBlas::create(std::string* err) {
  if (!api().error.empty()) {
    if (err)
      *err = api().error;
    return nullptr;
  }
  cublasHandle_t h = nullptr;
  if (!ok(api().create(&h), "cublasCreate", err))
    return nullptr;
  if (!ok(api().setMathMode(h, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode(PEDANTIC)", err)) {
    api().destroy(h);
    return nullptr;
  }
  std::unique_ptr<GradBlas> b(new GradBlas());
  b->handle_ = h;
  return b;
}

GradBlas::~GradBlas() {
  if (handle_)
    api().destroy(static_cast<cublasHandle_t>(handle_));
}

bool GradBlas::gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc, std::string* err, int64_t batch, int64_t strideA, int64_t strideB,
                    int64_t strideC) {
  if (M <= 0 || N <= 0 || batch <= 0)
    return true;
  cublasHandle_t h = static_cast<cublasHandle_t>(handle_);
  if (!bound_ || stream_ != currentStream()) {
    if (!ok(api().setStream(h, stream()), "cublasSetStream", err))
      return false;
    stream_ = currentStream();
    bound_ = true;
  }
  countLaunches();
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, the shapes swapped.
  return ok(api().sgemmStridedBatched(h, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      transA ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K),
                                      &alpha, b, int(ldb), strideB, a, int(lda), strideA, &beta, c,
                                      int(ldc), strideC, int(batch)),
            "cublasSgemmStridedBatched", err);
}

} // namespace kt::cuda::grad
