#pragma once
// One absorbed-MLA attention problem for the CUDA attention tests (prefill, split decode, paged):
// random queries and a latent / rope-key cache, and the scalar CPU reference's output.
#include "kernels/cpu/Attention.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <cmath>
#include <random>
#include <vector>

namespace kt::cudatest {

struct MlaShape {
  int heads, lora, rope; // DeepSeek's 16 heads (Lite), 512 latent, 64 rope; and odd small sizes
};

struct MlaProblem {
  double scale;
  // qa [len][heads][lora], qp [len][heads][rope], lat [capacity][lora], kpe [capacity][rope];
  // want: the reference output for `len` tokens at positions pos0.. (like qa).
  std::vector<float> qa, qp, lat, kpe, want;
};

// Draws qa, qp, lat and kpe from `rng` in that order and computes the reference over the first
// pos0 + len cache rows (the rest is left for the caller to poison).
inline MlaProblem mlaProblem(std::mt19937& rng, ThreadPool& pool, MlaShape m, int64_t len,
                             int64_t pos0, int64_t capacity) {
  MlaProblem p;
  p.scale = 1.0 / std::sqrt(double(m.lora + m.rope));
  p.qa = randomVector(rng, size_t(len * m.heads * m.lora), 0.5f);
  p.qp = randomVector(rng, size_t(len * m.heads * m.rope), 0.5f);
  p.lat = randomVector(rng, size_t(capacity * m.lora));
  p.kpe = randomVector(rng, size_t(capacity * m.rope));
  p.want.resize(p.qa.size());
  cpu::mlaAttentionRef(pool, p.qa.data(), p.qp.data(), len, m.heads, m.lora, m.rope, p.lat.data(),
                       p.kpe.data(), pos0, p.scale, p.want.data());
  return p;
}

} // namespace kt::cudatest
