// Device-side MoE for decode (DeviceKernels.h): the routing choices stay on the GPU. One launch
// computes gate and up for every (token, expert) pair with SwiGLU in the epilogue, one the down
// projections of every pair, and one sums each token's pairs in top-k order (deterministic: no
// atomics) plus the shared experts. A warp computes one output row of one pair: the expert's
// weight row streams once from memory (8 elements per lane and load when the rows allow 16-byte
// loads) against the token's activations, f32 sums reduced across the warp. The vector loops read
// the activations as 16-byte loads too and are unrolled so that several of a lane's weight loads
// are in flight at once (a decode step is bound by how fast the expert rows stream). int4 stacks
// (Int4Format.h) have their own kernels: a warp streams several rows (gate and up rows of the
// expert together) as 16-byte chunks of 32 nibbles through Int4Dot.cuh's loop.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/Int4Dot.cuh"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_bf16.h>

#include <type_traits>

namespace kt::cuda {

namespace {
constexpr int kWarps = 8; // rows per block

__device__ inline float bf16Bits(uint16_t b) {
  return __uint_as_float(uint32_t(b) << 16);
}

// bf16 weights multiply activations rounded to bf16 (Blas::linear's semantics).
__device__ inline float activation(float x, int dtype) {
  return dtype == int(ExpertDType::BF16) ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

// The slice of `s` holding expert e, or -1 when the pair is skipped (no expert, or one the GPU
// does not hold).
__device__ inline int64_t sliceOf(const ExpertStack& s, int32_t e) {
  if (e < 0 || e >= s.numExperts)
    return -1;
  return s.local ? int64_t(s.local[e]) : int64_t(e);
}

// x[0..7] as two 16-byte loads (x 32-byte aligned: the callers' `vec`), not eight 4-byte ones.
__device__ inline void load8(const float* x, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(x);
  const float4 b = *reinterpret_cast<const float4*>(x + 4);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = a.z;
  out[3] = a.w;
  out[4] = b.x;
  out[5] = b.y;
  out[6] = b.z;
  out[7] = b.w;
}

// x . W[slice, row] over s.cols, summed across the warp (every lane returns the sum). DT: the
// stack's ExpertDType, fixed per kernel instance so that each format's kernel is compiled (and
// allocated registers) for its own loop only — the int4 loop needs more registers than the others
// and would otherwise lower every format's occupancy; -1: read s.dtype at run time.
template <int DT>
__device__ float rowDot(const ExpertStack& s, int64_t slice, int64_t row, const float* x,
                        bool vec) {
  const int lane = int(threadIdx.x) % 32;
  const int dtype = DT >= 0 ? DT : s.dtype; // a constant unless DT is -1
  const int64_t k = s.cols, r = slice * s.rows + row;
  float acc = 0.f;
  if (dtype == int(ExpertDType::F32)) {
    const float* w = static_cast<const float*>(s.data) + r * k;
    if (vec) {
#pragma unroll 4
      for (int64_t c = int64_t(lane) * 8; c < k; c += 32 * 8) {
        const float4 w0 = __ldg(reinterpret_cast<const float4*>(w + c));
        const float4 w1 = __ldg(reinterpret_cast<const float4*>(w + c + 4));
        const float4 x0 = *reinterpret_cast<const float4*>(x + c);
        const float4 x1 = *reinterpret_cast<const float4*>(x + c + 4);
        acc += w0.x * x0.x + w0.y * x0.y + w0.z * x0.z + w0.w * x0.w + w1.x * x1.x + w1.y * x1.y +
               w1.z * x1.z + w1.w * x1.w;
      }
    } else {
      for (int64_t c = lane; c < k; c += 32)
        acc += w[c] * x[c];
    }
  } else if (dtype == int(ExpertDType::BF16)) {
    const uint16_t* w = static_cast<const uint16_t*>(s.data) + r * k;
    const int bf = int(ExpertDType::BF16);
    if (vec) {
#pragma unroll 4
      for (int64_t c = int64_t(lane) * 8; c < k; c += 32 * 8) {
        const uint4 packed = __ldg(reinterpret_cast<const uint4*>(w + c));
        const uint16_t* b = reinterpret_cast<const uint16_t*>(&packed);
        float xs[8];
        load8(x + c, xs);
#pragma unroll
        for (int i = 0; i < 8; ++i)
          acc += bf16Bits(b[i]) * activation(xs[i], bf);
      }
    } else {
      for (int64_t c = lane; c < k; c += 32)
        acc += bf16Bits(w[c]) * activation(x[c], bf);
    }
  } else if (dtype == int(ExpertDType::Int4)) { // group scales applied inside the row loop
    // (only for gate and up of different formats: int4 stacks have their own kernels below)
    const uint8_t* const rows[1] = {static_cast<const uint8_t*>(s.data) + r * int4RowBytes(k)};
    const uint16_t* const scales[1] = {s.groupScales + r * int4Groups(k)};
    float sums[1][1] = {{0.f}};
    int4RowsDot<1, 1>(rows, scales, x, k, k, vec, sums);
    acc = sums[0][0];
  } else { // int8, one scale per row applied to the sum
    const int8_t* w = static_cast<const int8_t*>(s.data) + r * k;
    if (vec) {
#pragma unroll 4
      for (int64_t c = int64_t(lane) * 8; c < k; c += 32 * 8) {
        const uint2 packed = __ldg(reinterpret_cast<const uint2*>(w + c));
        const int8_t* b = reinterpret_cast<const int8_t*>(&packed);
        float xs[8];
        load8(x + c, xs);
#pragma unroll
        for (int i = 0; i < 8; ++i)
          acc += float(b[i]) * xs[i];
      }
    } else {
      for (int64_t c = lane; c < k; c += 32)
        acc += float(w[c]) * x[c];
    }
  }
  for (int off = 16; off > 0; off >>= 1)
    acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (dtype == int(ExpertDType::Int8))
    acc *= s.scales[r];
  return acc;
}

// What one warp of the gateUp and down kernels computes: output row `row` of pair `pair`
// (grid: row blocks of s.rows, pairs) from expert slice `slice` of `s`, into *dst.
struct WarpTask {
  int64_t pair, row, slice;
  float* dst;
};
// false when the warp has nothing to compute: its row is past s.rows, or the pair is skipped
// (no expert, or one the GPU does not hold), whose output row it then zeroes.
__device__ inline bool warpTask(const ExpertStack& s, const int32_t* experts, float* out,
                                WarpTask* t) {
  t->pair = blockIdx.y;
  t->row = int64_t(blockIdx.x) * kWarps + int(threadIdx.x) / 32;
  if (t->row >= s.rows)
    return false;
  t->slice = experts ? sliceOf(s, experts[t->pair]) : 0;
  t->dst = out + t->pair * s.rows + t->row;
  if (t->slice < 0) {
    if (threadIdx.x % 32 == 0)
      *t->dst = 0.f;
    return false;
  }
  return true;
}

// act[p, row] = silu(x_t . gate_e[row]) * (x_t . up_e[row])
template <int DT>
__global__ void gateUpKernel(const float* x, int topK, const int32_t* experts, ExpertStack gate,
                             ExpertStack up, bool vec, float* act) {
  WarpTask w;
  if (!warpTask(gate, experts, act, &w))
    return;
  const float* xt = x + (w.pair / topK) * gate.cols;
  const float g = rowDot<DT>(gate, w.slice, w.row, xt, vec);
  const float u = rowDot<DT>(up, w.slice, w.row, xt, vec);
  if (threadIdx.x % 32 == 0)
    *w.dst = g / (1.0f + expf(-g)) * u;
}

// y[p, row] = act[p] . down_e[row]
template <int DT>
__global__ void downKernel(const float* act, const int32_t* experts, ExpertStack down, bool vec,
                           float* y) {
  WarpTask w;
  if (!warpTask(down, experts, y, &w))
    return;
  const float d = rowDot<DT>(down, w.slice, w.row, act + w.pair * down.cols, vec);
  if (threadIdx.x % 32 == 0)
    *w.dst = d;
}

// int4 stacks: a warp computes kInt4Rows consecutive output rows of one pair, so that each
// activation load serves several rows (Int4Dot.cuh says why): gate+up streams kInt4Rows gate rows
// and kInt4Rows up rows of the expert together (2 * kInt4Rows rows per activation load), down
// 2 * kInt4Rows rows. Blocks of kInt4Warps warps; grid (row blocks, pairs).
constexpr int kInt4Warps = 4, kInt4Rows = 2;

// The int4 counterpart of warpTask for `rowsPerWarp` rows from *row0: false when the warp has
// nothing to compute (its rows start past s.rows, or the pair is skipped, whose rows it zeroes).
__device__ inline bool int4WarpTask(const ExpertStack& s, const int32_t* experts, float* out,
                                    int rowsPerWarp, int64_t* row0, int64_t* slice, float** dst) {
  const int64_t pair = blockIdx.y;
  *row0 = (int64_t(blockIdx.x) * kInt4Warps + int(threadIdx.x) / 32) * rowsPerWarp;
  if (*row0 >= s.rows)
    return false;
  *slice = experts ? sliceOf(s, experts[pair]) : 0;
  *dst = out + pair * s.rows + *row0;
  if (*slice < 0) {
    const int lane = int(threadIdx.x) % 32;
    if (lane < rowsPerWarp && *row0 + lane < s.rows)
      (*dst)[lane] = 0.f;
    return false;
  }
  return true;
}

// Row `row` (clamped to the last row: the warp's rows past s.rows are read, not written) of slice
// `slice` of an int4 stack.
__device__ inline void int4Row(const ExpertStack& s, int64_t slice, int64_t row,
                               const uint8_t** data, const uint16_t** scales) {
  const int64_t r = slice * s.rows + (row < s.rows ? row : s.rows - 1);
  *data = static_cast<const uint8_t*>(s.data) + r * int4RowBytes(s.cols);
  *scales = s.groupScales + r * int4Groups(s.cols);
}

__global__ void gateUpInt4Kernel(const float* x, int topK, const int32_t* experts, ExpertStack gate,
                                 ExpertStack up, bool vec, float* act) {
  int64_t row0, slice;
  float* dst;
  if (!int4WarpTask(gate, experts, act, kInt4Rows, &row0, &slice, &dst))
    return;
  const uint8_t* rows[2 * kInt4Rows];
  const uint16_t* scales[2 * kInt4Rows];
#pragma unroll
  for (int r = 0; r < kInt4Rows; ++r) {
    int4Row(gate, slice, row0 + r, &rows[r], &scales[r]);
    int4Row(up, slice, row0 + r, &rows[kInt4Rows + r], &scales[kInt4Rows + r]);
  }
  float acc[2 * kInt4Rows][1] = {};
  int4RowsDot<1, 2 * kInt4Rows>(rows, scales, x + int64_t(blockIdx.y / topK) * gate.cols, gate.cols,
                                gate.cols, vec, acc);
  const int lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int r = 0; r < kInt4Rows; ++r) {
    const float g = int4WarpSum(acc[r][0]), u = int4WarpSum(acc[kInt4Rows + r][0]);
    if (lane == r && row0 + r < gate.rows)
      dst[r] = g / (1.0f + expf(-g)) * u;
  }
}

__global__ void downInt4Kernel(const float* act, const int32_t* experts, ExpertStack down, bool vec,
                               float* y) {
  constexpr int R = 2 * kInt4Rows;
  int64_t row0, slice;
  float* dst;
  if (!int4WarpTask(down, experts, y, R, &row0, &slice, &dst))
    return;
  const uint8_t* rows[R];
  const uint16_t* scales[R];
#pragma unroll
  for (int r = 0; r < R; ++r)
    int4Row(down, slice, row0 + r, &rows[r], &scales[r]);
  float acc[R][1] = {};
  int4RowsDot<1, R>(rows, scales, act + int64_t(blockIdx.y) * down.cols, down.cols, down.cols, vec,
                    acc);
  const int lane = int(threadIdx.x) % 32;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float d = int4WarpSum(acc[r][0]);
    if (lane == r && row0 + r < down.rows)
      dst[r] = d;
  }
}

unsigned int4RowBlocks(int64_t rows, int rowsPerWarp) {
  const int64_t perBlock = int64_t(kInt4Warps) * rowsPerWarp;
  return unsigned((rows + perBlock - 1) / perBlock);
}

__global__ void combineKernel(const float* y, const float* weights, const int32_t* experts,
                              const int32_t* local, int numExperts, int64_t tokens, int topK,
                              int64_t cols, const float* shared, const float* sharedScale,
                              float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < tokens * cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / cols, c = i % cols;
    float sum = 0.f;
    if (y)
      for (int k = 0; k < topK; ++k) { // fixed order: the same sum on every run
        const int64_t p = t * topK + k;
        const int32_t e = experts[p];
        if (e < 0 || e >= numExperts || (local && local[e] < 0))
          continue;
        sum += weights[p] * y[p * cols + c];
      }
    if (shared)
      sum += (sharedScale ? sharedScale[t] : 1.0f) * shared[i];
    out[i] = sum;
  }
}

bool aligned(const void* p, int bytes) {
  return reinterpret_cast<uintptr_t>(p) % uintptr_t(bytes) == 0;
}

// 8-element loads need cols % 8 == 0 and 32-byte aligned activations and weights.
bool vectorizable(const ExpertStack& s, const float* x) {
  return s.cols % 8 == 0 && aligned(s.data, 32) && aligned(x, 32);
}

unsigned rowBlocks(int64_t rows) {
  return unsigned((rows + kWarps - 1) / kWarps);
}

// The kernel instance for a format (gate and up share one in every plan; -1 if they do not).
template <class Launch> void byFormat(int dtype, Launch launch) {
  switch (dtype) {
  case int(ExpertDType::F32):
    return launch(std::integral_constant<int, int(ExpertDType::F32)>());
  case int(ExpertDType::BF16):
    return launch(std::integral_constant<int, int(ExpertDType::BF16)>());
  case int(ExpertDType::Int8):
    return launch(std::integral_constant<int, int(ExpertDType::Int8)>());
  case int(ExpertDType::Int4):
    return launch(std::integral_constant<int, int(ExpertDType::Int4)>());
  default:
    return launch(std::integral_constant<int, -1>());
  }
}
} // namespace

void moeGateUpDecode(const float* x, int64_t tokens, int topK, const int32_t* experts,
                     const ExpertStack& gate, const ExpertStack& up, float* act) {
  const int64_t pairs = tokens * topK;
  if (pairs <= 0 || gate.rows <= 0)
    return;
  const bool vec = vectorizable(gate, x) && vectorizable(up, x);
  countLaunches();
  if (gate.dtype == int(ExpertDType::Int4) && up.dtype == int(ExpertDType::Int4) &&
      gate.rows == up.rows && gate.cols == up.cols) {
    gateUpInt4Kernel<<<dim3(int4RowBlocks(gate.rows, kInt4Rows), unsigned(pairs)), kInt4Warps * 32,
                       0, stream()>>>(x, topK, experts, gate, up, vec, act);
    return;
  }
  byFormat(gate.dtype == up.dtype ? gate.dtype : -1, [&](auto dt) {
    gateUpKernel<decltype(dt)::value>
        <<<dim3(rowBlocks(gate.rows), unsigned(pairs)), kWarps * 32, 0, stream()>>>(
            x, topK, experts, gate, up, vec, act);
  });
}

void moeDownDecode(const float* act, int64_t pairs, const int32_t* experts, const ExpertStack& down,
                   float* y) {
  if (pairs <= 0 || down.rows <= 0)
    return;
  const bool vec = vectorizable(down, act);
  countLaunches();
  if (down.dtype == int(ExpertDType::Int4)) {
    downInt4Kernel<<<dim3(int4RowBlocks(down.rows, 2 * kInt4Rows), unsigned(pairs)),
                     kInt4Warps * 32, 0, stream()>>>(act, experts, down, vec, y);
    return;
  }
  byFormat(down.dtype, [&](auto dt) {
    downKernel<decltype(dt)::value>
        <<<dim3(rowBlocks(down.rows), unsigned(pairs)), kWarps * 32, 0, stream()>>>(act, experts,
                                                                                    down, vec, y);
  });
}

void moeCombine(const float* y, const float* weights, const int32_t* experts, const int32_t* local,
                int numExperts, int64_t tokens, int topK, int64_t cols, const float* shared,
                const float* sharedScale, float* out) {
  if (tokens <= 0 || cols <= 0)
    return;
  countLaunches();
  combineKernel<<<blocksFor(tokens * cols), kThreads, 0, stream()>>>(
      y, weights, experts, local, numExperts, tokens, topK, cols, shared, sharedScale, out);
}

} // namespace kt::cuda
