// The widening of int8 and int4 expert stacks to bf16 over a slot list
// (kernels/cuda/QuantLinear.cu: int8StackToBf16, int4StackToBf16; the grouped prefill MoE's
// per-product step) and the per-item column scaling (scaleColumnsStack), bit for bit against host
// references built from the same element functions (kernels/cuda/QuantWiden.h) and against an
// independent rounding of the dequantized weights (runtime/support/DType.h's f32ToBf16). Slots out
// of order and repeated; odd shapes (the scalar path), shapes whose rows are 8-value multiples (the
// vector path), int4 rows whose last 128-column group is partial. The kernels' work units
// (QuantWiden.h) also run on the host over loops, so the indexing and the 8-value packing are
// checked without a GPU; the kernel tests skip there.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/QuantWiden.h"
#include "runtime/support/DType.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::randomVector;

namespace {

// Slots of 6 items over a stack of 5 slices: out of order, slice 3 three times, slice 2 never.
const std::vector<int32_t> kSlots = {3, 0, 3, 4, 1, 3};
constexpr int64_t kSlices = 5;

size_t mismatches(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  EXPECT_EQ(got.size(), want.size());
  size_t bad = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    bad += got[i] != want[i];
  return bad;
}

TEST(CudaQuantWiden, HostElementsAreTheDequantizedWeights) {
  // Runs without a GPU: the shared element functions against plain definitions.
  for (int q = -128; q <= 127; ++q)
    EXPECT_EQ(bf16ToF32(cuda::int8WidenedBits(int8_t(q))), float(q)) << q;
  std::mt19937 rng(3);
  std::vector<float> w = randomVector(rng, 300, 0.05f);
  w[7] = 0.f;
  std::vector<uint8_t> packed(size_t(cuda::int4RowBytes(300)));
  std::vector<uint16_t> scales(size_t(cuda::int4Groups(300)));
  cuda::quantizeInt4Row(w.data(), 300, packed.data(), scales.data());
  for (int64_t c = 0; c < 300; ++c) {
    const float d = cuda::int4ScaleValue(scales[size_t(c / cuda::kInt4Group)]);
    const uint16_t bits = cuda::int4WidenedBits(d, packed[size_t(c / 2)], c % 2 != 0);
    EXPECT_EQ(bits, f32ToBf16(cuda::int4Weight(packed.data(), scales.data(), 300, 0, c))) << c;
  }
}

// Item i = slice slots[i] of an int8 stack, element by element (each checked exact).
std::vector<uint16_t> int8Want(const std::vector<int8_t>& q, const std::vector<int32_t>& slots,
                               int64_t slice) {
  std::vector<uint16_t> want(slots.size() * size_t(slice));
  for (size_t i = 0; i < slots.size(); ++i)
    for (int64_t e = 0; e < slice; ++e) {
      const int8_t v = q[size_t(slots[i] * slice + e)];
      want[i * size_t(slice) + size_t(e)] = cuda::int8WidenedBits(v);
      EXPECT_EQ(bf16ToF32(want[i * size_t(slice) + size_t(e)]), float(v));
    }
  return want;
}

std::vector<int8_t> randomInt8(std::mt19937& rng, size_t n) {
  std::vector<int8_t> q(n);
  for (int8_t& v : q)
    v = int8_t(int(rng() % 256) - 128);
  return q;
}

// The int8 kernel's units run on the host (vec: the 8-value path).
std::vector<uint16_t> hostInt8Units(const std::vector<int8_t>& q, const std::vector<int32_t>& slots,
                                    int64_t slice, bool vec) {
  std::vector<uint16_t> out(slots.size() * size_t(slice), 0xffff);
  for (int64_t i = 0; i < int64_t(slots.size()); ++i) {
    const cuda::Int8WidenItem it =
        cuda::int8WidenItem(q.data(), slots.data(), i, slice, out.data());
    for (int64_t u = 0; u < cuda::int8WidenUnits(slice, vec); ++u)
      cuda::int8WidenUnit(it, u, vec);
  }
  return out;
}

// (n, k): n * k odd (scalar path), n * k % 8 == 0 (vector path), one row.
const std::pair<int64_t, int64_t> kInt8Shapes[] = {{37, 53}, {24, 40}, {1, 9}, {1, 8}};

TEST(CudaQuantWiden, Int8UnitsOnTheHost) {
  std::mt19937 rng(13);
  for (auto [n, k] : kInt8Shapes) {
    const int64_t slice = n * k;
    const std::vector<int8_t> q = randomInt8(rng, size_t(kSlices * slice));
    const std::vector<uint16_t> want = int8Want(q, kSlots, slice);
    EXPECT_EQ(mismatches(hostInt8Units(q, kSlots, slice, false), want), 0u) << n << " x " << k;
    if (slice % 8 == 0) {
      ASSERT_TRUE(cuda::int8WidenVec(q.data(), slice, want.data())); // heap blocks: 16-aligned
      EXPECT_EQ(mismatches(hostInt8Units(q, kSlots, slice, true), want), 0u)
          << n << " x " << k << " vec";
    }
  }
  // The vector path needs 8-value slices, an 8-byte aligned source and a 16-byte aligned output.
  alignas(16) int8_t q[32] = {};
  alignas(16) uint16_t out[32] = {};
  EXPECT_TRUE(cuda::int8WidenVec(q, 16, out));
  EXPECT_FALSE(cuda::int8WidenVec(q, 12, out));
  EXPECT_FALSE(cuda::int8WidenVec(q + 1, 16, out));
  EXPECT_FALSE(cuda::int8WidenVec(q, 16, out + 1));
}

TEST(CudaQuantWiden, Int8StackSlotsBitExact) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(17);
  for (auto [n, k] : kInt8Shapes) {
    const int64_t slice = n * k, items = int64_t(kSlots.size());
    const std::vector<int8_t> q = randomInt8(rng, size_t(kSlices * slice));
    const std::vector<uint16_t> want = int8Want(q, kSlots, slice);
    Dev dq(q), dSlots(kSlots), dOut(std::max(want.size(), size_t(kSlices * slice)) * 2);
    cuda::int8StackToBf16(dq.as<int8_t>(), dSlots.as<int32_t>(), items, slice, dOut.as<uint16_t>());
    EXPECT_EQ(mismatches(dOut.get<uint16_t>(want.size()), want), 0u) << n << " x " << k;
    // Null slots: slice i for item i.
    cuda::int8StackToBf16(dq.as<int8_t>(), nullptr, kSlices, slice, dOut.as<uint16_t>());
    std::vector<uint16_t> all(size_t(kSlices * slice));
    for (size_t e = 0; e < all.size(); ++e)
      all[e] = cuda::int8WidenedBits(q[e]);
    EXPECT_EQ(mismatches(dOut.get<uint16_t>(all.size()), all), 0u) << n << " x " << k << " null";
    // int8ToBf16 (Blas::linearInt8's row blocks) of one slice alone, at an odd offset (unaligned
    // source: the scalar path) and at slice 2's start: the stack's values.
    for (int64_t off : {int64_t(1), 2 * slice}) {
      const int64_t len = slice - (off == 1 ? 1 : 0);
      cuda::int8ToBf16(dq.as<int8_t>() + off, len, dOut.as<uint16_t>());
      const std::vector<uint16_t> one(all.begin() + off, all.begin() + off + len);
      EXPECT_EQ(mismatches(dOut.get<uint16_t>(size_t(len)), one), 0u)
          << n << " x " << k << " from " << off;
    }
  }
}

// A stack of `count` int4 [n, k] slices quantized from random weights (Int4Format.h layout).
struct Int4Stack {
  int64_t n, k;
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales;
  Int4Stack(std::mt19937& rng, int64_t count, int64_t n, int64_t k)
      : n(n), k(k), data(size_t(count * n * cuda::int4RowBytes(k))),
        scales(size_t(count * n * cuda::int4Groups(k))) {
    std::vector<float> w = randomVector(rng, size_t(count * n * k), 0.05f);
    for (int64_t r = 0; r < count * n; ++r) {
      if (r % 7 == 3) // rows of another magnitude: scales far apart
        for (int64_t c = 0; c < k; ++c)
          w[size_t(r * k + c)] *= 40.f;
      cuda::quantizeInt4Row(w.data() + r * k, k, data.data() + r * cuda::int4RowBytes(k),
                            scales.data() + r * cuda::int4Groups(k));
    }
  }
  // Element (r, c) of slice s widened on the host by the shared element function.
  uint16_t widened(int64_t s, int64_t r, int64_t c) const {
    const int64_t row = s * n + r;
    const float d = cuda::int4ScaleValue(scales[size_t(row * cuda::int4Groups(k) + c / 128)]);
    return cuda::int4WidenedBits(d, data[size_t(row * cuda::int4RowBytes(k) + c / 2)], c % 2 != 0);
  }
};

// Item i = slice slots[i] of an int4 stack, element by element, each checked against the
// dequantized weight d * q rounded to bf16 by DType.h.
std::vector<uint16_t> int4Want(const Int4Stack& st, const std::vector<int32_t>& slots) {
  const int64_t n = st.n, k = st.k, slice = n * k;
  std::vector<uint16_t> want(slots.size() * size_t(slice));
  for (size_t i = 0; i < slots.size(); ++i)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const int32_t s = slots[i];
        const uint16_t bits = st.widened(s, r, c);
        want[i * size_t(slice) + size_t(r * k + c)] = bits;
        EXPECT_EQ(bits,
                  f32ToBf16(cuda::int4Weight(st.data.data(), st.scales.data(), k, s * n + r, c)))
            << "slice " << s << " (" << r << ", " << c << ")";
      }
  return want;
}

std::vector<uint16_t> hostInt4Units(const Int4Stack& st, const std::vector<int32_t>& slots,
                                    bool vec) {
  std::vector<uint16_t> out(slots.size() * size_t(st.n * st.k), 0xffff);
  for (int64_t i = 0; i < int64_t(slots.size()); ++i) {
    const cuda::Int4WidenItem it = cuda::int4WidenItem(st.data.data(), st.scales.data(),
                                                       slots.data(), i, st.n, st.k, out.data());
    for (int64_t u = 0; u < cuda::int4WidenUnits(st.n, st.k, vec); ++u)
      cuda::int4WidenUnit(it, st.k, u, vec);
  }
  return out;
}

// (n, k): k % 8 != 0 (scalar path, last group 75 columns), k % 8 == 0 with a partial group (vector
// path, 200 = 128 + 72), whole groups, a k below one group.
const std::pair<int64_t, int64_t> kInt4Shapes[] = {{37, 203}, {24, 200}, {16, 256}, {3, 8}};

TEST(CudaQuantWiden, Int4UnitsOnTheHost) {
  std::mt19937 rng(19);
  for (auto [n, k] : kInt4Shapes) {
    const Int4Stack st(rng, kSlices, n, k);
    const std::vector<uint16_t> want = int4Want(st, kSlots);
    EXPECT_EQ(mismatches(hostInt4Units(st, kSlots, false), want), 0u) << n << " x " << k;
    if (k % 8 == 0) {
      ASSERT_TRUE(cuda::int4WidenVec(st.data.data(), k, want.data()));
      EXPECT_EQ(mismatches(hostInt4Units(st, kSlots, true), want), 0u) << n << " x " << k << " vec";
    }
  }
  alignas(16) uint8_t data[64] = {};
  alignas(16) uint16_t out[32] = {};
  EXPECT_TRUE(cuda::int4WidenVec(data, 16, out));
  EXPECT_FALSE(cuda::int4WidenVec(data, 12, out));
  EXPECT_FALSE(cuda::int4WidenVec(data + 2, 16, out));
  EXPECT_FALSE(cuda::int4WidenVec(data, 16, out + 4));
}

TEST(CudaQuantWiden, Int4StackSlotsBitExact) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(23);
  for (auto [n, k] : kInt4Shapes) {
    const Int4Stack st(rng, kSlices, n, k);
    const int64_t items = int64_t(kSlots.size());
    const std::vector<uint16_t> want = int4Want(st, kSlots);
    Dev dData(st.data), dScales(st.scales), dSlots(kSlots), dOut(want.size() * 2);
    cuda::int4StackToBf16(dData.as<uint8_t>(), dScales.as<uint16_t>(), dSlots.as<int32_t>(), items,
                          n, k, dOut.as<uint16_t>());
    EXPECT_EQ(mismatches(dOut.get<uint16_t>(want.size()), want), 0u) << n << " x " << k;
    // int4ToBf16 (Blas::linearInt4's row blocks) of slice 3 alone from its row 1: the same
    // elements as the stack's (item 0 is slice 3).
    const int64_t rows = n - 1;
    if (rows < 1)
      continue;
    cuda::int4ToBf16(dData.as<uint8_t>() + (3 * n + 1) * cuda::int4RowBytes(k),
                     dScales.as<uint16_t>() + (3 * n + 1) * cuda::int4Groups(k), rows, k,
                     dOut.as<uint16_t>());
    const std::vector<uint16_t> one(want.begin() + k, want.begin() + k + rows * k);
    EXPECT_EQ(mismatches(dOut.get<uint16_t>(one.size()), one), 0u) << n << " x " << k << " alone";
  }
}

// The item rows of scaleColumnsStack, on the host.
TEST(CudaQuantWiden, StackItemRows) {
  int64_t row0 = -1, end = -1;
  cuda::stackItemRows(nullptr, 2, 4, 5, 20, &row0, &end);
  EXPECT_EQ(row0, 10);
  EXPECT_EQ(end, 15);
  const int32_t starts[3] = {0, 3, 4};
  cuda::stackItemRows(starts, 1, 3, 0, 11, &row0, &end);
  EXPECT_EQ(row0, 3);
  EXPECT_EQ(end, 4);
  cuda::stackItemRows(starts, 2, 3, 0, 11, &row0, &end);
  EXPECT_EQ(row0, 4);
  EXPECT_EQ(end, 11);
}

TEST(CudaQuantWiden, ScaleColumnsPerItemPaddedAndRagged) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(29);
  const int64_t cols = 41, items = int64_t(kSlots.size());
  const std::vector<float> scales = randomVector(rng, size_t(kSlices * cols));
  // Padded: items of 5 rows; ragged: items of 3, 1, 7, 2, 4, 6 rows packed one after another.
  const std::vector<int32_t> raggedRows = {3, 1, 7, 2, 4, 6};
  for (bool ragged : {false, true}) {
    std::vector<int32_t> row0(static_cast<size_t>(items));
    int64_t total = 0;
    for (int64_t i = 0; i < items; ++i) {
      row0[size_t(i)] = int32_t(total);
      total += ragged ? raggedRows[size_t(i)] : 5;
    }
    const std::vector<float> y = randomVector(rng, size_t(total * cols));
    std::vector<float> want = y;
    for (int64_t i = 0; i < items; ++i) {
      const int64_t end = i + 1 < items ? row0[size_t(i) + 1] : total;
      for (int64_t r = row0[size_t(i)]; r < end; ++r)
        for (int64_t c = 0; c < cols; ++c)
          want[size_t(r * cols + c)] *= scales[size_t(kSlots[size_t(i)] * cols + c)];
    }
    Dev dy(y), dScales(scales), dSlots(kSlots), dRow0(row0);
    cuda::scaleColumnsStack(dy.as(), cols, items, ragged ? 0 : 5,
                            ragged ? dRow0.as<int32_t>() : nullptr, total, dScales.as(),
                            dSlots.as<int32_t>());
    const std::vector<float> got = dy.get(want.size());
    size_t bad = 0;
    for (size_t e = 0; e < want.size(); ++e)
      bad += got[e] != want[e]; // one f32 multiply each: bit for bit
    EXPECT_EQ(bad, 0u) << (ragged ? "ragged" : "padded");
  }
  // scaleColumns (Blas::linearInt8's pass) is the one-item case.
  const std::vector<float> y = randomVector(rng, size_t(9 * cols));
  std::vector<float> want = y;
  for (size_t e = 0; e < want.size(); ++e)
    want[e] *= scales[e % size_t(cols)];
  Dev dy(y), dScales(scales);
  cuda::scaleColumns(dy.as(), 9, cols, dScales.as());
  EXPECT_EQ(dy.get(want.size()), want);
}

TEST(CudaQuantWiden, FillSequence) {
  KT_REQUIRE_GPU();
  const int64_t n = 70000; // more than one block's worth
  Dev d(size_t(n) * 4);
  cuda::fillSequence(d.as<int32_t>(), n);
  const std::vector<int32_t> got = d.get<int32_t>(size_t(n));
  size_t bad = 0;
  for (int64_t i = 0; i < n; ++i)
    bad += got[size_t(i)] != int32_t(i);
  EXPECT_EQ(bad, 0u);
}

} // namespace
