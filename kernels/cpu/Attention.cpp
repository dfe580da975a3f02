#include "kernels/cpu/Attention.h"

#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kt::cpu {

namespace {
float dot(const float* a, const float* b, int n) {
  float acc = 0.f;
  for (int i = 0; i < n; ++i)
    acc += a[i] * b[i];
  return acc;
}

// In-place numerically stable softmax over n scores.
void softmax(float* s, int64_t n) {
  float mx = *std::max_element(s, s + n);
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    s[i] = std::exp(s[i] - mx);
    sum += s[i];
  }
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i)
    s[i] *= inv;
}
} // namespace

void gqaAttention(ThreadPool& pool, const float* q, int64_t len, int heads, int kvHeads,
                  int headDim, const float* kCache, const float* vCache, int64_t pos0, double scale,
                  float* out) {
  const int group = heads / kvHeads;
  const int64_t kvStride = int64_t(kvHeads) * headDim;
  pool.parallelFor(len * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t job = begin; job < end; ++job) {
      int64_t t = job / heads;
      int h = int(job % heads), kvh = h / group;
      int64_t ctx = pos0 + t + 1; // causal: keys 0 .. own position
      scores.resize(size_t(ctx));
      const float* qv = q + (t * heads + h) * headDim;
      for (int64_t s = 0; s < ctx; ++s)
        scores[size_t(s)] = dot(qv, kCache + s * kvStride + kvh * headDim, headDim) * float(scale);
      softmax(scores.data(), ctx);
      float* o = out + (t * heads + h) * headDim;
      std::fill(o, o + headDim, 0.f);
      for (int64_t s = 0; s < ctx; ++s) {
        const float* v = vCache + s * kvStride + kvh * headDim;
        float p = scores[size_t(s)];
        for (int d = 0; d < headDim; ++d)
          o[d] += p * v[d];
      }
    }
  });
}

void mlaAttention(ThreadPool& pool, const float* qAbs, const float* qPe, int64_t len, int heads,
                  int latentDim, int ropeDim, const float* latent, const float* kPe, int64_t pos0,
                  double scale, float* out) {
  pool.parallelFor(len * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t job = begin; job < end; ++job) {
      int64_t t = job / heads;
      int h = int(job % heads);
      int64_t ctx = pos0 + t + 1;
      scores.resize(size_t(ctx));
      const float* qa = qAbs + (t * heads + h) * latentDim;
      const float* qp = qPe + (t * heads + h) * ropeDim;
      for (int64_t s = 0; s < ctx; ++s)
        scores[size_t(s)] =
            (dot(qa, latent + s * latentDim, latentDim) + dot(qp, kPe + s * ropeDim, ropeDim)) *
            float(scale);
      softmax(scores.data(), ctx);
      float* o = out + (t * heads + h) * latentDim;
      std::fill(o, o + latentDim, 0.f);
      for (int64_t s = 0; s < ctx; ++s) {
        const float* c = latent + s * latentDim;
        float p = scores[size_t(s)];
        for (int d = 0; d < latentDim; ++d)
          o[d] += p * c[d];
      }
    }
  });
}

} // namespace kt::cpu
