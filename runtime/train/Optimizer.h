#pragma once
// The optimizer of LoRA fine-tuning, written to match PyTorch step for step so that a run can be
// replayed against a reference: torch.optim.AdamW (bias correction, decoupled weight decay),
// torch.nn.utils.clip_grad_norm_ (global L2 norm) and the learning-rate schedules of transformers'
// get_constant_schedule_with_warmup / get_cosine_schedule_with_warmup.
#include <cstddef>
#include <cstdint>
#include <string>

namespace kt::train {

struct AdamWConfig {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weightDecay = 0.0;
  double maxGradNorm = 1.0; // global L2 clipping; 0 = off
};

// One AdamW update of n parameters p with gradient g and moments m, v (updated in place).
// `step` is the 1-based count of updates including this one (bias correction); `lr` is the
// scheduled learning rate of this step. As torch: p *= 1 - lr·wd; m = β1·m + (1-β1)·g;
// v = β2·v + (1-β2)·g²; p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps).
void adamwUpdate(float* p, const float* g, float* m, float* v, size_t n, const AdamWConfig& c,
                 double lr, int64_t step);

enum class Schedule { Constant, Cosine };
// Parses "constant" / "cosine"; throws kt::Error naming the flag value otherwise.
Schedule parseSchedule(const std::string& s);

// Learning rate of the optimizer step `step` (0-based) out of `totalSteps`: linear warmup from 0
// over `warmup` steps, then constant or a half cosine down to 0 at totalSteps (transformers'
// schedulers evaluated at the scheduler's step count, so step 0 of a warmup runs at lr 0).
double scheduledLr(Schedule s, double baseLr, int64_t step, int64_t warmup, int64_t totalSteps);

// Scale factor that clip_grad_norm_ applies for this global gradient norm: min(1, max/(norm+1e-6));
// 1 when maxNorm <= 0 (clipping off).
double clipFactor(double globalNorm, double maxNorm);

} // namespace kt::train
