#pragma once
// Helpers of the CUDA tests: skip without a GPU, and move vectors to and from GPU memory.
#include "kernels/cuda/CudaKernels.h"
#include "kernels/cuda/Memory.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace kt::cudatest {

inline bool haveGpu(std::string* why) {
  return !kt::cuda::listGpus(why).empty();
}

// Without a GPU (CI, this VM) every kernel test skips and says why.
#define KT_REQUIRE_GPU()                                                                           \
  do {                                                                                             \
    std::string why_;                                                                              \
    if (!kt::cudatest::haveGpu(&why_))                                                             \
      GTEST_SKIP() << why_;                                                                        \
  } while (0)

// A GPU allocation that frees itself.
class Dev {
public:
  explicit Dev(size_t bytes) {
    std::string err;
    p_ = kt::cuda::allocate(bytes, &err);
    EXPECT_NE(p_, nullptr) << err;
  }
  template <class T> explicit Dev(const std::vector<T>& v) : Dev(v.size() * sizeof(T)) {
    std::string err;
    EXPECT_TRUE(kt::cuda::toDevice(p_, v.data(), v.size() * sizeof(T), &err)) << err;
  }
  ~Dev() { kt::cuda::release(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  template <class T = float> T* as() const { return static_cast<T*>(p_); }
  template <class T = float> std::vector<T> get(size_t n) const {
    std::vector<T> v(n);
    std::string err;
    EXPECT_TRUE(kt::cuda::synchronize(&err)) << err;
    EXPECT_TRUE(kt::cuda::toHost(v.data(), p_, n * sizeof(T), &err)) << err;
    return v;
  }

private:
  void* p_ = nullptr;
};

inline std::vector<float> randomVector(std::mt19937& rng, size_t n, float scale = 1.f) {
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v)
    x = nd(rng);
  return v;
}

// KV rows past the context hold huge values: an attention kernel that read one would be far off.
inline void poisonPast(std::vector<float>& cache, int64_t ctx, int64_t row) {
  for (size_t i = size_t(ctx * row); i < cache.size(); ++i)
    cache[i] = 1e4f;
}

// Max |got - want| / (1 + |want|) over the vectors.
inline double maxRelDiff(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double m = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    m = std::max(m, double(std::fabs(got[i] - want[i])) / (1.0 + std::fabs(want[i])));
  return m;
}

} // namespace kt::cudatest
