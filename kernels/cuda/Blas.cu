#include "kernels/cuda/Blas.h"

#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/Stream.cuh"

#include <algorithm>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

namespace kt::cuda {

namespace {
// cuBLAS is opened on first use (a GPU plan), not linked: libcublas and libcublasLt are hundreds
// of MB that every kt-rt process would map at start, CPU plans included.
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetMathMode) setMathMode = nullptr;
  decltype(&cublasSetStream_v2) setStream = nullptr;
  decltype(&cublasSetWorkspace_v2) setWorkspace = nullptr;
  // cublasGemmEx is overloaded in C++ (a legacy computeType form); the library exports this one.
  cublasStatus_t (*gemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                           const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                           int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                           cublasGemmAlgo_t) = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemmStridedBatched = nullptr;
  cublasStatus_t (*gemmBatchedEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                  int, const void*, const void* const[], cudaDataType, int,
                                  const void* const[], cudaDataType, int, const void*,
                                  void* const[], cudaDataType, int, int, cublasComputeType_t,
                                  cublasGemmAlgo_t) = nullptr;
  decltype(&cublasGetStatusString) statusString = nullptr;
  // cuBLAS 12.5+ only, so optional: null leaves the library usable and linearStackRagged says why.
  cublasStatus_t (*gemmGroupedBatchedEx)(cublasHandle_t, const cublasOperation_t[],
                                         const cublasOperation_t[], const int[], const int[],
                                         const int[], const void*, const void* const[],
                                         cudaDataType_t, const int[], const void* const[],
                                         cudaDataType_t, const int[], const void*, void* const[],
                                         cudaDataType_t, const int[], int, const int[],
                                         cublasComputeType_t) = nullptr;
  std::string error; // why it could not be opened
};

const CublasApi& cublas() {
  static const CublasApi api = [] {
    CublasApi a;
    void* lib = nullptr;
    std::string tried;
    for (const char* name : {"libcublas.so." KT_CUBLAS_SOVERSION,
                             KT_CUBLAS_DIR "/libcublas.so." KT_CUBLAS_SOVERSION, "libcublas.so"}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
        break;
      tried += std::string(tried.empty() ? "" : ", ") + name;
    }
    if (!lib) {
      a.error = "cannot open cuBLAS (tried " + tried + "; set LD_LIBRARY_PATH to CUDA's lib64)";
      return a;
    }
    auto sym = [&](const char* name) {
      void* f = dlsym(lib, name);
      if (!f && a.error.empty())
        a.error = std::string("cuBLAS has no ") + name;
      return f;
    };
    a.create = reinterpret_cast<decltype(a.create)>(sym("cublasCreate_v2"));
    a.destroy = reinterpret_cast<decltype(a.destroy)>(sym("cublasDestroy_v2"));
    a.setMathMode = reinterpret_cast<decltype(a.setMathMode)>(sym("cublasSetMathMode"));
    a.setStream = reinterpret_cast<decltype(a.setStream)>(sym("cublasSetStream_v2"));
    a.setWorkspace = reinterpret_cast<decltype(a.setWorkspace)>(sym("cublasSetWorkspace_v2"));
    a.gemmEx = reinterpret_cast<decltype(a.gemmEx)>(sym("cublasGemmEx"));
    a.sgemmStridedBatched =
        reinterpret_cast<decltype(a.sgemmStridedBatched)>(sym("cublasSgemmStridedBatched"));
    a.gemmBatchedEx = reinterpret_cast<decltype(a.gemmBatchedEx)>(sym("cublasGemmBatchedEx"));
    a.statusString = reinterpret_cast<decltype(a.statusString)>(sym("cublasGetStatusString"));
    a.gemmGroupedBatchedEx = reinterpret_cast<decltype(a.gemmGroupedBatchedEx)>(
        dlsym(lib, "cublasGemmGroupedBatchedEx"));
    return a;
  }();
  return api;
}

bool ok(cublasStatus_t s, const char* what, std::string* err) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return true;
  if (err)
    *err = std::string(what) + ": " + cublas().statusString(s);
  return false;
}
cublasHandle_t h(void* p) {
  return static_cast<cublasHandle_t>(p);
}

// Grows a bf16 scratch buffer to at least `need` elements (contents not kept).
bool growBf16(uint16_t** p, size_t* elems, size_t need, const char* what, std::string* err,
              uint64_t* reallocations) {
  if (need <= *elems)
    return true;
  if (*p) {
    ++*reallocations;
    cudaStreamSynchronize(stream()); // queued GEMMs may still read the old buffer
    cudaFree(*p);
  }
  *p = nullptr;
  *elems = 0;
  if (cudaMalloc(reinterpret_cast<void**>(p), need * 2) != cudaSuccess) {
    cudaGetLastError();
    if (err)
      *err = std::string("cudaMalloc of ") + what + " failed";
    return false;
  }
  *elems = need;
  return true;
}
// linearStack's pointer arrays: a[i] = slice slots[i] of the weight stack, b[i] / c[i] = item i's
// rows of the activations / outputs.
__global__ void stackPointersKernel(const int32_t* slots, const char* stack, size_t sliceBytes,
                                    const char* x, size_t xItemBytes, char* y, size_t yItemBytes,
                                    int64_t items, void** ptrs) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < items;
       i += int64_t(gridDim.x) * blockDim.x) {
    ptrs[i] = const_cast<char*>(stack) + size_t(slots[i]) * sliceBytes;
    ptrs[items + i] = const_cast<char*>(x) + size_t(i) * xItemBytes;
    ptrs[2 * items + i] = y + size_t(i) * yItemBytes;
  }
}
// linearStackRagged's pointer arrays: as stackPointersKernel, with item i's rows starting at row
// rowStart[i] of x (xRowBytes apart) and of y (yRowBytes apart).
__global__ void raggedPointersKernel(const int32_t* slots, const int32_t* rowStart,
                                     const char* stack, size_t sliceBytes, const char* x,
                                     size_t xRowBytes, char* y, size_t yRowBytes, int64_t items,
                                     void** ptrs) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < items;
       i += int64_t(gridDim.x) * blockDim.x) {
    ptrs[i] = const_cast<char*>(stack) + size_t(slots[i]) * sliceBytes;
    ptrs[items + i] = const_cast<char*>(x) + size_t(rowStart[i]) * xRowBytes;
    ptrs[2 * items + i] = y + size_t(rowStart[i]) * yRowBytes;
  }
}
// bf16 bits -> f32 (exact: bf16 is the top half of an f32).
__global__ void bf16ToF32Kernel(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __uint_as_float(uint32_t(x[i]) << 16);
}
unsigned blocksFor(int64_t n) {
  return unsigned(std::min<int64_t>((n + 255) / 256, 65535));
}
} // namespace

std::unique_ptr<Blas> Blas::create(std::string* err) {
  if (!cublas().error.empty()) {
    if (err)
      *err = cublas().error;
    return nullptr;
  }
  cublasHandle_t handle = nullptr;
  if (!ok(cublas().create(&handle), "cublasCreate", err))
    return nullptr;
  // Exact f32 products: never let cuBLAS switch f32 GEMMs to TF32 tensor cores.
  cublas().setMathMode(handle, CUBLAS_PEDANTIC_MATH);
  std::unique_ptr<Blas> b(new Blas());
  b->handle_ = handle;
  // A workspace of our own: with it cuBLAS allocates nothing while a CUDA graph is captured, and
  // the same workspace on every call keeps its results bit-identical between eager and replay.
  if (cudaMalloc(&b->workspace_, kWorkspaceBytes) != cudaSuccess) {
    cudaGetLastError();
    b->workspace_ = nullptr;
    if (err)
      *err = "cudaMalloc of the cuBLAS workspace (" + std::to_string(kWorkspaceBytes >> 20) +
             " MiB) failed";
    return nullptr;
  }
  if (!b->bindStream(err))
    return nullptr;
  return b;
}

bool Blas::bindStream(std::string* err) {
  void* s = currentStream();
  if (bound_ && s == stream_)
    return true;
  // cublasSetStream resets the workspace to cuBLAS's own pool: set ours again after it.
  if (!ok(cublas().setStream(h(handle_), static_cast<cudaStream_t>(s)), "cublasSetStream", err) ||
      !ok(cublas().setWorkspace(h(handle_), workspace_, kWorkspaceBytes), "cublasSetWorkspace",
          err))
    return false;
  stream_ = s;
  bound_ = true;
  return true;
}

Blas::~Blas() {
  if (handle_)
    cublas().destroy(h(handle_));
  if (scratch_)
    cudaFree(scratch_);
  if (widened_)
    cudaFree(widened_);
  if (pointers_)
    cudaFree(pointers_);
  if (raggedOut_)
    cudaFree(raggedOut_);
  if (workspace_)
    cudaFree(workspace_);
}

bool Blas::linear(const float* x, int64_t tokens, const void* w, bool wBf16, int64_t n, int64_t k,
                  float* y, std::string* err, int64_t ldy) {
  if (tokens <= 0 || n <= 0)
    return true;
  if (ldy <= 0)
    ldy = n;
  if (!bindStream(err))
    return false;
  const float one = 1.f, zero = 0.f;
  // Row-major y[T,N] = x[T,K] W^T is column-major y^T = W^T(op T of a KxN matrix) . x^T.
  countLaunches();
  if (!wBf16)
    return ok(cublas().gemmEx(h(handle_), CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(tokens), int(k),
                              &one, w, CUDA_R_32F, int(k), x, CUDA_R_32F, int(k), &zero, y,
                              CUDA_R_32F, int(ldy), CUBLAS_COMPUTE_32F_PEDANTIC,
                              CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx (f32)", err);
  const uint16_t* xb = roundedActivations(x, tokens * k, err);
  if (!xb)
    return false;
  return ok(cublas().gemmEx(h(handle_), CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(tokens), int(k), &one,
                            w, CUDA_R_16BF, int(k), xb, CUDA_R_16BF, int(k), &zero, y, CUDA_R_32F,
                            int(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx (bf16)", err);
}

bool Blas::linearInt8(const float* x, int64_t tokens, const int8_t* q, const float* scale,
                      int64_t n, int64_t k, float* y, std::string* err) {
  if (tokens <= 0 || n <= 0)
    return true;
  if (tokens <= kInt8GemvTokens) {
    gemvInt8(x, tokens, q, scale, n, k, y);
    return true;
  }
  // Row blocks of at most 32M weights (64 MiB of bf16), so the scratch stays small next to the
  // weights it serves.
  const int64_t blockRows = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t(32) << 20) / k));
  if (!growBf16(&widened_, &widenedElems_, size_t(blockRows * k), "the int8 widening scratch", err,
                &reallocations_))
    return false;
  for (int64_t r0 = 0; r0 < n; r0 += blockRows) {
    const int64_t rows = std::min(blockRows, n - r0);
    int8ToBf16(q + r0 * k, rows * k, widened_);
    if (!linear(x, tokens, widened_, true, rows, k, y + r0, err, n))
      return false;
  }
  scaleColumns(y, tokens, n, scale);
  return true;
}

bool Blas::linearInt4(const float* x, int64_t tokens, const uint8_t* data, const uint16_t* scales,
                      int64_t n, int64_t k, float* y, std::string* err) {
  if (tokens <= 0 || n <= 0)
    return true;
  if (tokens <= kInt8GemvTokens) {
    gemvInt4(x, tokens, data, scales, n, k, y);
    return true;
  }
  // Row blocks of at most 32M weights, as for int8 (the same scratch).
  const int64_t blockRows = std::max<int64_t>(1, std::min<int64_t>(n, (int64_t(32) << 20) / k));
  if (!growBf16(&widened_, &widenedElems_, size_t(blockRows * k), "the int4 widening scratch", err,
                &reallocations_))
    return false;
  for (int64_t r0 = 0; r0 < n; r0 += blockRows) {
    const int64_t rows = std::min(blockRows, n - r0);
    int4ToBf16(data + r0 * int4RowBytes(k), scales + r0 * int4Groups(k), rows, k, widened_);
    if (!linear(x, tokens, widened_, true, rows, k, y + r0, err, n))
      return false;
  }
  return true;
}

bool Blas::gemmBatched(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, int64_t strideA, const float* b, int64_t ldb, int64_t strideB,
                       float* c, int64_t ldc, int64_t strideC, int64_t batch, std::string* err,
                       float alpha, float beta) {
  if (m <= 0 || n <= 0 || batch <= 0)
    return true;
  if (!bindStream(err))
    return false;
  countLaunches();
  return ok(cublas().sgemmStridedBatched(h(handle_), transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         transB ? CUBLAS_OP_T : CUBLAS_OP_N, int(m), int(n), int(k),
                                         &alpha, a, int(lda), strideA, b, int(ldb), strideB, &beta,
                                         c, int(ldc), strideC, int(batch)),
            "cublasSgemmStridedBatched", err);
}

} // namespace kt::cuda

namespace kt::cuda {

const uint16_t* Blas::roundedActivations(const float* x, int64_t n, std::string* err) {
  if (!bindStream(err) || !growBf16(&scratch_, &scratchElems_, size_t(n),
                                    "the bf16 activation scratch", err, &reallocations_))
    return nullptr;
  toBf16(x, scratch_, n);
  return scratch_;
}

bool Blas::linearStack(const float* x, int64_t rows, int64_t items, const int32_t* slots,
                       const void* stack, bool wBf16, int64_t n, int64_t k, float* y,
                       std::string* err) {
  if (rows <= 0 || items <= 0 || n <= 0)
    return true;
  const void* prepared = x;
  if (wBf16 && !(prepared = roundedActivations(x, items * rows * k, err)))
    return false;
  return linearStackPrepared(prepared, rows, items, slots, stack, wBf16, n, k, y, err);
}

bool Blas::linearStackPrepared(const void* x, int64_t rows, int64_t items, const int32_t* slots,
                               const void* stack, bool wBf16, int64_t n, int64_t k, float* y,
                               std::string* err) {
  if (rows <= 0 || items <= 0 || n <= 0)
    return true;
  if (!bindStream(err))
    return false;
  if (!growPointers(items, err))
    return false;
  const size_t elem = wBf16 ? 2 : 4;
  stackPointersKernel<<<unsigned((items + 255) / 256), 256, 0, stream()>>>(
      slots, static_cast<const char*>(stack), size_t(n * k) * elem, static_cast<const char*>(x),
      size_t(rows * k) * elem, reinterpret_cast<char*>(y), size_t(rows * n) * 4, items, pointers_);
  if (!cudaOk(cudaGetLastError(), "linearStack: the pointer kernel's launch", err))
    return false;
  countLaunches(2);
  const float one = 1.f, zero = 0.f;
  const cudaDataType in = wBf16 ? CUDA_R_16BF : CUDA_R_32F;
  return ok(cublas().gemmBatchedEx(h(handle_), CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(rows), int(k),
                                   &one, pointers_, in, int(k), pointers_ + items, in, int(k),
                                   &zero, pointers_ + 2 * items, CUDA_R_32F, int(n), int(items),
                                   wBf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC,
                                   CUBLAS_GEMM_DEFAULT),
            "cublasGemmBatchedEx", err);
}

bool Blas::growPointers(int64_t items, std::string* err) {
  if (size_t(3 * items) <= pointerElems_)
    return true;
  if (pointers_) {
    ++reallocations_;
    cudaStreamSynchronize(stream()); // a queued batched GEMM may still read the old arrays
    cudaFree(pointers_);
    pointers_ = nullptr;
    pointerElems_ = 0;
  }
  if (cudaMalloc(reinterpret_cast<void**>(&pointers_), size_t(3 * items) * sizeof(void*)) !=
      cudaSuccess) {
    cudaGetLastError();
    if (err)
      *err = "cudaMalloc of the batched GEMM's pointer arrays failed";
    return false;
  }
  pointerElems_ = size_t(3 * items);
  return true;
}

namespace {
// Rows of a ragged stack (the sum of rows[i]); -1 and *err when a count is negative.
int64_t raggedTotal(const int32_t* rows, int64_t items, std::string* err) {
  int64_t total = 0;
  for (int64_t i = 0; i < items; ++i) {
    if (rows[i] < 0) {
      if (err)
        *err = "linearStackRagged: item " + std::to_string(i) + " has " + std::to_string(rows[i]) +
               " rows";
      return -1;
    }
    total += rows[i];
  }
  return total;
}
} // namespace

bool Blas::linearStackRagged(const float* x, const int32_t* rows, const int32_t* rowStart,
                             int64_t items, const int32_t* slots, const void* stack, bool wBf16,
                             int64_t n, int64_t k, float* y, std::string* err) {
  const int64_t total = raggedTotal(rows, items, err);
  if (total < 0)
    return false;
  if (total == 0 || n <= 0)
    return true;
  const void* prepared = x;
  if (wBf16 && !(prepared = roundedActivations(x, total * k, err)))
    return false;
  return linearStackRaggedPrepared(prepared, rows, rowStart, items, slots, stack, wBf16, n, k, y,
                                   err);
}

bool Blas::linearStackRaggedPrepared(const void* x, const int32_t* rows, const int32_t* rowStart,
                                     int64_t items, const int32_t* slots, const void* stack,
                                     bool wBf16, int64_t n, int64_t k, float* y, std::string* err) {
  const int64_t total = raggedTotal(rows, items, err);
  if (total < 0)
    return false;
  if (total == 0 || n <= 0)
    return true;
  if (!cublas().gemmGroupedBatchedEx) {
    if (err)
      *err = "linearStackRagged: this cuBLAS has no cublasGemmGroupedBatchedEx (cuBLAS 12.5 or "
             "later is needed for KT_CUDA_MOE_GEMM=ragged)";
    return false;
  }
  if (!bindStream(err) || !growPointers(items, err))
    return false;
  // bf16 products go through a bf16 scratch (the grouped GEMM writes bf16 only) and are widened.
  void* out = y;
  size_t outElem = 4;
  if (wBf16) {
    if (!growBf16(&raggedOut_, &raggedOutElems_, size_t(total * n),
                  "the ragged products' bf16 scratch", err, &reallocations_))
      return false;
    out = raggedOut_;
    outElem = 2;
  }
  const size_t elem = wBf16 ? 2 : 4;
  raggedPointersKernel<<<blocksFor(items), 256, 0, stream()>>>(
      slots, rowStart, static_cast<const char*>(stack), size_t(n * k) * elem,
      static_cast<const char*>(x), size_t(k) * elem, static_cast<char*>(out), size_t(n) * outElem,
      items, pointers_);
  if (!cudaOk(cudaGetLastError(), "linearStackRagged: the pointer kernel's launch", err))
    return false;
  // Per group (a run of items with the same row count), on the host as cuBLAS wants them.
  // Row-major y_i[r_i, N] = x_i[r_i, K] . W^T is column-major y_i^T = op_T(W) . x_i^T, as linear.
  std::vector<int> m, nRows, kk, lda, ldb, ldc, size;
  std::vector<cublasOperation_t> ta, tb;
  std::vector<float> alpha, beta;
  for (int64_t i = 0; i < items; ++i) {
    if (i > 0 && rows[i] == rows[i - 1]) {
      ++size.back();
      continue;
    }
    m.push_back(int(n));
    nRows.push_back(rows[i]);
    kk.push_back(int(k));
    lda.push_back(int(k));
    ldb.push_back(int(k));
    ldc.push_back(int(n));
    size.push_back(1);
    ta.push_back(CUBLAS_OP_T);
    tb.push_back(CUBLAS_OP_N);
    alpha.push_back(1.f);
    beta.push_back(0.f);
  }
  countLaunches(wBf16 ? 3 : 2);
  const cudaDataType in = wBf16 ? CUDA_R_16BF : CUDA_R_32F;
  if (!ok(cublas().gemmGroupedBatchedEx(
              h(handle_), ta.data(), tb.data(), m.data(), nRows.data(), kk.data(), alpha.data(),
              pointers_, in, lda.data(), pointers_ + items, in, ldb.data(), beta.data(),
              pointers_ + 2 * items, in, ldc.data(), int(size.size()), size.data(),
              wBf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC),
          wBf16 ? "cublasGemmGroupedBatchedEx (bf16)" : "cublasGemmGroupedBatchedEx (f32)", err))
    return false;
  if (wBf16) {
    bf16ToF32Kernel<<<blocksFor(total * n), 256, 0, stream()>>>(raggedOut_, y, total * n);
    if (!cudaOk(cudaGetLastError(), "linearStackRagged: the bf16 widening's launch", err))
      return false;
  }
  return true;
}

} // namespace kt::cuda
