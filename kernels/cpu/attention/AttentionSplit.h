#pragma once
// Decode attention split over the keys (flash-decoding): one query token's heads against ctx keys,
// the keys cut into one contiguous range per thread, each range run for every head by the SIMD
// kernels' unnormalized form, and the partial results merged exactly (log-sum-exp). With heads
// split over the threads instead, every thread streams the whole latent cache; here each thread
// streams 1/threads of it, which is what grows with the context length in decode.
#include <cstdint>

namespace kt {
class ThreadPool;
}

namespace kt::cpu {

// MLA, one token: out[h] (latentDim floats, heads consecutive) = softmax_s(scale * (qAbs[h] .
// latent[s] + qPe[h] . kPe[s])) @ latent, s < ctx. Returns false (nothing written) when the split
// does not apply: no AVX2/AVX-512 kernel, one thread, or fewer than 64 keys per thread; the caller
// then runs mlaAttention.
bool mlaDecodeSplit(ThreadPool& pool, const float* qAbs, const float* qPe, int heads, int latentDim,
                    int ropeDim, const float* latent, const float* kPe, int64_t ctx, double scale,
                    float* out);

} // namespace kt::cpu
