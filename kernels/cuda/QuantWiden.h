#pragma once
// The one definition of how weight-only int8 and int4 weights widen to bf16 for the tensor-core
// products (prefill): the kernels of QuantLinear.cu (a matrix's row blocks for Blas::linearInt8 /
// linearInt4, and a slot list of an expert stack for the grouped prefill MoE) call these per
// element, and the tests build their host references from the very same functions. Plain C++
// header (host and device).
//   int8: q exactly (|q| <= 127 fits bf16's 8-bit significand); the row scale is applied to the
//         product's output columns afterwards, in f32.
//   int4: bf16(d * q) with the (row, 128-column group) f16 scale d folded in: d * q is exact in f32
//         (an 11-bit significand times |q| <= 8), the bf16 rounding then adds at most 2^-9 of the
//         weight. Byte layout: Int4Format.h.
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/PackedWiden.h" // widen::asBits, widen::toBf16 (round to nearest even)

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define KT_WIDEN_HD __host__ __device__
#else
#define KT_WIDEN_HD
#endif
#ifdef __CUDA_ARCH__
#define KT_WIDEN_UNROLL _Pragma("unroll")
#else
#define KT_WIDEN_UNROLL
#endif

namespace kt::cuda {

// An int8 weight as bf16 bits: exact, the top half of its f32.
KT_WIDEN_HD inline uint16_t int8WidenedBits(int8_t q) {
  return uint16_t(widen::asBits(float(q)) >> 16);
}

// An f16 scale's value (exact on both sides).
KT_WIDEN_HD inline float widenF16Value(uint16_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  return int4ScaleValue(h);
#endif
}

// An int4 weight as bf16 bits: bf16(d * q) for the nibble of `byte` (high: the odd column), d the
// f32 value of its group's scale.
KT_WIDEN_HD inline uint16_t int4WidenedBits(float d, uint8_t byte, bool high) {
  const int q = int(high ? byte >> 4 : byte & 0x0f) - 8;
  return widen::toBf16(d * float(q));
}

// ---- The stack-widening kernels' work, one unit at a time (QuantLinear.cu runs the units over
// a grid; test/unit/cuda/quant_widen_test.cpp runs the same functions over loops on the host, so
// the indexing and the 8-value packing are checked without a GPU too). Item i of a widening
// reads slice slots[i] (slots null: slice i) of the stack and writes out item i, row-major
// [n, k] bf16 bits at out + i * n * k. vec: 8 values a unit (one 8- or 4-byte load, one 16-byte
// store), for aligned pointers and rows of a multiple of 8 values (int8WidenVec / int4WidenVec).

// Loads and stores of the vector units: aligned vector accesses on the device, memcpy on the host.
KT_WIDEN_HD inline uint64_t widenLoad8(const void* p) {
#ifdef __CUDA_ARCH__
  return *static_cast<const unsigned long long*>(p);
#else
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
#endif
}
// Stores 8 bf16 values: w[j] holds values 2j (low half) and 2j + 1 (high half).
KT_WIDEN_HD inline void widenStore16(uint16_t* p, const uint32_t (&w)[4]) {
#ifdef __CUDA_ARCH__
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
#else
  std::memcpy(p, w, 16);
#endif
}

struct Int8WidenItem {
  const int8_t* src = nullptr;
  uint16_t* dst = nullptr;
};
KT_WIDEN_HD inline Int8WidenItem int8WidenItem(const int8_t* q, const int32_t* slots, int64_t i,
                                               int64_t sliceElems, uint16_t* out) {
  return {q + (slots ? int64_t(slots[i]) : i) * sliceElems, out + i * sliceElems};
}
KT_WIDEN_HD inline int64_t int8WidenUnits(int64_t sliceElems, bool vec) {
  return vec ? sliceElems / 8 : sliceElems;
}
KT_WIDEN_HD inline void int8WidenUnit(const Int8WidenItem& it, int64_t u, bool vec) {
  if (!vec) {
    it.dst[u] = int8WidenedBits(it.src[u]);
    return;
  }
  const uint64_t v = widenLoad8(it.src + u * 8); // values 0..7 in bytes 0..7 (little-endian)
  uint32_t w[4];
  KT_WIDEN_UNROLL
  for (int j = 0; j < 4; ++j)
    w[j] = uint32_t(int8WidenedBits(int8_t(uint8_t(v >> (16 * j))))) |
           (uint32_t(int8WidenedBits(int8_t(uint8_t(v >> (16 * j + 8))))) << 16);
  widenStore16(it.dst + u * 8, w);
}
inline bool int8WidenVec(const void* q, int64_t sliceElems, const void* out) {
  return sliceElems % 8 == 0 && reinterpret_cast<uintptr_t>(q) % 8 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

// int4: data slices of n * int4RowBytes(k) bytes, scale slices of n * int4Groups(k).
struct Int4WidenItem {
  const uint8_t* data = nullptr;
  const uint16_t* scales = nullptr;
  uint16_t* dst = nullptr;
};
KT_WIDEN_HD inline Int4WidenItem int4WidenItem(const uint8_t* data, const uint16_t* scales,
                                               const int32_t* slots, int64_t i, int64_t n,
                                               int64_t k, uint16_t* out) {
  const int64_t slice = slots ? int64_t(slots[i]) : i;
  return {data + slice * n * int4RowBytes(k), scales + slice * n * int4Groups(k), out + i * n * k};
}
KT_WIDEN_HD inline int64_t int4WidenUnits(int64_t n, int64_t k, bool vec) {
  return n * (vec ? k / 8 : k);
}
// Unit u: row u / (units per row); its 8 columns (vec: k % 8 == 0, so they never straddle a
// 128-column group and share one scale) or its one column.
KT_WIDEN_HD inline void int4WidenUnit(const Int4WidenItem& it, int64_t k, int64_t u, bool vec) {
  const int64_t perRow = vec ? k / 8 : k, r = u / perRow, c0 = (u % perRow) * (vec ? 8 : 1);
  const float d = widenF16Value(it.scales[r * int4Groups(k) + c0 / kInt4Group]);
  const uint8_t* row = it.data + r * int4RowBytes(k);
  if (!vec) {
    it.dst[r * k + c0] = int4WidenedBits(d, row[c0 / 2], c0 % 2 != 0);
    return;
  }
  const uint32_t v = widen::load32(row + c0 / 2); // byte j: columns c0 + 2j (low), c0 + 2j + 1
  uint32_t w[4];
  KT_WIDEN_UNROLL
  for (int j = 0; j < 4; ++j) {
    const uint8_t byte = uint8_t(v >> (8 * j));
    w[j] = uint32_t(int4WidenedBits(d, byte, false)) |
           (uint32_t(int4WidenedBits(d, byte, true)) << 16);
  }
  widenStore16(it.dst + r * k + c0, w);
}
inline bool int4WidenVec(const void* data, int64_t k, const void* out) {
  return k % 8 == 0 && reinterpret_cast<uintptr_t>(data) % 4 == 0 &&
         reinterpret_cast<uintptr_t>(out) % 16 == 0;
}

// Rows [*row0, *end) of item i of a stacked product (scaleColumnsStack): itemRow0[i] ..
// itemRow0[i + 1] (the last item to totalRows) when itemRow0 is given, else i * rowsPerItem ..
// (i + 1) * rowsPerItem.
KT_WIDEN_HD inline void stackItemRows(const int32_t* itemRow0, int64_t i, int64_t items,
                                      int64_t rowsPerItem, int64_t totalRows, int64_t* row0,
                                      int64_t* end) {
  if (!itemRow0) {
    *row0 = i * rowsPerItem;
    *end = *row0 + rowsPerItem;
    return;
  }
  *row0 = itemRow0[i];
  *end = i + 1 < items ? int64_t(itemRow0[i + 1]) : totalRows;
}

} // namespace kt::cuda
