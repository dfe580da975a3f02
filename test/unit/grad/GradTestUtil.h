#pragma once
// Helpers of the training-math tests: owned random weights viewed as MatrixView, LoRA adapters with
// gradient buffers, and a central-difference gradient check.
#include "kernels/cpu/grad/Grad.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace kt::cpu::grad::test {

// Frozen weights (f32 or bf16 storage) that stay at a fixed address for the test's lifetime.
class WeightStore {
public:
  explicit WeightStore(uint32_t seed) : rng_(seed) {}

  MatrixView mat(int64_t rows, int64_t cols, float scale = 0.3f, DType dt = DType::F32) {
    std::vector<float> v = randn(size_t(rows * cols), scale);
    return view(v, rows, cols, dt);
  }
  // A norm weight around 1 (so that norms neither vanish nor dominate).
  MatrixView normWeight(int64_t n) {
    std::vector<float> v = randn(size_t(n), 0.2f);
    for (float& x : v)
      x += 1.0f;
    return view(v, 1, n, DType::F32);
  }
  MatrixView view(const std::vector<float>& v, int64_t rows, int64_t cols, DType dt = DType::F32) {
    if (dt == DType::BF16) {
      auto& b = bf16_.emplace_back(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        b[i] = f32ToBf16(v[i]);
      return MatrixView{reinterpret_cast<const uint8_t*>(b.data()), DType::BF16, rows, cols};
    }
    auto& f = f32_.emplace_back(v);
    return MatrixView{reinterpret_cast<const uint8_t*>(f.data()), DType::F32, rows, cols};
  }
  std::vector<float> randn(size_t n, float scale) {
    std::normal_distribution<float> nd(0.f, scale);
    std::vector<float> v(n);
    for (float& x : v)
      x = nd(rng_);
    return v;
  }
  template <class T> std::vector<T> randnT(size_t n, double scale) {
    std::normal_distribution<double> nd(0., scale);
    std::vector<T> v(n);
    for (T& x : v)
      x = T(float(nd(rng_))); // f32-representable, so f32 and f64 runs see the same data
    return v;
  }
  std::mt19937& rng() { return rng_; }

private:
  std::mt19937 rng_;
  std::deque<std::vector<float>> f32_;
  std::deque<std::vector<uint16_t>> bf16_;
};

// A LoRA adapter with its gradient buffers; `lora` points into the vectors (the holder is not
// copied: it lives in a deque).
template <class T> struct LoraHolder {
  std::vector<T> A, B, dA, dB;
  LoraT<T> lora;
  LoraHolder(WeightStore& ws, int64_t out, int64_t in, int r, double scale) {
    A = ws.randnT<T>(size_t(r * in), 0.4);
    B = ws.randnT<T>(size_t(out * r), 0.4); // B random (not 0) so that dA is not trivially 0
    dA.assign(A.size(), T(0));
    dB.assign(B.size(), T(0));
    lora.A = A.data();
    lora.B = B.data();
    lora.r = r;
    lora.scale = T(scale);
    lora.dA = dA.data();
    lora.dB = dB.data();
  }
  void zeroGrad() {
    std::fill(dA.begin(), dA.end(), T(0));
    std::fill(dB.begin(), dB.end(), T(0));
  }
};

template <class T> class LoraSet {
public:
  const LoraT<T>* add(WeightStore& ws, int64_t out, int64_t in, int r = 3, double scale = 1.5) {
    return &items_.emplace_back(ws, out, in, r, scale).lora;
  }
  std::deque<LoraHolder<T>>& items() { return items_; }
  void zeroGrad() {
    for (auto& h : items_)
      h.zeroGrad();
  }

private:
  std::deque<LoraHolder<T>> items_;
};

inline double dotd(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

// Central differences of f with respect to p[0..n) against `analytic`. Up to `maxChecks` entries
// are checked (all when n is small). The error is relative to the largest analytic gradient entry.
inline void checkGradient(const std::string& what, const std::function<double()>& f, double* p,
                          size_t n, const double* analytic, double tol = 1e-6, double eps = 1e-5,
                          size_t maxChecks = 64) {
  std::vector<size_t> idx;
  if (n <= maxChecks) {
    for (size_t i = 0; i < n; ++i)
      idx.push_back(i);
  } else {
    std::mt19937 rng(uint32_t(n * 7919));
    std::uniform_int_distribution<size_t> d(0, n - 1);
    for (size_t i = 0; i < maxChecks; ++i)
      idx.push_back(d(rng));
  }
  double scale = 1e-12, worst = 0;
  for (size_t i = 0; i < n; ++i)
    scale = std::max(scale, std::fabs(analytic[i]));
  size_t worstAt = 0;
  double worstNum = 0;
  for (size_t i : idx) {
    const double saved = p[i];
    p[i] = saved + eps;
    const double fp = f();
    p[i] = saved - eps;
    const double fm = f();
    p[i] = saved;
    const double num = (fp - fm) / (2 * eps);
    const double err = std::fabs(num - analytic[i]);
    if (err > worst) {
      worst = err;
      worstAt = i;
      worstNum = num;
    }
  }
  EXPECT_LT(worst / scale, tol) << what << ": worst at " << worstAt << " numeric " << worstNum
                                << " analytic " << analytic[worstAt] << " (max |grad| " << scale
                                << ")";
  EXPECT_GT(scale, 1e-9) << what << ": the gradient is identically zero, the check proves nothing";
}

// Objective f(params) = Σ dy·y; checks dx and every adapter's dA/dB of `loras`.
inline void checkAll(const std::string& name, const std::function<double()>& f,
                     std::vector<double>& x, const std::vector<double>& dx,
                     LoraSet<double>& loras) {
  checkGradient(name + " dx", f, x.data(), x.size(), dx.data());
  int i = 0;
  for (auto& h : loras.items()) {
    checkGradient(name + " dA[" + std::to_string(i) + "]", f, h.A.data(), h.A.size(), h.dA.data());
    checkGradient(name + " dB[" + std::to_string(i) + "]", f, h.B.data(), h.B.size(), h.dB.data());
    ++i;
  }
}

} // namespace kt::cpu::grad::test
