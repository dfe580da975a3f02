// widenPacked (DeviceKernels.h): the CPU's packed blob of a streamed expert matrix, copied to the
// GPU as it is, widened into the row-major f32/bf16 matrix the GEMMs read. One thread per output
// element, consecutive threads along a row (coalesced writes; the reads stay inside a few 64-byte
// lines of one panel). The element math is PackedWiden.h's packedWeight, the function the CPU test
// checks against quant::dequantizeRow.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/GridStride.cuh"
#include "kernels/cuda/PackedWiden.h"
#include "kernels/cuda/Stream.cuh"

namespace kt::cuda {

namespace {
template <bool kBf16>
__global__ void widenPackedKernel(PackedGeom g, const uint8_t* blob, void* out) {
  const int64_t total = g.n * g.k;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const float w = packedWeight(g, blob, idx / g.k, idx % g.k);
    if (kBf16)
      static_cast<uint16_t*>(out)[idx] = widen::toBf16(w);
    else
      static_cast<float*>(out)[idx] = w;
  }
}
} // namespace

void widenPacked(const PackedGeom& g, const uint8_t* blob, bool bf16, void* out) {
  if (g.n <= 0 || g.k <= 0)
    return;
  countLaunches();
  if (bf16)
    widenPackedKernel<true><<<blocksFor(g.n * g.k), kThreads, 0, stream()>>>(g, blob, out);
  else
    widenPackedKernel<false><<<blocksFor(g.n * g.k), kThreads, 0, stream()>>>(g, blob, out);
}

} // namespace kt::cuda
