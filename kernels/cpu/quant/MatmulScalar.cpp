// Scalar code: the reference (the definition every faster path is tested against) and the portable
// Isa::Scalar kernel. Baseline flags only.
#include "kernels/cpu/quant/Kernels.h"
#include "kernels/cpu/quant/Layout.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <cstring>
#include <vector>

namespace kt::cpu::quant {
using namespace detail;

namespace {

uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float loadF(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// Exact dequantization of row r: every product below is exact in double.
void dequantRowExact(const Layout& L, const uint8_t* blob, int64_t r, double* out) {
  const uint8_t* panel = panelPtr(L, blob, r / 16);
  const int i = int(r % 16);
  for (int64_t c = 0; c < L.k; ++c) {
    switch (L.fmt) {
    case WeightFormat::F32:
      out[c] = loadF(panel + size_t(c) * 64 + i * 4);
      break;
    case WeightFormat::BF16:
      out[c] = bf16ToF32(load16(panel + size_t(c / 2) * 64 + i * 4 + (c % 2) * 2));
      break;
    case WeightFormat::Int8:
      out[c] = double(int(panel[(c / 4) * 64 + i * 4 + c % 4]) - 128) *
               double(loadF(panel + L.scaleOff + i * 4));
      break;
    default: {
      const int64_t g = c / L.group;
      const uint8_t byte = panel[size_t(c / 8) * 64 + i * 4 + (c % 4)];
      const int u = (c % 8) < 4 ? (byte & 15) : (byte >> 4);
      const double d = f16ToF32(load16(panel + L.scaleOff + size_t(g * 16 + i) * 2));
      out[c] = L.asym ? d * u + double(f16ToF32(load16(panel + L.minOff + size_t(g * 16 + i) * 2)))
                      : d * (u - 8);
    }
    }
  }
}

void refProduct(const Layout& L, const uint8_t* packed, const double* x, int64_t t, float* y) {
  std::vector<double> w(size_t(L.k) + 1);
  for (int64_t r = 0; r < L.n; ++r) {
    dequantRowExact(L, packed, r, w.data());
    for (int64_t s = 0; s < t; ++s) {
      double acc = 0;
      for (int64_t c = 0; c < L.k; ++c)
        acc += x[s * L.k + c] * w[c];
      y[s * L.n + r] = float(acc);
    }
  }
}

} // namespace

void matmulRef(WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, const float* x,
               int64_t t, float* y) {
  matmulRefAct(ActMode::F32, f, packed, n, k, x, t, y);
}

void matmulRefAct(ActMode mode, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                  const float* x, int64_t t, float* y) {
  if (n <= 0 || t <= 0 || k < 0)
    return;
  const Layout L = makeLayout(f, n, k);
  std::vector<double> xd(size_t(t * k) + 1);
  if (mode == ActMode::F32) {
    for (int64_t i = 0; i < t * k; ++i)
      xd[i] = x[i];
  } else {
    // Decode the prepared buffer: x' = bf16(x), or s_block * q.
    const ActLayout A = makeActLayout(mode, f, k, t, t);
    std::vector<uint8_t> buf(A.totalBytes + 1);
    prepareActivationsRef(mode, f, x, k, t, t, buf.data());
    for (int64_t s = 0; s < t; ++s) {
      const uint8_t* row = buf.data() + size_t(s) * A.rowBytes;
      for (int64_t c = 0; c < k; ++c) {
        if (mode == ActMode::Bf16) {
          xd[s * k + c] = bf16ToF32(load16(row + 2 * c));
        } else {
          const int64_t b = c / A.blockSize;
          const float sc = loadF(buf.data() + A.scaleOff + size_t(s * A.blocks + b) * 4);
          xd[s * k + c] = double(sc) * double(int8_t(row[c]));
        }
      }
    }
  }
  refProduct(L, packed, xd.data(), t, y);
}

namespace detail {

// Columns [k0, k0+kc) of a panel as f32 [kc][16] (the format switch and the scale conversions
// hoisted out of the element loops; f32 panels are used in place).
static const float* dequantChunk(const Layout& L, const uint8_t* panel, int64_t k0, int64_t kc,
                                 float* out) {
  switch (L.fmt) {
  case WeightFormat::F32:
    return reinterpret_cast<const float*>(panel) + k0 * 16;
  case WeightFormat::BF16:
    for (int64_t c = 0; c < kc; ++c) {
      const uint8_t* line = panel + size_t((k0 + c) / 2) * 64 + ((k0 + c) % 2) * 2;
      for (int i = 0; i < 16; ++i)
        out[c * 16 + i] = bf16ToF32(load16(line + i * 4));
    }
    return out;
  case WeightFormat::Int8: {
    float sc[16];
    std::memcpy(sc, panel + L.scaleOff, sizeof sc);
    for (int64_t c = 0; c < kc; ++c) {
      const uint8_t* line = panel + size_t((k0 + c) / 4) * 64 + (k0 + c) % 4;
      for (int i = 0; i < 16; ++i)
        out[c * 16 + i] = float(int(line[i * 4]) - 128) * sc[i];
    }
    return out;
  }
  default:
    break;
  }
  float d[16], m[16];
  for (int64_t c = 0; c < kc; ++c) {
    const int64_t kk = k0 + c;
    if (kk % L.group == 0 || c == 0) { // new group: convert its 16 scales (and mins) once
      const int64_t g = kk / L.group;
      for (int i = 0; i < 16; ++i) {
        d[i] = f16ToF32(load16(panel + L.scaleOff + size_t(g * 16 + i) * 2));
        m[i] = L.asym ? f16ToF32(load16(panel + L.minOff + size_t(g * 16 + i) * 2)) : -8.f * d[i];
      }
    }
    const uint8_t* line = panel + size_t(kk / 8) * 64 + (kk % 4);
    const int shift = (kk % 8) < 4 ? 0 : 4;
    for (int i = 0; i < 16; ++i)
      out[c * 16 + i] = d[i] * float((line[i * 4] >> shift) & 15) + m[i];
  }
  return out;
}

// Portable kernel: per 16-row panel, dequantize 256-column chunks to f32 [kc][16] and accumulate
// all tokens from that L1-resident chunk, so each weight byte is read from memory once.
void matmulScalarKernel(const Job& j, float* scratch) {
  const Layout& L = j.w;
  const ActLayout& A = j.a;
  float* buf = scratch;                // [kChunkK][16]
  float* acc = scratch + kChunkK * 16; // [t][16]
  const int64_t p0 = j.n0 / 16, p1 = (j.n1 + 15) / 16;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = panelPtr(L, j.packed, p);
    for (int64_t i = 0; i < A.t * 16; ++i)
      acc[i] = 0.f;
    for (int64_t k0 = 0; k0 < L.kp; k0 += kChunkK) {
      const int64_t kc = L.kp - k0 < kChunkK ? L.kp - k0 : kChunkK;
      const float* B = dequantChunk(L, panel, k0, kc, buf);
      for (int64_t s = 0; s < A.t; ++s) {
        const float* x = reinterpret_cast<const float*>(j.act + size_t(s) * A.rowBytes) + k0;
        float* a = acc + s * 16;
        for (int64_t c = 0; c < kc; ++c)
          for (int i = 0; i < 16; ++i)
            a[i] += B[c * 16 + i] * x[c];
      }
    }
    for (int64_t s = 0; s < A.t; ++s)
      for (int i = 0; i < 16; ++i) {
        const int64_t r = p * 16 + i;
        if (r >= j.n0 && r < j.n1)
          j.y[s * L.n + r] = acc[s * 16 + i];
      }
  }
}

} // namespace detail
} // namespace kt::cpu::quant
