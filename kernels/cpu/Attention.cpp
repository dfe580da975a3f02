#include "kernels/cpu/Attention.h"

#include "kernels/cpu/attention/AttentionKernels.h"
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
// The portable form of one work unit (same arithmetic order as the reference per head).
void attendBlockPortable(const detail::AttendBlock& j, float* scores) {
  const int64_t ctx = j.ctx;
  for (int64_t s = 0; s < ctx; ++s)
    for (int i = 0; i < j.nq; ++i) {
      float d = dot(j.q1[i], j.a + s * j.aStride, j.d1);
      if (j.b)
        d += dot(j.q2[i], j.b + s * j.bStride, j.d2);
      scores[i * ctx + s] = d * j.scale;
    }
  for (int i = 0; i < j.nq; ++i) {
    softmax(scores + i * ctx, ctx);
    std::fill(j.out[i], j.out[i] + j.dv, 0.f);
  }
  for (int64_t s = 0; s < ctx; ++s) {
    const float* v = j.v + s * j.vStride;
    for (int i = 0; i < j.nq; ++i) {
      const float p = scores[i * ctx + s];
      for (int d = 0; d < j.dv; ++d)
        j.out[i][d] += p * v[d];
    }
  }
}

void runBlock(quant::Isa isa, const detail::AttendBlock& j) {
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(j.nq * j.ctx));
  if (isa >= quant::Isa::Avx512)
    detail::attendBlockAvx512(j, scores.data());
  else if (isa == quant::Isa::Avx2)
    detail::attendBlockAvx2(j, scores.data());
  else
    attendBlockPortable(j, scores.data());
}

quant::Isa clampIsa(quant::Isa isa) {
  return int(isa) <= int(quant::bestSupportedIsa()) ? isa : quant::bestSupportedIsa();
}

} // namespace

void gqaAttentionRef(ThreadPool& pool, const float* q, int64_t len, int heads, int kvHeads,
                     int headDim, const float* kCache, const float* vCache, int64_t pos0,
                     double scale, float* out) {
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

void mlaAttentionRef(ThreadPool& pool, const float* qAbs, const float* qPe, int64_t len, int heads,
                     int latentDim, int ropeDim, const float* latent, const float* kPe,
                     int64_t pos0, double scale, float* out) {
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

// Work unit: (query token, kv head) with the `heads / kvHeads` query heads of that group.
void gqaAttentionIsa(quant::Isa isa, ThreadPool& pool, const float* q, int64_t len, int heads,
                     int kvHeads, int headDim, const float* kCache, const float* vCache,
                     int64_t pos0, double scale, float* out) {
  isa = clampIsa(isa);
  const int group = heads / kvHeads;
  const int64_t kvStride = int64_t(kvHeads) * headDim;
  pool.parallelFor(len * kvHeads, 1, [&](int64_t begin, int64_t end) {
    std::vector<const float*> qs(static_cast<size_t>(group));
    std::vector<float*> os(static_cast<size_t>(group));
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / kvHeads;
      const int kvh = int(job % kvHeads);
      for (int i = 0; i < group; ++i) {
        const int64_t h = int64_t(kvh) * group + i;
        qs[size_t(i)] = q + (t * heads + h) * headDim;
        os[size_t(i)] = out + (t * heads + h) * headDim;
      }
      detail::AttendBlock j{group,
                            qs.data(),
                            nullptr,
                            os.data(),
                            pos0 + t + 1, // causal: keys 0 .. own position
                            kCache + int64_t(kvh) * headDim,
                            kvStride,
                            headDim,
                            nullptr,
                            0,
                            0,
                            vCache + int64_t(kvh) * headDim,
                            kvStride,
                            headDim,
                            float(scale)};
      runBlock(isa, j);
    }
  });
}

void gqaAttention(ThreadPool& pool, const float* q, int64_t len, int heads, int kvHeads,
                  int headDim, const float* kCache, const float* vCache, int64_t pos0, double scale,
                  float* out) {
  gqaAttentionIsa(quant::detectIsa(), pool, q, len, heads, kvHeads, headDim, kCache, vCache, pos0,
                  scale, out);
}

// Work unit: (query token, block of heads); all heads read the same latent rows, so the block is
// as large as the thread count allows (decode: heads / threads; prefill: all heads).
void mlaAttentionIsa(quant::Isa isa, ThreadPool& pool, const float* qAbs, const float* qPe,
                     int64_t len, int heads, int latentDim, int ropeDim, const float* latent,
                     const float* kPe, int64_t pos0, double scale, float* out) {
  isa = clampIsa(isa);
  int block = heads;
  while (block > 1 && len * ((heads + block - 1) / block) < pool.size())
    block = (block + 1) / 2;
  const int blocks = (heads + block - 1) / block;
  pool.parallelFor(len * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<const float*> q1(static_cast<size_t>(block)), q2(static_cast<size_t>(block));
    std::vector<float*> os(static_cast<size_t>(block));
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / blocks;
      const int h0 = int(job % blocks) * block, nq = std::min(block, heads - h0);
      for (int i = 0; i < nq; ++i) {
        const int64_t h = h0 + i;
        q1[size_t(i)] = qAbs + (t * heads + h) * latentDim;
        q2[size_t(i)] = qPe + (t * heads + h) * ropeDim;
        os[size_t(i)] = out + (t * heads + h) * latentDim;
      }
      detail::AttendBlock j{nq,      q1.data(), q2.data(), os.data(), pos0 + t + 1,
                            latent,  latentDim, latentDim, kPe,       ropeDim,
                            ropeDim, latent,    latentDim, latentDim, float(scale)};
      runBlock(isa, j);
    }
  });
}

void mlaAttention(ThreadPool& pool, const float* qAbs, const float* qPe, int64_t len, int heads,
                  int latentDim, int ropeDim, const float* latent, const float* kPe, int64_t pos0,
                  double scale, float* out) {
  mlaAttentionIsa(quant::detectIsa(), pool, qAbs, qPe, len, heads, latentDim, ropeDim, latent, kPe,
                  pos0, scale, out);
}

} // namespace kt::cpu
