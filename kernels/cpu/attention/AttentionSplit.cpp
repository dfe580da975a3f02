#include "kernels/cpu/attention/AttentionSplit.h"

#include "kernels/cpu/attention/AttentionKernels.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kt::cpu {

namespace {
// Below this many keys per range the split's merge and fork/join cost more than the halved reads.
constexpr int64_t kMinKeysPerRange = 64;
} // namespace

bool mlaDecodeSplit(ThreadPool& pool, const float* qAbs, const float* qPe, int heads, int latentDim,
                    int ropeDim, const float* latent, const float* kPe, int64_t ctx, double scale,
                    float* out) {
  const quant::Isa isa = quant::detectIsa();
  const int64_t parts = std::min<int64_t>(pool.size(), ctx / kMinKeysPerRange);
  if (isa < quant::Isa::Avx2 || parts < 2)
    return false;
  const size_t hd = size_t(heads) * size_t(latentDim);
  std::vector<float> partOut(size_t(parts) * hd), partM(size_t(parts * heads)),
      partL(size_t(parts * heads));
  pool.parallelFor(parts, 1, [&](int64_t b, int64_t e) {
    std::vector<const float*> q1(static_cast<size_t>(heads)), q2(static_cast<size_t>(heads));
    std::vector<float*> os(static_cast<size_t>(heads));
    for (int64_t p = b; p < e; ++p) {
      // Equal ranges; the first ctx % parts get one key more.
      const int64_t k0 = p * (ctx / parts) + std::min(p, ctx % parts);
      const int64_t k1 = k0 + ctx / parts + (p < ctx % parts ? 1 : 0);
      for (int h = 0; h < heads; ++h) {
        q1[size_t(h)] = qAbs + size_t(h) * size_t(latentDim);
        q2[size_t(h)] = qPe + size_t(h) * size_t(ropeDim);
        os[size_t(h)] = partOut.data() + size_t(p) * hd + size_t(h) * size_t(latentDim);
      }
      const detail::AttendBlock j{
          heads,     q1.data(), q2.data(),          os.data(), k1 - k0, latent + k0 * latentDim,
          latentDim, latentDim, kPe + k0 * ropeDim, ropeDim,   ropeDim, latent + k0 * latentDim,
          latentDim, latentDim, float(scale)};
      float* m = partM.data() + p * heads;
      float* l = partL.data() + p * heads;
      if (isa >= quant::Isa::Avx512)
        detail::attendPartialAvx512(j, m, l);
      else
        detail::attendPartialAvx2(j, m, l);
    }
  });
  // out[h] = sum_p w_p o_p[h] / sum_p w_p l_p[h], w_p = exp(m_p[h] - max_p m_p[h]); heads over
  // the threads, each part's row added whole (contiguous, vectorizable). Summed per element
  // across the parts in the inner loop, the merge was a serial chain of heads x latent x parts
  // dependent adds: ~130 us at 8 parts on the Xeon, more than the attention it merged.
  pool.parallelFor(heads, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> w(static_cast<size_t>(parts));
    for (int64_t h = h0; h < h1; ++h) {
      float mx = partM[size_t(h)];
      for (int64_t p = 1; p < parts; ++p)
        mx = std::max(mx, partM[size_t(p * heads + h)]);
      float denom = 0.f;
      for (int64_t p = 0; p < parts; ++p) {
        w[size_t(p)] = std::exp(partM[size_t(p * heads + h)] - mx);
        denom += w[size_t(p)] * partL[size_t(p * heads + h)];
      }
      const float inv = 1.0f / denom;
      float* o = out + size_t(h) * size_t(latentDim);
      const float* part = partOut.data() + size_t(h) * size_t(latentDim);
      for (int d = 0; d < latentDim; ++d)
        o[d] = w[0] * inv * part[d];
      for (int64_t p = 1; p < parts; ++p) {
        const float wp = w[size_t(p)] * inv;
        const float* row = part + size_t(p) * hd;
        for (int d = 0; d < latentDim; ++d)
          o[d] += wp * row[d];
      }
    }
  });
  return true;
}

} // namespace kt::cpu
