// MoE routing on the GPU: one thread per token runs exactly the steps of kernels/cpu/MoeRouting
// (scores, optional correction bias for the choice, group limiting, top-k with ties to the lower
// index, normalisation, scaling). Expert counts are small (<= kMaxRoutedExperts), so the
// per-token arrays live in thread-local memory.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_runtime.h>

#include <cfloat>

namespace kt::cuda {

namespace {
// Index of the largest value not yet taken (ties: lower index), as torch.topk on CPU orders them.
__device__ int argmaxFree(const float* v, const bool* taken, int n) {
  int best = -1;
  for (int i = 0; i < n; ++i)
    if (!taken[i] && (best < 0 || v[i] > v[best]))
      best = i;
  return best;
}

__global__ void routeKernel(const float* logits, const float* bias, int64_t tokens, RoutingArgs a,
                            int32_t* experts, float* weights) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= tokens)
    return;
  const int e = a.numExperts;
  const float* lg = logits + t * e;
  float scores[kMaxRoutedExperts], choice[kMaxRoutedExperts];
  bool taken[kMaxRoutedExperts];
  if (!a.sigmoid) {
    float mx = lg[0], sum = 0.f;
    for (int i = 1; i < e; ++i)
      mx = fmaxf(mx, lg[i]);
    for (int i = 0; i < e; ++i)
      sum += (scores[i] = expf(lg[i] - mx));
    for (int i = 0; i < e; ++i)
      scores[i] /= sum;
  } else {
    for (int i = 0; i < e; ++i)
      scores[i] = 1.0f / (1.0f + expf(-lg[i]));
  }
  for (int i = 0; i < e; ++i)
    choice[i] = scores[i] + (bias ? bias[i] : 0.f);

  if (a.method != 0 && a.nGroup > 1) {
    const int perGroup = e / a.nGroup;
    float groupScore[64];
    bool groupTaken[64];
    for (int g = 0; g < a.nGroup; ++g) {
      const float* b = choice + g * perGroup;
      groupTaken[g] = false;
      if (a.method == 1) { // DeepSeek-V2: the group's best expert
        float mx = b[0];
        for (int i = 1; i < perGroup; ++i)
          mx = fmaxf(mx, b[i]);
        groupScore[g] = mx;
      } else { // noaux_tc: sum of the group's top two
        for (int i = 0; i < perGroup; ++i)
          taken[i] = false;
        float s = 0.f;
        for (int k = 0; k < (perGroup < 2 ? perGroup : 2); ++k) {
          int best = argmaxFree(b, taken, perGroup);
          taken[best] = true;
          s += b[best];
        }
        groupScore[g] = s;
      }
    }
    for (int k = 0; k < a.topkGroup; ++k)
      groupTaken[argmaxFree(groupScore, groupTaken, a.nGroup)] = true;
    // Experts of dropped groups are masked to 0.0 (not -inf), exactly as the reference does.
    for (int i = 0; i < e; ++i)
      if (!groupTaken[i / perGroup])
        choice[i] = 0.0f;
  }
  for (int i = 0; i < e; ++i)
    taken[i] = false;
  int32_t* ex = experts + t * a.topK;
  float* w = weights + t * a.topK;
  float sum = 0.f;
  for (int k = 0; k < a.topK; ++k) {
    int best = argmaxFree(choice, taken, e);
    taken[best] = true;
    ex[k] = best;
    w[k] = scores[best];
    sum += w[k];
  }
  if (a.normTopkProb)
    for (int k = 0; k < a.topK; ++k)
      w[k] /= (sum + 1e-20f);
  for (int k = 0; k < a.topK; ++k)
    w[k] = float(double(w[k]) * a.routedScalingFactor);
}
} // namespace

void moeRoute(const float* logits, const float* bias, int64_t tokens, const RoutingArgs& a,
              int32_t* experts, float* weights) {
  if (tokens <= 0)
    return;
  const int threads = 64;
  countLaunches();
  routeKernel<<<unsigned((tokens + threads - 1) / threads), threads, 0, stream()>>>(
      logits, bias, tokens, a, experts, weights);
}

} // namespace kt::cuda
