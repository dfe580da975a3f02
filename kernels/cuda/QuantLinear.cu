// Weight-only int8 products (y = x . (q * scale)^T, q int8 [N, K] row-major, one f32 scale per
// row, symmetric — the CPU's Int8 format semantics) and weight-only int4 ones (Int4Format.h: one
// f16 scale per row and 128-column group; the kernel is Int4Dot.cuh's). Decode (few tokens) is
// bound by reading q: int8 streams one row per warp with 16-byte loads and keeps a sum per token
// in registers (the scalar loop serves rows that are not 16-byte aligned); int4 streams several
// rows per warp (Int4Dot.cuh says why). Prefill widens row blocks of
// q to bf16 (exact: |q| <= 127 fits bf16's 8-bit significand) for cuBLAS's tensor cores and scales
// the columns afterwards; the grouped prefill MoE widens a slot list of an expert stack the same
// way (one kernel each for int8 and int4 serves both: QuantWiden.h defines the element).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Int4Dot.cuh"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/QuantWiden.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace kt::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

template <int T>
__global__ void gemvInt8Kernel(const float* __restrict__ x, const int8_t* __restrict__ q,
                               const float* __restrict__ scale, int64_t n, int64_t k, bool vec,
                               float* __restrict__ y) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
  if (row >= n)
    return;
  const int8_t* qr = q + row * k;
  float acc[T];
#pragma unroll
  for (int t = 0; t < T; ++t)
    acc[t] = 0.f;
  if (vec) { // k % 16 == 0 and q, x 16-byte aligned
    for (int64_t c = int64_t(lane) * 16; c < k; c += 32 * 16) {
      const int4 packed = __ldg(reinterpret_cast<const int4*>(qr + c));
      const int8_t* b = reinterpret_cast<const int8_t*>(&packed);
      float w[16];
#pragma unroll
      for (int i = 0; i < 16; ++i)
        w[i] = float(b[i]);
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float4* xv = reinterpret_cast<const float4*>(x + t * k + c);
        float s = 0.f;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float4 v = __ldg(xv + i);
          s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
        }
        acc[t] += s;
      }
    }
  } else {
    for (int64_t c = lane; c < k; c += 32) {
      const float w = float(qr[c]);
#pragma unroll
      for (int t = 0; t < T; ++t)
        acc[t] += w * x[t * k + c];
    }
  }
#pragma unroll
  for (int t = 0; t < T; ++t) {
    float s = acc[t];
    for (int off = 16; off > 0; off >>= 1)
      s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0)
      y[t * n + row] = s * scale[row];
  }
}

template <int T>
void launchGemv(const float* x, const int8_t* q, const float* scale, int64_t n, int64_t k, bool vec,
                float* y) {
  const unsigned blocks = unsigned((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  countLaunches();
  gemvInt8Kernel<T><<<blocks, kWarpsPerBlock * 32, 0, stream()>>>(x, q, scale, n, k, vec, y);
}

// Widening for the tensor-core path: the items of a slot list (QuantWiden.h's units; the element
// is defined there) along the grid's y (grid-stride), an item's units along x.
__global__ void int8WidenKernel(const int8_t* __restrict__ q, const int32_t* __restrict__ slots,
                                int64_t items, int64_t sliceElems, bool vec,
                                uint16_t* __restrict__ out) {
  const int64_t units = int8WidenUnits(sliceElems, vec);
  for (int64_t i = blockIdx.y; i < items; i += gridDim.y) {
    const Int8WidenItem it = int8WidenItem(q, slots, i, sliceElems, out);
    for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < units;
         u += int64_t(gridDim.x) * blockDim.x)
      int8WidenUnit(it, u, vec);
  }
}

// y's columns scaled per item: item i's rows (grid y; QuantWiden.h's stackItemRows) times
// scales[slots[i] * cols + c] (slots null: i). One f32 multiply per value, as Blas::linearInt8's
// pass (scaleColumns is the one-item case).
__global__ void scaleColumnsKernel(float* __restrict__ y, int64_t cols, int64_t items,
                                   int64_t rowsPerItem, const int32_t* __restrict__ itemRow0,
                                   int64_t totalRows, const float* __restrict__ scales,
                                   const int32_t* __restrict__ slots) {
  for (int64_t i = blockIdx.y; i < items; i += gridDim.y) {
    int64_t row0 = 0, end = 0;
    stackItemRows(itemRow0, i, items, rowsPerItem, totalRows, &row0, &end);
    const float* s = scales + (slots ? int64_t(slots[i]) : i) * cols;
    float* yi = y + row0 * cols;
    const int64_t n = (end - row0) * cols;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n;
         e += int64_t(gridDim.x) * blockDim.x)
      yi[e] *= s[e % cols];
  }
}

using LaunchGemv = void (*)(const float*, const int8_t*, const float*, int64_t, int64_t, bool,
                            float*);
// launchGemv<T> for T = 1 .. kGemvMaxTokens tokens (the sums per token live in registers).
constexpr LaunchGemv kGemvByTokens[] = {launchGemv<1>, launchGemv<2>, launchGemv<3>, launchGemv<4>,
                                        launchGemv<5>, launchGemv<6>, launchGemv<7>, launchGemv<8>};
static_assert(sizeof(kGemvByTokens) / sizeof(kGemvByTokens[0]) == kGemvMaxTokens);

// int4 decode: Int4Dot.cuh's gemvInt4RowsKernel, a warp per R rows so that each activation load
// serves R rows (why: see Int4Dot.cuh), in small blocks (4 warps). R = 4 for 1-2 tokens on
// matrices of >= 4,096 rows (lm_head: 6,400 blocks), else 2: a 2,048-row matrix then still spreads
// over every SM of an H100 (256 blocks of 8 rows, where R = 4 would leave 128 blocks for 132 SMs),
// and for 3-8 tokens the 2 * R * T sums of R = 4 would cost occupancy (ptxas: R = 4 uses 96
// registers for 1 token, 144 for 2; R = 2 uses 95..135 for 3..8 tokens, no spills).
// kt_bench_int4_decode (bench/cuda) times the other choices.
constexpr int kInt4WarpsPerBlock = 4;
constexpr int64_t kInt4ManyRows = 4096;

template <int T, int R>
void launchGemvInt4Rows(const float* x, const uint8_t* data, const uint16_t* scales, int64_t n,
                        int64_t k, bool xVec, float* y) {
  const int64_t rowsPerBlock = int64_t(kInt4WarpsPerBlock) * R;
  const unsigned blocks = unsigned((n + rowsPerBlock - 1) / rowsPerBlock);
  countLaunches();
  gemvInt4RowsKernel<T, R>
      <<<blocks, kInt4WarpsPerBlock * 32, 0, stream()>>>(x, data, scales, n, k, xVec, y);
}

template <int T>
void launchGemvInt4(const float* x, const uint8_t* data, const uint16_t* scales, int64_t n,
                    int64_t k, bool xVec, float* y) {
  if constexpr (T <= 2) {
    if (n >= kInt4ManyRows)
      return launchGemvInt4Rows<T, 4>(x, data, scales, n, k, xVec, y);
  }
  launchGemvInt4Rows<T, 2>(x, data, scales, n, k, xVec, y);
}

using LaunchGemvInt4 = void (*)(const float*, const uint8_t*, const uint16_t*, int64_t, int64_t,
                                bool, float*);
constexpr LaunchGemvInt4 kGemvInt4ByTokens[] = {
    launchGemvInt4<1>, launchGemvInt4<2>, launchGemvInt4<3>, launchGemvInt4<4>,
    launchGemvInt4<5>, launchGemvInt4<6>, launchGemvInt4<7>, launchGemvInt4<8>};
static_assert(sizeof(kGemvInt4ByTokens) / sizeof(kGemvInt4ByTokens[0]) == kGemvMaxTokens);

// int4 stacks (Int4Format.h) widened with the group scales folded in (QuantWiden.h): the GEMM's
// output then needs no scaling pass. Items along the grid's y, an item's units along x.
__global__ void int4WidenKernel(const uint8_t* __restrict__ data,
                                const uint16_t* __restrict__ scales,
                                const int32_t* __restrict__ slots, int64_t items, int64_t rows,
                                int64_t cols, bool vec, uint16_t* __restrict__ out) {
  const int64_t units = int4WidenUnits(rows, cols, vec);
  for (int64_t i = blockIdx.y; i < items; i += gridDim.y) {
    const Int4WidenItem it = int4WidenItem(data, scales, slots, i, rows, cols, out);
    for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < units;
         u += int64_t(gridDim.x) * blockDim.x)
      int4WidenUnit(it, cols, u, vec);
  }
}

__global__ void sequenceKernel(int32_t* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = int32_t(i);
}

// Items along y: at most 65535 blocks there (the kernels loop over the rest).
dim3 itemGrid(int64_t unitsPerItem, int64_t items) {
  return dim3(blocksFor(unitsPerItem), unsigned(items < 65535 ? (items < 1 ? 1 : items) : 65535));
}
} // namespace

void gemvInt8(const float* x, int64_t tokens, const int8_t* q, const float* scale, int64_t n,
              int64_t k, float* y) {
  const bool vec = k % 16 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0;
  // Up to kGemvMaxTokens tokens per launch; a longer batch is split (each part re-reads q).
  for (int64_t t0 = 0; t0 < tokens; t0 += kGemvMaxTokens) {
    const int64_t t = tokens - t0 < kGemvMaxTokens ? tokens - t0 : kGemvMaxTokens;
    const float* xs = x + t0 * k;
    float* ys = y + t0 * n;
    kGemvByTokens[t - 1](xs, q, scale, n, k, vec, ys);
  }
}

void gemvInt4(const float* x, int64_t tokens, const uint8_t* data, const uint16_t* scales,
              int64_t n, int64_t k, float* y) {
  const bool xVec = k % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  for (int64_t t0 = 0; t0 < tokens; t0 += kGemvMaxTokens) { // as gemvInt8: q re-read per part
    const int64_t t = tokens - t0 < kGemvMaxTokens ? tokens - t0 : kGemvMaxTokens;
    kGemvInt4ByTokens[t - 1](x + t0 * k, data, scales, n, k, xVec, y + t0 * n);
  }
}

void int4ToBf16(const uint8_t* data, const uint16_t* scales, int64_t rows, int64_t cols,
                uint16_t* out) {
  int4StackToBf16(data, scales, nullptr, 1, rows, cols, out);
}

void int4StackToBf16(const uint8_t* data, const uint16_t* scales, const int32_t* slots,
                     int64_t items, int64_t rows, int64_t cols, uint16_t* out) {
  if (items <= 0 || rows <= 0 || cols <= 0)
    return;
  const bool vec = int4WidenVec(data, cols, out);
  countLaunches();
  int4WidenKernel<<<itemGrid(int4WidenUnits(rows, cols, vec), items), kThreads, 0, stream()>>>(
      data, scales, slots, items, rows, cols, vec, out);
}

void int8ToBf16(const int8_t* q, int64_t n, uint16_t* out) {
  int8StackToBf16(q, nullptr, 1, n, out);
}

void int8StackToBf16(const int8_t* q, const int32_t* slots, int64_t items, int64_t sliceElems,
                     uint16_t* out) {
  if (items <= 0 || sliceElems <= 0)
    return;
  const bool vec = int8WidenVec(q, sliceElems, out);
  countLaunches();
  int8WidenKernel<<<itemGrid(int8WidenUnits(sliceElems, vec), items), kThreads, 0, stream()>>>(
      q, slots, items, sliceElems, vec, out);
}

void scaleColumns(float* y, int64_t rows, int64_t cols, const float* scale) {
  scaleColumnsStack(y, cols, 1, rows, nullptr, rows, scale, nullptr);
}

void scaleColumnsStack(float* y, int64_t cols, int64_t items, int64_t rowsPerItem,
                       const int32_t* itemRow0, int64_t totalRows, const float* scales,
                       const int32_t* slots) {
  if (items <= 0 || cols <= 0 || totalRows <= 0)
    return;
  // x covers an average item (the kernel's grid-stride loop takes a longer one).
  const int64_t rowsHint = itemRow0 ? (totalRows + items - 1) / items : rowsPerItem;
  countLaunches();
  scaleColumnsKernel<<<itemGrid(rowsHint * cols, items), kThreads, 0, stream()>>>(
      y, cols, items, rowsPerItem, itemRow0, totalRows, scales, slots);
}

void fillSequence(int32_t* out, int64_t n) {
  if (n <= 0)
    return;
  countLaunches();
  sequenceKernel<<<blocksFor(n), kThreads, 0, stream()>>>(out, n);
}

} // namespace kt::cuda
