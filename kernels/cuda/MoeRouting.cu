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
// Greedy routing (no group limit) with a warp per token: lane l holds experts l, l + 32, ... in
// registers, the softmax's max and sum and each top-k round's argmax are warp reductions. The
// one-thread kernel above walked 128 experts x 8 rounds from local memory: 73 us a layer of
// Qwen3-30B-A3B's decode on the H100, a third of its step. Same choices (ties to the lower index)
// and weights up to the softmax sum's order.
constexpr int kWarpSlots = kMaxRoutedExperts / 32;

__device__ void warpBest(float& v, int& i, float& sc) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    const float os = __shfl_xor_sync(0xffffffffu, sc, o);
    if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) {
      v = ov;
      i = oi;
      sc = os;
    }
  }
}

__global__ void routeWarpKernel(const float* logits, const float* bias, int64_t tokens,
                                RoutingArgs a, int32_t* experts, float* weights) {
  const int lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens)
    return;
  const int e = a.numExperts, slots = (e + 31) / 32;
  const float* lg = logits + t * e;
  float score[kWarpSlots], choice[kWarpSlots];
  bool free[kWarpSlots];
  float mx = -FLT_MAX;
#pragma unroll
  for (int j = 0; j < kWarpSlots; ++j) {
    const int i = lane + 32 * j;
    score[j] = j < slots && i < e ? lg[i] : -FLT_MAX;
    mx = fmaxf(mx, score[j]);
  }
  if (!a.sigmoid) {
    for (int o = 16; o > 0; o >>= 1)
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < kWarpSlots; ++j)
      if (j < slots && lane + 32 * j < e)
        sum += (score[j] = expf(score[j] - mx));
    for (int o = 16; o > 0; o >>= 1)
      sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
    for (int j = 0; j < kWarpSlots; ++j)
      score[j] /= sum;
  } else {
#pragma unroll
    for (int j = 0; j < kWarpSlots; ++j)
      score[j] = 1.0f / (1.0f + expf(-score[j]));
  }
#pragma unroll
  for (int j = 0; j < kWarpSlots; ++j) {
    const int i = lane + 32 * j;
    free[j] = j < slots && i < e;
    choice[j] = free[j] ? score[j] + (bias ? bias[i] : 0.f) : -FLT_MAX;
  }
  int32_t* ex = experts + t * a.topK;
  float* w = weights + t * a.topK;
  float sum = 0.f;
  for (int k = 0; k < a.topK; ++k) {
    // This lane's best free expert (its slots are in index order: ties keep the first), then
    // the warp's.
    float v = -FLT_MAX, sc = 0.f;
    int best = -1;
#pragma unroll
    for (int j = 0; j < kWarpSlots; ++j)
      if (free[j] && (best < 0 || choice[j] > v)) {
        v = choice[j];
        best = lane + 32 * j;
        sc = score[j];
      }
    warpBest(v, best, sc);
    if (best >= 0 && (best & 31) == lane)
#pragma unroll
      for (int j = 0; j < kWarpSlots; ++j)
        if (j == best / 32)
          free[j] = false;
    if (lane == 0) {
      ex[k] = best;
      w[k] = sc;
      sum += sc;
    }
  }
  if (lane != 0)
    return;
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
  countLaunches();
  if (a.method == 0 || a.nGroup <= 1) {
    const int warps = 4;
    routeWarpKernel<<<unsigned((tokens + warps - 1) / warps), warps * 32, 0, stream()>>>(
        logits, bias, tokens, a, experts, weights);
    return;
  }
  const int threads = 64;
  routeKernel<<<unsigned((tokens + threads - 1) / threads), threads, 0, stream()>>>(
      logits, bias, tokens, a, experts, weights);
}

} // namespace kt::cuda
