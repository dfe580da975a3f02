#include "runtime/exec/cuda/MoeGrouped.h"

#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/CudaBackend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kt::cudaops {

namespace {
// Scratch ids of this file (MoeOp.cpp uses 200..).
enum Scratch { kIndex = 240, kRowsX, kGate, kUp, kDown, kPairY };

bool disabled() {
  static const bool off = [] {
    const char* v = std::getenv("KT_CUDA_MOE_GROUPED");
    return v && std::strcmp(v, "0") == 0;
  }();
  return off;
}
} // namespace

bool groupedExpertsApply(const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down) {
  auto plain = [](const GpuWeight& w) { return w.local.empty() && !w.int8() && !w.int4(); };
  return !disabled() && plain(gate) && plain(up) && plain(down) && gate.bf16 == up.bf16;
}

void groupedExperts(OpContext& c, const float* x, int64_t T, int64_t H, int K, int E,
                    const int32_t* hChosen, const int32_t* dExperts, const float* dWeights,
                    const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down,
                    const float* shared, const float* sharedScale, float* out) {
  CudaBackend& b = backendOf(c);
  const int64_t inter = gate.rows;
  std::string err;
  std::vector<int32_t> count(static_cast<size_t>(E)), slot(static_cast<size_t>(E)),
      fill(static_cast<size_t>(E));
  std::vector<int32_t> index; // [rows of the slots | (token, k) -> slot row | slot -> expert]
  for (int64_t c0 = 0; c0 < T; c0 += kGroupedChunkTokens) {
    const int64_t n = std::min(kGroupedChunkTokens, T - c0);
    const int32_t* chosen = hChosen + c0 * K;
    std::fill(count.begin(), count.end(), 0);
    for (int64_t p = 0; p < n * K; ++p)
      ++count[size_t(chosen[p])];
    std::vector<int32_t> active;
    int64_t most = 0;
    for (int e = 0; e < E; ++e)
      if (count[size_t(e)] > 0) {
        slot[size_t(e)] = int32_t(active.size());
        active.push_back(e);
        most = std::max<int64_t>(most, count[size_t(e)]);
      }
    const int64_t items = int64_t(active.size()), slotRows = items * most;
    // Padding rows repeat the chunk's first token: finite inputs whose results nobody reads.
    index.assign(size_t(slotRows + n * K + items), int32_t(c0));
    int32_t* rowToken = index.data();
    int32_t* pairRow = rowToken + slotRows;
    int32_t* slots = pairRow + n * K;
    std::fill(fill.begin(), fill.end(), 0);
    for (int64_t p = 0; p < n * K; ++p) { // token order within each expert, as the loop path
      const int32_t e = chosen[p];
      const int64_t row = int64_t(slot[size_t(e)]) * most + fill[size_t(e)]++;
      rowToken[row] = int32_t(c0 + p / K);
      pairRow[p] = int32_t(row);
    }
    for (int64_t i = 0; i < items; ++i)
      slots[i] = int32_t(gate.at(active[size_t(i)]));
    auto* dIndex = static_cast<int32_t*>(b.scratch(kIndex, index.size() * 4));
    b.check(c, cuda::toDevice(dIndex, index.data(), index.size() * 4, &err), err);
    const int32_t* dRowToken = dIndex;
    const int32_t* dPairRow = dIndex + slotRows;
    const int32_t* dSlots = dPairRow + n * K;

    float* xs = b.scratchF(kRowsX, slotRows * H);
    float* g = b.scratchF(kGate, slotRows * inter);
    float* u = b.scratchF(kUp, slotRows * inter);
    float* y = b.scratchF(kDown, slotRows * H);
    float* pairY = b.scratchF(kPairY, n * K * H);
    cuda::gatherRows(x, H, dRowToken, slotRows, xs);
    cuda::Blas& blas = b.blas();
    b.check(c,
            blas.linearStack(xs, most, items, dSlots, gate.data, gate.bf16, inter, H, g, &err) &&
                blas.linearStack(xs, most, items, dSlots, up.data, up.bf16, inter, H, u, &err),
            err);
    cuda::swiglu(g, u, g, slotRows * inter);
    b.check(c, blas.linearStack(g, most, items, dSlots, down.data, down.bf16, H, inter, y, &err),
            err);
    cuda::gatherRows(y, H, dPairRow, n * K, pairY);
    cuda::moeCombine(pairY, dWeights + c0 * K, dExperts + c0 * K, nullptr, E, n, K, H,
                     shared ? shared + c0 * H : nullptr, sharedScale ? sharedScale + c0 : nullptr,
                     out + c0 * H);
  }
}

} // namespace kt::cudaops
