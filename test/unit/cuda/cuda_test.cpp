// GPU kernels against the CPU reference. Without a GPU (CI, this VM) the tests skip and say why.
#include "kernels/cpu/Norm.h"
#include "kernels/cuda/CudaKernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace {

bool haveGpu(std::string* why) {
  return !kt::cuda::listGpus(why).empty();
}

TEST(Cuda, ListingGpusNeverFails) {
  std::string why;
  auto gpus = kt::cuda::listGpus(&why);
  if (gpus.empty()) {
    EXPECT_FALSE(why.empty()) << "no GPU must come with a reason";
  }
  for (const auto& g : gpus)
    EXPECT_GT(g.totalBytes, 0u);
}

TEST(Cuda, RmsNormMatchesCpuReference) {
  std::string why;
  if (!haveGpu(&why))
    GTEST_SKIP() << why;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (int64_t dim : {1, 31, 128, 1000, 4097}) {
    const int64_t rows = 5;
    std::vector<float> x(static_cast<size_t>(rows * dim)), w(static_cast<size_t>(dim)),
        got(x.size()), want(x.size());
    for (float& v : x)
      v = nd(rng);
    for (float& v : w)
      v = nd(rng);
    kt::cpu::MatrixView wv{reinterpret_cast<const uint8_t*>(w.data()), kt::DType::F32, 1, dim};
    kt::cpu::rmsNorm(x.data(), rows, dim, wv, 1e-6, want.data());
    std::string err;
    ASSERT_TRUE(kt::cuda::rmsNorm(0, x.data(), rows, dim, w.data(), 1e-6f, got.data(), &err))
        << err;
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << "dim " << dim;
  }
}

} // namespace
