// lm_head + mean causal cross-entropy on the GPU (TrainKernels.h), as kernels/cpu/grad Loss.cpp:
// the predicted positions and their targets are found on the host (labels shifted, -100 skipped),
// then per chunk: gather x rows, logits = xs·Wᵀ, crossEntropyRows (loss per row; softmax/N -
// onehot/N in place), dxs = dlogits·W scattered into the zeroed dx. The row losses are summed on
// the host in position order, so the loss does not depend on the chunking.
#include "kernels/cpu/grad/Grad.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/grad/GradKernels.h"
#include "kernels/cuda/grad/TrainKernels.h"
#include "runtime/support/Error.h"

#include <algorithm>

namespace kt::cuda::grad {

namespace {
constexpr int64_t kChunkLogits = int64_t(1) << 24; // 64 MiB of f32 logits, as the CPU
} // namespace

LossResult lmHeadLoss(Context& c, const float* lmHead, int64_t V, int64_t H, const float* x,
                      int64_t batch, int64_t seqLen, const int32_t* labels, float* dx,
                      int64_t normalizer) {
  const int64_t rows = batch * seqLen;
  std::vector<int32_t> pos, target; // the CPU loss's rows and targets (cpu::grad::predictedRows)
  cpu::grad::predictedRows(labels, batch, seqLen, V, &pos, &target);
  std::string err;
  if (dx)
    c.check(fillZero(dx, size_t(rows * H) * 4, &err), err, "cross_entropy_loss zero dx");
  LossResult res;
  res.count = int64_t(pos.size());
  if (pos.empty())
    return res;
  const double norm = normalizer > 0 ? double(normalizer) : double(res.count);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(res.count, kChunkLogits / V));
  // Index arrays as floats' storage: slot memory is untyped device memory.
  int32_t* posDev = reinterpret_cast<int32_t*>(c.scratch(kLossSlot, res.count));
  int32_t* targetDev = reinterpret_cast<int32_t*>(c.scratch(kLossSlot + 1, res.count));
  double* lossDev = reinterpret_cast<double*>(c.scratch(kLossSlot + 2, 2 * chunk));
  float* xs = c.scratch(kLossSlot + 3, chunk * H);
  float* logits = c.scratch(kLossSlot + 4, chunk * V);
  c.check(toDevice(posDev, pos.data(), pos.size() * 4, &err), err, "cross_entropy_loss upload");
  c.check(toDevice(targetDev, target.data(), target.size() * 4, &err), err,
          "cross_entropy_loss upload");
  std::vector<double> rowLoss(static_cast<size_t>(chunk));
  double sum = 0;
  for (int64_t c0 = 0; c0 < res.count; c0 += chunk) {
    const int64_t n = std::min(chunk, res.count - c0);
    gatherRows(x, H, posDev + c0, n, xs);
    c.checkLaunch("cross_entropy_loss gather");
    c.gemm("cross_entropy_loss logits", false, true, n, V, H, 1.f, xs, H, lmHead, H, 0.f, logits,
           V);
    crossEntropyRows(logits, n, V, targetDev + c0, lossDev, dx != nullptr, norm);
    c.checkLaunch("cross_entropy_loss softmax");
    c.check(toHost(rowLoss.data(), lossDev, size_t(n) * 8, &err), err,
            "cross_entropy_loss download");
    for (int64_t i = 0; i < n; ++i)
      sum += rowLoss[size_t(i)]; // fixed order: deterministic
    if (!dx)
      continue;
    c.gemm("cross_entropy_loss dx", false, false, n, H, V, 1.f, logits, V, lmHead, H, 0.f, xs, H);
    scatterAddRows(xs, H, posDev + c0, nullptr, n, dx);
    c.checkLaunch("cross_entropy_loss scatter");
  }
  res.loss = sum / norm;
  return res;
}

} // namespace kt::cuda::grad
