#pragma once
// Matrix products through cuBLAS for the CUDA backend (plain C++ header; device pointers), queued
// on kernels/cuda's current stream (Memory.h) with a workspace of 32 MiB allocated at create().
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

  // y[T, N] = x[T, K] . W[N, K]^T with W row-major f32 or bf16 (ldw = K); y's rows are ldy floats
  // apart (0: N). y must not alias x.
  bool linear(const float* x, int64_t tokens, const void* w, bool wBf16, int64_t n, int64_t k,
              float* y, std::string* err, int64_t ldy = 0);

  // The same with weight-only int8 W = q * scale (q int8 [N, K], scale f32 [N]): the GEMV kernel
  // for up to kInt8GemvTokens tokens (f32 activations), else q widened to bf16 in row blocks for
  // the tensor cores (activations rounded to bf16, as for bf16 weights) and y scaled per column.
  static constexpr int64_t kInt8GemvTokens = 16;
  bool linearInt8(const float* x, int64_t tokens, const int8_t* q, const float* scale, int64_t n,
                  int64_t k, float* y, std::string* err);

  // The same with weight-only int4 W (kernels/cuda/Int4Format.h: packed nibbles [N] rows of
  // int4RowBytes(K), f16 scales [N][int4Groups(K)]): gemvInt4 up to kInt8GemvTokens tokens, else
  // row blocks widened to bf16 with the group scales applied (int4ToBf16) and a bf16 GEMM (no
  // column scaling).
  bool linearInt4(const float* x, int64_t tokens, const uint8_t* data, const uint16_t* scales,
                  int64_t n, int64_t k, float* y, std::string* err);

  // Column-major f32 strided batched GEMM, C_b = alpha . op(A_b) . op(B_b) + beta . C_b (cuBLAS
  // conventions), used by MLA's per-head absorption and value up-projection and by the prefill
  // attention's scores and weighted values (PrefillAttention.h).
  bool gemmBatched(bool transA, bool transB, int64_t m, int64_t n, int64_t k, const float* a,
                   int64_t lda, int64_t strideA, const float* b, int64_t ldb, int64_t strideB,
                   float* c, int64_t ldc, int64_t strideC, int64_t batch, std::string* err,
                   float alpha = 1.f, float beta = 0.f);

  // Expert products of a grouped MoE prefill in one batched GEMM: for item i < items, rows
  // [i * rows, (i + 1) * rows) of y [items * rows, N] = the same rows of x [items * rows, K] .
  // W_s^T, where W_s is slice s = slots[i] (a device int32 array) of a stack of row-major [N, K]
  // matrices at `stack`, f32 or bf16 (as linear(): bf16 weights take x rounded to bf16). Every
  // item has `rows` rows (the caller pads). One cublasGemmBatchedEx launch, plus the rounding of
  // x and a kernel that writes the three pointer arrays cuBLAS reads from device memory.
  bool linearStack(const float* x, int64_t rows, int64_t items, const int32_t* slots,
                   const void* stack, bool wBf16, int64_t n, int64_t k, float* y, std::string* err);
  // The same with x already in the stack's type: f32, or bf16 from roundedActivations (so two
  // products of the same rows, a MoE's gate and up, round them once).
  bool linearStackPrepared(const void* x, int64_t rows, int64_t items, const int32_t* slots,
                           const void* stack, bool wBf16, int64_t n, int64_t k, float* y,
                           std::string* err);
  // The same without padding: item i < items has rows[i] rows (a HOST array, each at least 1 in a
  // MoE chunk's grouping; a negative count is an error naming the item), packed one after
  // another, its rows of x and y starting at row rowStart[i] (a device int32 array: the prefix
  // sums of rows). One cublasGemmGroupedBatchedEx launch (cuBLAS 12.5+; consecutive
  // items of equal count form one group), the pointer kernel and the rounding of x. bf16: cuBLAS's
  // grouped GEMM has no bf16 x bf16 -> f32 form, so the products are written as bf16 (f32 sums
  // rounded once) and widened into y by one more kernel: y differs from linearStack's by that
  // rounding (relative 2^-9). f32: exact f32 sums, as linearStack.
  bool linearStackRagged(const float* x, const int32_t* rows, const int32_t* rowStart,
                         int64_t items, const int32_t* slots, const void* stack, bool wBf16,
                         int64_t n, int64_t k, float* y, std::string* err);
  bool linearStackRaggedPrepared(const void* x, const int32_t* rows, const int32_t* rowStart,
                                 int64_t items, const int32_t* slots, const void* stack, bool wBf16,
                                 int64_t n, int64_t k, float* y, std::string* err);
  // x [n] rounded to bf16 in this Blas's activation scratch, valid until the next call that
  // rounds activations (linear and linearStack with bf16 weights do); null and *err on failure.
  const uint16_t* roundedActivations(const float* x, int64_t n, std::string* err);

  // How often a scratch buffer was reallocated (CUDA graphs that captured the old one are stale).
  uint64_t reallocations() const { return reallocations_; }

private:
  Blas() = default;
  // Points the handle at kernels/cuda's current stream (Memory.h) with our workspace.
  bool bindStream(std::string* err);
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20; // Hopper's recommended size
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
  void* stream_ = nullptr;
  bool bound_ = false;
  uint64_t reallocations_ = 0;
  uint16_t* scratch_ = nullptr; // activations rounded to bf16
  size_t scratchElems_ = 0;
  uint16_t* widened_ = nullptr; // a row block of int8 or int4 weights widened to bf16
  size_t widenedElems_ = 0;
  void** pointers_ = nullptr; // linearStack's A, B and C pointer arrays
  size_t pointerElems_ = 0;
  uint16_t* raggedOut_ = nullptr; // linearStackRagged's bf16 products before widening
  size_t raggedOutElems_ = 0;
  // Grows pointers_ to 3 x items entries.
  bool growPointers(int64_t items, std::string* err);
};

} // namespace kt::cuda
