#pragma once
// A plain (unpacked) weight matrix for kernel tests: f32 as given, or bf16 with the f32 values
// rounded to what the kernel reads, so a reference computed from values() sees the kernel's
// weights. Not copyable: view() points into it.
#include "kernels/cpu/Matrix.h"
#include "runtime/support/DType.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace kt::testing_util {

class PlainWeights {
public:
  PlainWeights(std::vector<float> w, DType dtype, int64_t rows, int64_t cols) : f32_(std::move(w)) {
    if (dtype == DType::BF16) {
      bf16_.resize(f32_.size());
      for (size_t i = 0; i < f32_.size(); ++i) {
        bf16_[i] = f32ToBf16(f32_[i]);
        f32_[i] = bf16ToF32(bf16_[i]);
      }
    }
    view_.data = dtype == DType::BF16 ? reinterpret_cast<const uint8_t*>(bf16_.data())
                                      : reinterpret_cast<const uint8_t*>(f32_.data());
    view_.dtype = dtype;
    view_.rows = rows;
    view_.cols = cols;
  }
  PlainWeights(const PlainWeights&) = delete;
  PlainWeights& operator=(const PlainWeights&) = delete;

  const cpu::MatrixView& view() const { return view_; }
  const std::vector<float>& values() const { return f32_; }

private:
  std::vector<float> f32_;
  std::vector<uint16_t> bf16_;
  cpu::MatrixView view_;
};

} // namespace kt::testing_util
