#pragma once
// A warp's dot products with R rows of weight-only int4 matrices (Int4Format.h) at once, shared by
// the int4 GEMV (QuantLinear.cu, T tokens) and the decode MoE kernels (MoeDecode.cu, gate and up
// rows of one expert together). Why several rows per warp: a 2,048-column int4 row is only 1 KiB,
// two 16-byte chunks per lane, so with one row per warp the fixed costs (scale loads, the
// reduction) and above all the activation loads dominated: every 16 bytes of nibbles need 128
// bytes of f32 activations per token from L1, four times int8's ratio, which made int4 decode
// slower than int8 on an H100 despite half the bytes. Here lane l covers chunks l, l + 32, ... of
// all R rows (the same columns), so each activation load serves R rows, the R chunk loads (and
// their scales) of the next step are issued before the current step's arithmetic, and the
// caller reduces R * T sums across the warp once per R rows.
#include "kernels/cuda/Int4Format.h"

#include <cuda_fp16.h>

#include <cstdint>

namespace kt::cuda {

// Word q (0..3) of a 16-byte chunk; q is a constant after unrolling, so this is a register pick.
__device__ inline uint32_t int4Word(const uint4& v, int q) {
  return q == 0 ? v.x : q == 1 ? v.y : q == 2 ? v.z : v.w;
}

// w[i] = q of column i of the 8 packed in `word` (u - 8), exactly, with one LOP3 and one FFMA per
// value and one shift per word. Why: the integer pipe (64 lanes per SM and cycle on sm_90, half
// the FP32 pipe) bounded the old unpack (shift, mask, OR per value). The bits 0x4B000000 | (u <<
// 4i) are the float 2^23 + u * 16^i for any nibble below bit 20 (the mantissa holds it), so
// nibbles 0..3 of the low half and, after one shift by 16, of the high half come out of one
// mask-and-OR each; fma(f, 16^-i, -(2^(23-4i) + 8)) then gives u - 8: f * 16^-i is exact (a power
// of two) and the fused add rounds only the exact result u - 8, which is representable.
__device__ inline void unpackInt4x8(uint32_t word, float* w) {
  const uint32_t halves[2] = {word, word >> 16};
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float f = __uint_as_float(0x4B000000u | (halves[h] & (0xfu << (4 * i))));
      const float scale = 1.0f / float(1 << (4 * i));                // 16^-i, exact
      const float bias = -(8388608.0f / float(1 << (4 * i)) + 8.0f); // -(2^(23-4i) + 8), exact
      w[4 * h + i] = fmaf(f, scale, bias);
    }
}

// acc[r][t] += sum over c < k of (d_r * q_r)[c] * x[t * xStride + c] for r < R, t < T, over this
// lane's chunks of the packed rows rows[r] (int4RowBytes(k) bytes each, 16-byte aligned) with
// their group scales scales[r] (int4Groups(k) each). xVec: x and xStride allow 16-byte activation
// loads (x 16-byte aligned, xStride % 4 == 0); the chunk that crosses k reads its activations one
// by one either way (columns past k count as 0; their weights are q = 0 anyway). The group scale
// is applied per chunk (a chunk is 32 columns of one group). Registers: the next step's R chunks
// and scales, the current ones, R * 8 unpacked weights and 2 * R * T sums.
template <int T, int R>
__device__ inline void int4RowsDot(const uint8_t* const (&rows)[R],
                                   const uint16_t* const (&scales)[R], const float* x,
                                   int64_t xStride, int64_t k, bool xVec, float (&acc)[R][T]) {
  const int lane = int(threadIdx.x) % 32;
  const int64_t chunks = (k + 31) / 32;
  uint4 next[R];
  uint16_t nextD[R];
  if (lane < chunks) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      next[r] = __ldg(reinterpret_cast<const uint4*>(rows[r]) + lane);
      nextD[r] = __ldg(scales[r] + lane / 4);
    }
  } else { // the loop below does not run
#pragma unroll
    for (int r = 0; r < R; ++r) {
      next[r] = make_uint4(0, 0, 0, 0);
      nextD[r] = 0;
    }
  }
  for (int64_t j = lane; j < chunks; j += 32) {
    uint4 cur[R];
    float d[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      cur[r] = next[r];
      d[r] = __half2float(__ushort_as_half(nextD[r]));
    }
    if (j + 32 < chunks) { // the next step's loads fly while this step computes
#pragma unroll
      for (int r = 0; r < R; ++r) {
        next[r] = __ldg(reinterpret_cast<const uint4*>(rows[r]) + j + 32);
        nextD[r] = __ldg(scales[r] + (j + 32) / 4);
      }
    }
    const int64_t c0 = j * 32;
    const bool vec = xVec && c0 + 32 <= k;
    float s[R][T];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < T; ++t)
        s[r][t] = 0.f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float w[R][8];
#pragma unroll
      for (int r = 0; r < R; ++r)
        unpackInt4x8(int4Word(cur[r], q), w[r]);
      const int64_t c = c0 + 8 * q;
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float* xt = x + t * xStride + c;
        float xs[8];
        if (vec) {
          const float4 a = *reinterpret_cast<const float4*>(xt);
          const float4 b = *reinterpret_cast<const float4*>(xt + 4);
          xs[0] = a.x, xs[1] = a.y, xs[2] = a.z, xs[3] = a.w;
          xs[4] = b.x, xs[5] = b.y, xs[6] = b.z, xs[7] = b.w;
        } else {
#pragma unroll // static indices keep xs in registers
          for (int i = 0; i < 8; ++i)
            xs[i] = c + i < k ? xt[i] : 0.f;
        }
#pragma unroll
        for (int r = 0; r < R; ++r)
          s[r][t] += w[r][0] * xs[0] + w[r][1] * xs[1] + w[r][2] * xs[2] + w[r][3] * xs[3] +
                     w[r][4] * xs[4] + w[r][5] * xs[5] + w[r][6] * xs[6] + w[r][7] * xs[7];
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < T; ++t)
        acc[r][t] += d[r] * s[r][t];
  }
}

// Sums v across the warp (every lane gets the sum).
__device__ inline float int4WarpSum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// y[t * n + row] = x[t] . (d * q)[row] for t < T and every row < n of one int4 matrix [n, k]: a
// warp per R consecutive rows (blockDim.x / 32 warps per block), the last warp's rows past n
// clamped to row n - 1 for reading and not written. Launched by gemvInt4 (QuantLinear.cu); here so
// that the timing harness (bench/cuda) can launch other R and block sizes of the same kernel.
template <int T, int R>
__global__ void gemvInt4RowsKernel(const float* __restrict__ x, const uint8_t* __restrict__ data,
                                   const uint16_t* __restrict__ scales, int64_t n, int64_t k,
                                   bool xVec, float* __restrict__ y) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row0 = (int64_t(blockIdx.x) * (blockDim.x / 32) + warp) * R;
  if (row0 >= n)
    return;
  const int64_t rowBytes = int4RowBytes(k), groups = int4Groups(k);
  const uint8_t* rows[R];
  const uint16_t* rowScales[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = row0 + r < n ? row0 + r : n - 1;
    rows[r] = data + row * rowBytes;
    rowScales[r] = scales + row * groups;
  }
  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t)
      acc[r][t] = 0.f;
  int4RowsDot<T, R>(rows, rowScales, x, k, k, xVec, acc);
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < T; ++t) {
      const float sum = int4WarpSum(acc[r][t]);
      if (lane == (r * T + t) % 32 && row0 + r < n) // spread the stores over lanes
        y[t * n + row0 + r] = sum;
    }
}

} // namespace kt::cuda
