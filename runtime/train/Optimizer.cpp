#include "runtime/train/Optimizer.h"

#include "runtime/support/Error.h"

#include <algorithm>
#include <cmath>

namespace kt::train {

void adamwUpdate(float* p, const float* g, float* m, float* v, size_t n, const AdamWConfig& c,
                 double lr, int64_t step) {
  const double bc1 = 1.0 - std::pow(c.beta1, double(step));
  const double bc2Sqrt = std::sqrt(1.0 - std::pow(c.beta2, double(step)));
  const double stepSize = lr / bc1;
  const double decay = 1.0 - lr * c.weightDecay;
  // The moments are kept in f32 like torch's; the arithmetic of one element is done in double
  // (differences to torch's f32 arithmetic stay at rounding level).
  for (size_t i = 0; i < n; ++i) {
    const double gi = g[i];
    const double mi = double(m[i]) + (gi - double(m[i])) * (1.0 - c.beta1);
    const double vi = double(v[i]) * c.beta2 + (1.0 - c.beta2) * gi * gi;
    m[i] = float(mi);
    v[i] = float(vi);
    const double denom = std::sqrt(double(v[i])) / bc2Sqrt + c.eps;
    p[i] = float(double(p[i]) * decay - stepSize * double(m[i]) / denom);
  }
}

Schedule parseSchedule(const std::string& s) {
  if (s == "constant")
    return Schedule::Constant;
  if (s == "cosine")
    return Schedule::Cosine;
  throw Error("--schedule: unknown schedule '" + s + "' (use cosine or constant)");
}

double scheduledLr(Schedule s, double baseLr, int64_t step, int64_t warmup, int64_t totalSteps) {
  if (step < warmup)
    return baseLr * double(step) / double(std::max<int64_t>(1, warmup));
  if (s == Schedule::Constant)
    return baseLr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, totalSteps - warmup));
  return baseLr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

double clipFactor(double globalNorm, double maxNorm) {
  if (maxNorm <= 0)
    return 1.0;
  return std::min(1.0, maxNorm / (globalNorm + 1e-6));
}

} // namespace kt::train
