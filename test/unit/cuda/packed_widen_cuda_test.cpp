// widenPacked (kernels/cuda/PackedWiden.cu), the GPU half of prefill offload's packed-expert
// streaming, against its host reference widenPackedRows (which packed_widen_test checks against
// quant::dequantizeRow): bit for bit, every packed format, f32 and bf16 outputs, odd shapes (rows
// not a multiple of 16, K not a multiple of the group) and one DeepSeek-V2-Lite-sized expert
// matrix, the blob at a 256-byte offset inside a larger buffer as in the streaming slots.
#include "CudaTestUtil.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/PackedWiden.h"

#include <cstring>

using namespace kt;
using namespace kt::cudatest;
namespace q = kt::cpu::quant;

namespace {

struct Shape {
  int64_t n, k;
};

void checkShape(q::WeightFormat f, int64_t n, int64_t k, std::mt19937& rng) {
  SCOPED_TRACE(std::string(q::formatName(f)) + " [" + std::to_string(n) + ", " + std::to_string(k) +
               "]");
  std::vector<float> w = randomVector(rng, static_cast<size_t>(n * k), 0.05f);
  std::vector<uint8_t> blob(q::packedBytes(f, n, k));
  q::packWeights(f, w.data(), n, k, blob.data());
  const cuda::PackedGeom g = cuda::packedGeom(f, n, k);
  const size_t offset = 512; // a slot places each blob at a 256-aligned offset
  Dev dBlob(offset + blob.size());
  std::string err;
  ASSERT_TRUE(cuda::toDevice(dBlob.as<uint8_t>() + offset, blob.data(), blob.size(), &err)) << err;
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16 out" : "f32 out");
    const size_t elems = static_cast<size_t>(n * k), bytes = elems * (bf16 ? 2 : 4);
    std::vector<uint8_t> want(bytes);
    cuda::widenPackedRows(g, blob.data(), bf16, want.data(), 0, n);
    Dev dOut(bytes);
    cuda::widenPacked(g, dBlob.as<uint8_t>() + offset, bf16, dOut.as<void>());
    ASSERT_TRUE(cuda::launchOk(&err)) << err;
    const std::vector<uint8_t> got = dOut.get<uint8_t>(bytes);
    int64_t bad = 0;
    const size_t es = bf16 ? 2 : 4;
    for (size_t i = 0; i < elems; ++i)
      if (std::memcmp(&got[i * es], &want[i * es], es) != 0 && ++bad <= 3)
        ADD_FAILURE() << "element (" << int64_t(i) / k << ", " << int64_t(i) % k
                      << ") differs from the host reference";
    EXPECT_EQ(bad, 0);
  }
}

} // namespace

TEST(CudaPackedWiden, MatchesHostReferenceEveryFormat) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(7);
  const Shape shapes[] = {{1, 1}, {5, 7}, {17, 33}, {33, 100}, {40, 129}, {31, 257}};
  for (q::WeightFormat f : q::kAllWeightFormats)
    for (const Shape& s : shapes)
      checkShape(f, s.n, s.k, rng);
}

TEST(CudaPackedWiden, ExpertSizedMatrices) {
  KT_REQUIRE_GPU();
  std::mt19937 rng(11);
  // DeepSeek-V2-Lite's expert gate/up [1408, 2048] and down [2048, 1408].
  for (q::WeightFormat f : {q::WeightFormat::Int8, q::WeightFormat::Int4G32Sym,
                            q::WeightFormat::Int4G128Asym, q::WeightFormat::BF16}) {
    checkShape(f, 1408, 2048, rng);
    checkShape(f, 2048, 1408, rng);
  }
}
