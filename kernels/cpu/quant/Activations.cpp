// The scalar definition of prepared activations (see ActLayout in Layout.h). SIMD preparation
// (MatmulAvx512.cpp) must produce the same bytes; the kernels only ever see these buffers.
#include "kernels/cpu/quant/Layout.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <cmath>
#include <cstring>

namespace kt::cpu::quant {
using namespace detail;

size_t activationBytesFor(ActMode mode, WeightFormat f, int64_t k, int64_t rows) {
  return makeActLayout(mode, f, k, rows, rows).totalBytes;
}

void prepareActivationsRef(ActMode mode, WeightFormat f, const float* x, int64_t k, int64_t t,
                           int64_t rows, uint8_t* buf) {
  const ActLayout A = makeActLayout(mode, f, k, t, rows);
  std::memset(buf, 0, A.totalBytes); // padding columns and rows are zero
  for (int64_t r = 0; r < t; ++r) {
    const float* xr = x + r * k;
    uint8_t* row = buf + size_t(r) * A.rowBytes;
    if (mode == ActMode::F32) {
      std::memcpy(row, xr, size_t(k) * 4);
      continue;
    }
    if (mode == ActMode::Bf16) {
      uint16_t* o = reinterpret_cast<uint16_t*>(row);
      for (int64_t c = 0; c < k; ++c)
        o[c] = f32ToBf16(xr[c]);
      continue;
    }
    int8_t* q = reinterpret_cast<int8_t*>(row);
    float* scale = reinterpret_cast<float*>(buf + A.scaleOff) + r * A.blocks;
    float* sumf = reinterpret_cast<float*>(buf + A.sumfOff) + r * A.blocks;
    int32_t* sumq = reinterpret_cast<int32_t*>(buf + A.sumqOff) + r * A.blocks;
    for (int64_t b = 0; b < A.blocks; ++b) {
      const int64_t c0 = b * A.blockSize;
      const int64_t c1 = c0 + A.blockSize < k ? c0 + A.blockSize : k;
      // Symmetric: s = max|x| / 127 and q = rint(x * (127 / max|x|)) — the exact operation
      // sequence the SIMD version uses (one f32 multiply, round-to-nearest-even).
      float amax = 0.f;
      bool bad = false;
      for (int64_t c = c0; c < c1; ++c) {
        float a = std::fabs(xr[c]);
        if (!(a <= 3.402823466e38f))
          bad = true; // inf or NaN
        else if (a > amax)
          amax = a;
      }
      const float s = amax / 127.f;
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      int32_t sum = 0;
      if (!bad)
        for (int64_t c = c0; c < c1; ++c) {
          int v = int(std::nearbyint(xr[c] * inv));
          q[c] = int8_t(v);
          sum += v;
        }
      scale[b] = bad ? NAN : s;
      sumq[b] = sum;
      sumf[b] = bad ? NAN : s * float(sum);
    }
  }
}

} // namespace kt::cpu::quant
