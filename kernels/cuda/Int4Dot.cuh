#pragma once
// A warp's dot products with one row of a weight-only int4 matrix (Int4Format.h), shared by the
// int4 GEMV (QuantLinear.cu, T tokens at once) and the decode MoE kernels (MoeDecode.cu, one
// token per pair). Bandwidth first: lane l streams the row's 16-byte chunks l, l + 32, ... (32
// columns each, all in one 128-column group, so one f16 scale per chunk), unpacks the nibbles in
// registers and keeps f32 sums; the caller reduces across the warp.
#include <cuda_fp16.h>

#include <cstdint>

namespace kt::cuda {

// w[i] = q of column i of the 8 packed in `word` (u - 8 by the exponent trick: the bits
// 0x4B000000 | u are the float 2^23 + u, exact, so one OR and one subtraction per value instead
// of a slow integer-to-float conversion).
__device__ inline void unpackInt4x8(uint32_t word, float* w) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
    w[i] = __uint_as_float(0x4B000000u | ((word >> (4 * i)) & 0xfu)) - 8388616.0f;
}

// acc[t] += sum over c < k of (d * q)[c] * x[t * xStride + c] for t < T, over this lane's chunks
// of the packed row `row` (int4RowBytes(k) bytes, 16-byte aligned) with its group scales.
// xVec: x and xStride allow 16-byte activation loads (x 16-byte aligned, xStride % 4 == 0); the
// chunk that crosses k reads its activations one by one either way. A chunk is unpacked 8 values
// at a time, which keeps the registers for the unpacked weights at 8.
template <int T>
__device__ inline void int4RowDot(const uint8_t* __restrict__ row,
                                  const uint16_t* __restrict__ scales, const float* x,
                                  int64_t xStride, int64_t k, bool xVec, float* acc) {
  const int lane = int(threadIdx.x) % 32;
  const int64_t chunks = (k + 31) / 32;
  const uint4* chunk = reinterpret_cast<const uint4*>(row);
  // The next chunk's load is issued before this one's arithmetic, so that two of a lane's loads
  // are in flight (rows of 2,048 columns are two chunks per lane).
  uint4 next = lane < chunks ? __ldg(chunk + lane) : make_uint4(0, 0, 0, 0);
  for (int64_t j = lane; j < chunks; j += 32) {
    const uint4 packed = next;
    if (j + 32 < chunks)
      next = __ldg(chunk + j + 32);
    const float d = __half2float(__ushort_as_half(__ldg(scales + j / 4)));
    const int64_t c0 = j * 32;
    const bool vec = xVec && c0 + 32 <= k;
    const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
    float s[T];
#pragma unroll
    for (int t = 0; t < T; ++t)
      s[t] = 0.f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float w[8];
      unpackInt4x8(words[q], w);
      const int64_t c = c0 + 8 * q;
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float* xt = x + t * xStride + c;
        if (vec) {
          const float4 a = *reinterpret_cast<const float4*>(xt);
          const float4 b = *reinterpret_cast<const float4*>(xt + 4);
          s[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y +
                  w[6] * b.z + w[7] * b.w;
        } else {
#pragma unroll // static indices keep w in registers
          for (int i = 0; i < 8; ++i)
            if (c + i < k)
              s[t] += w[i] * xt[i];
        }
      }
    }
#pragma unroll
    for (int t = 0; t < T; ++t)
      acc[t] += d * s[t];
  }
}

} // namespace kt::cuda
