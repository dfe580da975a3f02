#include "runtime/exec/cuda/GpuFormat.h"

#include "kernels/cpu/quant/QuantMatmul.h"
#include "kernels/cuda/Int4Format.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

namespace kt::cudaops {

const char* gpuFormatName(GpuFormat f) {
  switch (f) {
  case GpuFormat::F32:
    return "f32";
  case GpuFormat::BF16:
    return "bf16";
  case GpuFormat::Int8:
    return "int8";
  case GpuFormat::Int4:
    return "int4";
  }
  return "?";
}

GpuFormat gemmFormat(plan::QuantScheme gpuQuant, plan::DType computeDtype) {
  if (gpuQuant == plan::QuantScheme::Int4Group)
    return GpuFormat::Int4;
  if (gpuQuant == plan::QuantScheme::Int8PerChannel)
    return GpuFormat::Int8;
  return computeDtype == plan::DType::BF16 ? GpuFormat::BF16 : GpuFormat::F32;
}

size_t gpuDataBytes(GpuFormat f, int64_t rows, int64_t cols) {
  switch (f) {
  case GpuFormat::F32:
    return size_t(rows * cols) * 4;
  case GpuFormat::BF16:
    return size_t(rows * cols) * 2;
  case GpuFormat::Int8:
    return size_t(rows * cols);
  case GpuFormat::Int4:
    return size_t(rows * cuda::int4RowBytes(cols));
  }
  return 0;
}

size_t gpuScaleBytes(GpuFormat f, int64_t rows, int64_t cols) {
  return f == GpuFormat::Int8   ? size_t(rows) * 4
         : f == GpuFormat::Int4 ? size_t(rows * cuda::int4Groups(cols)) * 2
                                : 0;
}

GpuFormat widenedFormat(GpuFormat planFormat) {
  return planFormat == GpuFormat::F32 ? GpuFormat::F32 : GpuFormat::BF16;
}

size_t packedBlobBytes(const cpu::MatrixView& v) {
  return v.packed < 0 ? 0
                      : cpu::quant::packedBytes(cpu::quant::WeightFormat(v.packed), v.rows, v.cols);
}

uint16_t toBf16Bits(float f) { // round to nearest even (weights are finite)
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

bool packForGpu(const cpu::MatrixView& v, GpuFormat f, void* data, void* scales, ThreadPool* pool,
                int64_t* badRow) {
  const int64_t cols = v.cols;
  // The checkpoint already holds the GPU's dtype: rows are copied as they are.
  const bool same = v.packed < 0 && ((f == GpuFormat::F32 && v.dtype == DType::F32) ||
                                     (f == GpuFormat::BF16 && v.dtype == DType::BF16));
  std::atomic<int64_t> firstBad{-1};
  auto rows = [&](int64_t r0, int64_t r1) {
    if (same) {
      std::memcpy(static_cast<uint8_t*>(data) + size_t(r0) * v.rowBytes(), v.row(r0),
                  size_t(r1 - r0) * v.rowBytes());
      return;
    }
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      v.rowToF32(r, row.data());
      switch (f) {
      case GpuFormat::F32:
        std::memcpy(static_cast<float*>(data) + r * cols, row.data(), size_t(cols) * 4);
        break;
      case GpuFormat::BF16: {
        uint16_t* dst = static_cast<uint16_t*>(data) + r * cols;
        for (int64_t i = 0; i < cols; ++i)
          dst[i] = toBf16Bits(row[size_t(i)]);
        break;
      }
      case GpuFormat::Int8: {
        float amax = 0;
        for (float x : row)
          amax = std::max(amax, std::fabs(x));
        const float scale = amax > 0 ? amax / 127.f : 1.f, inv = 1.f / scale;
        static_cast<float*>(scales)[r] = scale;
        int8_t* q = static_cast<int8_t*>(data) + r * cols;
        for (int64_t i = 0; i < cols; ++i)
          q[i] = int8_t(std::lrint(std::clamp(row[size_t(i)] * inv, -127.f, 127.f)));
        break;
      }
      case GpuFormat::Int4: {
        for (float x : row)
          if (!std::isfinite(x)) {
            int64_t none = -1; // keep the first bad row any worker saw
            firstBad.compare_exchange_strong(none, r);
            break;
          }
        cuda::quantizeInt4Row(row.data(), cols,
                              static_cast<uint8_t*>(data) + r * cuda::int4RowBytes(cols),
                              static_cast<uint16_t*>(scales) + r * cuda::int4Groups(cols));
        break;
      }
      }
    }
  };
  // A 16B-parameter model's int8/int4 upload would take a minute on one core.
  if (pool)
    pool->parallelFor(v.rows, 64, rows);
  else
    rows(0, v.rows);
  if (badRow)
    *badRow = firstBad.load();
  return firstBad.load() < 0;
}

} // namespace kt::cudaops
