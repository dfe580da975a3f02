// Format names, quantizers and the packer (f32/bf16/f16 rows -> packed blob, see Layout.h), the
// blob checker and row dequantization. Compiled with baseline flags: runs on any x86-64.
#include "kernels/cpu/quant/Layout.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace kt::cpu::quant {
using namespace detail;

const char* formatName(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return "f32";
  case WeightFormat::BF16:
    return "bf16";
  case WeightFormat::Int8:
    return "int8";
  case WeightFormat::Int4G32Sym:
    return "int4:g32";
  case WeightFormat::Int4G32Asym:
    return "int4:g32:asym";
  case WeightFormat::Int4G128Sym:
    return "int4:g128";
  case WeightFormat::Int4G128Asym:
    return "int4:g128:asym";
  }
  return "?";
}

bool parseFormat(std::string_view s, WeightFormat* out) {
  for (WeightFormat f : kAllWeightFormats)
    if (s == formatName(f)) {
      *out = f;
      return true;
    }
  // Accepted spellings of the same formats.
  if (s == "int4:g32:sym")
    return *out = WeightFormat::Int4G32Sym, true;
  if (s == "int4:g128:sym")
    return *out = WeightFormat::Int4G128Sym, true;
  if (s == "int8:sym")
    return *out = WeightFormat::Int8, true;
  return false;
}

bool isInt4(WeightFormat f) {
  return int4Format(f);
}
int64_t groupSize(WeightFormat f) {
  return int4Format(f) ? kAlignOf(f) : 0;
}

size_t packedBytes(WeightFormat f, int64_t n, int64_t k) {
  if (n < 0 || k < 0)
    return 0;
  if (f == WeightFormat::Int8 && k > kInt8MaxK)
    return 0;
  return makeLayout(f, n, k).totalBytes;
}

namespace {

// Round-to-nearest-even bf16 that keeps denormals (weights: bf16 -> f32 -> bf16 is the identity).
uint16_t weightToBf16(float f) {
  uint32_t u = bitsOf(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float clampF16(float v) {
  return std::max(-65504.f, std::min(65504.f, v));
}

bool allFinite(const float* v, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(v[i]))
      return false;
  return true;
}

// rows: 16 rows of kp floats (zero beyond k and beyond n).
void packPanel(const Layout& L, const float* rows, uint8_t* panel) {
  const int64_t kp = L.kp, k = L.k;
  switch (L.fmt) {
  case WeightFormat::F32: {
    float* o = reinterpret_cast<float*>(panel);
    for (int64_t c = 0; c < kp; ++c)
      for (int i = 0; i < 16; ++i)
        o[c * 16 + i] = rows[i * kp + c];
    return;
  }
  case WeightFormat::BF16: {
    uint16_t* o = reinterpret_cast<uint16_t*>(panel);
    for (int64_t j = 0; j < kp / 2; ++j)
      for (int i = 0; i < 16; ++i) {
        o[j * 32 + 2 * i] = weightToBf16(rows[i * kp + 2 * j]);
        o[j * 32 + 2 * i + 1] = weightToBf16(rows[i * kp + 2 * j + 1]);
      }
    return;
  }
  case WeightFormat::Int8: {
    float* scales = reinterpret_cast<float*>(panel + L.scaleOff);
    for (int i = 0; i < 16; ++i) {
      const float* r = rows + i * kp;
      float amax = 0.f;
      for (int64_t c = 0; c < k; ++c)
        amax = std::max(amax, std::fabs(r[c]));
      bool finite = allFinite(r, k);
      float s = finite ? amax / 127.f : NAN;
      scales[i] = s;
      for (int64_t c = 0; c < kp; ++c) {
        int q = 0;
        if (finite && s > 0.f)
          q = std::max(-127, std::min(127, int(std::nearbyint(r[c] / s))));
        panel[(c / 4) * 64 + i * 4 + (c % 4)] = uint8_t(q + 128);
      }
    }
    return;
  }
  default:
    break;
  }
  // int4
  const int64_t G = L.group;
  uint16_t* dS = reinterpret_cast<uint16_t*>(panel + L.scaleOff);
  uint16_t* mS = reinterpret_cast<uint16_t*>(panel + L.minOff);
  uint8_t u[128];
  for (int64_t g = 0; g < L.groups; ++g) {
    const int64_t c0 = g * G, valid = std::max<int64_t>(0, std::min(G, k - c0));
    for (int i = 0; i < 16; ++i) {
      const float* r = rows + i * kp + c0;
      bool finite = allFinite(r, valid);
      if (!L.asym) {
        // Q4_0-style: the value of largest magnitude maps to -8 exactly; the scale is signed.
        float m = 0.f;
        for (int64_t c = 0; c < valid; ++c)
          if (std::fabs(r[c]) > std::fabs(m))
            m = r[c];
        uint16_t dh = finite ? f32ToF16(clampF16(m / -8.f)) : uint16_t(0x7e00);
        float d = f16ToF32(dh);
        dS[g * 16 + i] = dh;
        for (int64_t c = 0; c < G; ++c) {
          int q = 0;
          if (finite && d != 0.f && c < valid)
            q = std::max(-8, std::min(7, int(std::nearbyint(r[c] / d))));
          u[c] = uint8_t(q + 8);
        }
      } else {
        float lo = 0.f, hi = 0.f;
        if (valid > 0)
          lo = hi = r[0];
        for (int64_t c = 1; c < valid; ++c)
          lo = std::min(lo, r[c]), hi = std::max(hi, r[c]);
        uint16_t mh = finite ? f32ToF16(clampF16(lo)) : uint16_t(0x7e00);
        uint16_t dh = finite ? f32ToF16(clampF16((hi - lo) / 15.f)) : uint16_t(0x7e00);
        float mn = f16ToF32(mh), d = f16ToF32(dh);
        dS[g * 16 + i] = dh;
        mS[g * 16 + i] = mh;
        for (int64_t c = 0; c < G; ++c) {
          int q = 0;
          if (finite && d != 0.f && c < valid)
            q = std::max(0, std::min(15, int(std::nearbyint((r[c] - mn) / d))));
          u[c] = uint8_t(q);
        }
      }
      // Scatter the nibbles: line j of the group, byte 4i+c: lo = k 8j+c, hi = k 8j+4+c.
      for (int64_t j = 0; j < G / 8; ++j) {
        uint8_t* line = panel + size_t(c0 + 8 * j) * 8; // 8 bytes per k-column of 16 rows
        for (int c = 0; c < 4; ++c)
          line[4 * i + c] = uint8_t(u[8 * j + c] | (u[8 * j + 4 + c] << 4));
      }
    }
  }
}

void writeHeader(const Layout& L, uint8_t* out) {
  PackedHeader h;
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, "KTQW", 4);
  h.version = kPackedVersion;
  h.format = uint32_t(L.fmt);
  h.rowBlock = 16;
  h.n = L.n;
  h.k = L.k;
  h.panelBytes = L.panelBytes;
  h.totalBytes = L.totalBytes;
  std::memcpy(out, &h, sizeof h);
}

} // namespace

void packWeights(WeightFormat f, int64_t n, int64_t k,
                 const std::function<void(int64_t row, float* out)>& loadRow, uint8_t* out) {
  if (packedBytes(f, n, k) == 0)
    return;
  const Layout L = makeLayout(f, n, k);
  std::memset(out, 0, L.totalBytes);
  writeHeader(L, out);
  std::vector<float> rows(size_t(16 * L.kp) + 1);
  for (int64_t p = 0; p < L.panels; ++p) {
    std::fill(rows.begin(), rows.end(), 0.f);
    for (int i = 0; i < 16 && p * 16 + i < n; ++i)
      loadRow(p * 16 + i, rows.data() + i * L.kp);
    packPanel(L, rows.data(), out + kHeaderBytes + size_t(p) * L.panelBytes);
  }
}

void packWeights(WeightFormat f, SourceType src, const void* w, int64_t n, int64_t k,
                 uint8_t* out) {
  if (f == WeightFormat::BF16 && src == SourceType::BF16) {
    // Exact: repack the bits without a float round trip.
    if (packedBytes(f, n, k) == 0)
      return;
    const Layout L = makeLayout(f, n, k);
    std::memset(out, 0, L.totalBytes);
    writeHeader(L, out);
    const uint16_t* s = static_cast<const uint16_t*>(w);
    for (int64_t r = 0; r < n; ++r) {
      uint16_t* o = reinterpret_cast<uint16_t*>(out + kHeaderBytes + size_t(r / 16) * L.panelBytes);
      for (int64_t c = 0; c < k; ++c)
        o[(c / 2) * 32 + (r % 16) * 2 + (c % 2)] = s[r * k + c];
    }
    return;
  }
  packWeights(
      f, n, k,
      [&](int64_t r, float* o) {
        switch (src) {
        case SourceType::F32:
          std::memcpy(o, static_cast<const float*>(w) + r * k, size_t(k) * 4);
          break;
        case SourceType::BF16:
          for (int64_t c = 0; c < k; ++c)
            o[c] = bf16ToF32(static_cast<const uint16_t*>(w)[r * k + c]);
          break;
        case SourceType::F16:
          for (int64_t c = 0; c < k; ++c)
            o[c] = f16ToF32(static_cast<const uint16_t*>(w)[r * k + c]);
          break;
        }
      },
      out);
}

void packWeights(WeightFormat f, const float* w, int64_t n, int64_t k, uint8_t* out) {
  packWeights(f, SourceType::F32, w, n, k, out);
}

bool checkPacked(WeightFormat f, const uint8_t* packed, size_t size, int64_t n, int64_t k,
                 std::string* error) {
  auto fail = [&](const std::string& m) {
    if (error)
      *error = m;
    return false;
  };
  size_t want = packedBytes(f, n, k);
  if (want == 0)
    return fail(std::string("unsupported shape for ") + formatName(f) + ": [" + std::to_string(n) +
                ", " + std::to_string(k) + "]");
  if (!packed || size < sizeof(PackedHeader))
    return fail("packed blob shorter than its header");
  PackedHeader h;
  std::memcpy(&h, packed, sizeof h);
  if (std::memcmp(h.magic, "KTQW", 4) != 0)
    return fail("packed blob: bad magic (not KTQW)");
  if (h.version != kPackedVersion)
    return fail("packed blob: version " + std::to_string(h.version) + ", expected " +
                std::to_string(kPackedVersion));
  if (h.format != uint32_t(f))
    return fail(std::string("packed blob: format ") +
                (h.format < 7 ? formatName(WeightFormat(h.format)) : "?") + ", expected " +
                formatName(f));
  if (h.n != n || h.k != k)
    return fail("packed blob: shape [" + std::to_string(h.n) + ", " + std::to_string(h.k) +
                "], expected [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  if (h.totalBytes != want || h.panelBytes != makeLayout(f, n, k).panelBytes || h.rowBlock != 16)
    return fail("packed blob: layout sizes do not match this build's layout");
  if (size < want)
    return fail("packed blob truncated: " + std::to_string(size) + " bytes, need " +
                std::to_string(want));
  return true;
}

void dequantizeRow(WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, int64_t r,
                   float* out) {
  const Layout L = makeLayout(f, n, k);
  if (r < 0 || r >= n)
    return;
  const uint8_t* panel = panelPtr(L, packed, r / 16);
  const int i = int(r % 16);
  switch (f) {
  case WeightFormat::F32:
    for (int64_t c = 0; c < k; ++c)
      std::memcpy(out + c, panel + size_t(c) * 64 + i * 4, 4);
    return;
  case WeightFormat::BF16:
    for (int64_t c = 0; c < k; ++c) {
      uint16_t b;
      std::memcpy(&b, panel + size_t(c / 2) * 64 + i * 4 + (c % 2) * 2, 2);
      out[c] = bf16ToF32(b);
    }
    return;
  case WeightFormat::Int8: {
    float s;
    std::memcpy(&s, panel + L.scaleOff + i * 4, 4);
    for (int64_t c = 0; c < k; ++c)
      out[c] = float(int(panel[(c / 4) * 64 + i * 4 + c % 4]) - 128) * s;
    return;
  }
  default:
    break;
  }
  for (int64_t c = 0; c < k; ++c) {
    const int64_t g = c / L.group;
    const uint8_t byte = panel[size_t(c / 8) * 64 + i * 4 + (c % 4)];
    const int u = (c % 8) < 4 ? (byte & 15) : (byte >> 4);
    uint16_t dh, mh = 0;
    std::memcpy(&dh, panel + L.scaleOff + size_t(g * 16 + i) * 2, 2);
    if (L.asym)
      std::memcpy(&mh, panel + L.minOff + size_t(g * 16 + i) * 2, 2);
    const float d = f16ToF32(dh);
    out[c] = L.asym ? d * float(u) + f16ToF32(mh) : d * float(u - 8);
  }
}

} // namespace kt::cpu::quant
