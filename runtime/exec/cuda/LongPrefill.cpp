#include "runtime/exec/cuda/LongPrefill.h"

#include "kernels/cuda/PrefillAttention.h"
#include "runtime/exec/cuda/CudaBackend.h"

#include <cstdlib>
#include <cstring>

namespace kt::cudaops {

namespace {
// Scratch ids of this file (AttentionOps uses 100.., MoeOp 200..).
enum Scratch { kDenseK1 = 150, kDenseK2, kDenseV, kScores };

bool kernelForced() {
  static const bool forced = [] {
    const char* v = std::getenv("KT_CUDA_PREFILL_ATTENTION");
    return v && std::strcmp(v, "kernel") == 0;
  }();
  return forced;
}

// Positions 0 .. keys-1 of one paged array as dense rows of rowFloats floats (the row's pitch in
// the page may be wider: the kernel's head offsets stay valid).
const float* gathered(CudaBackend& b, int id, const cuda::KvPages& kv, int64_t offset,
                      int64_t pitch, int64_t rowFloats, int64_t keys) {
  float* dense = b.scratchF(id, keys * rowFloats);
  cuda::gatherPagedRows(kv, offset, pitch, rowFloats, keys, dense);
  return dense;
}
} // namespace

void attendChunk(OpContext& c, cuda::AttentionArgs at) {
  if (at.len < cuda::kPrefillGemmMinTokens || kernelForced()) {
    cuda::attention(at);
    return;
  }
  CudaBackend& b = backendOf(c);
  // A chunk this long is a prefill: never captured in a graph, and its first position is the
  // host's (pos0Dev holds the same value for the generic kernel).
  at.pos0Dev = nullptr;
  const int64_t keys = at.pos0 + at.len;
  if (at.kv.pages) {
    const int64_t k1Row = int64_t(at.kvHeads - 1) * at.k1Head + at.d1;
    const int64_t vRow = int64_t(at.kvHeads - 1) * at.vHead + at.dv;
    at.k1 = gathered(b, kDenseK1, at.kv, at.k1Page, at.k1Pos, k1Row, keys);
    // MLA's values are its keys (the latent): one gather serves both.
    at.v = at.vPage == at.k1Page && vRow == k1Row
               ? at.k1
               : gathered(b, kDenseV, at.kv, at.vPage, at.vPos, vRow, keys);
    if (at.q2 && at.d2 > 0)
      at.k2 = gathered(b, kDenseK2, at.kv, at.k2Page, at.k2Pos, at.d2, keys);
    at.k1Pos = k1Row;
    at.vPos = vRow;
    at.k2Pos = at.d2;
    at.kv = {};
  }
  if (!cuda::usePrefillGemm(at)) {
    cuda::attention(at);
    return;
  }
  float* scores = b.scratchF(kScores, cuda::prefillGemmScratchFloats(at));
  std::string err;
  b.check(c, cuda::prefillAttentionGemm(b.blas(), at, scores, &err), err);
}

} // namespace kt::cudaops
