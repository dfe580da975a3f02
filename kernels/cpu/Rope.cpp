#include "kernels/cpu/Rope.h"

#include <algorithm>
#include <cmath>

namespace kt::cpu {

namespace {
// YaRN's correction range: the dimensions whose wavelengths lie between beta_fast and beta_slow
// rotations over the original context are blended between interpolation and extrapolation.
double yarnCorrectionDim(double rotations, int dim, double base, double maxPos) {
  return (dim * std::log(maxPos / (rotations * 2 * M_PI))) / (2 * std::log(base));
}
} // namespace

std::vector<float> ropeInvFreq(const RopeParams& p) {
  const int half = p.dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    // float32 as in transformers: base ** (arange(0, dim, 2).float() / dim)
    float expo = float(2 * i) / float(p.dim);
    inv[size_t(i)] = 1.0f / std::pow(float(p.theta), expo);
  }
  switch (p.type) {
  case RopeType::Default:
    break;
  case RopeType::Linear:
    for (float& f : inv)
      f = float(f / p.factor);
    break;
  case RopeType::Llama3: {
    double oldCtx = double(p.originalMaxPosition);
    double lowWavelen = oldCtx / p.lowFreqFactor, highWavelen = oldCtx / p.highFreqFactor;
    for (float& f : inv) {
      double wavelen = 2 * M_PI / f;
      double scaled = wavelen > lowWavelen ? f / p.factor : f;
      if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
        double smooth = (oldCtx / wavelen - p.lowFreqFactor) / (p.highFreqFactor - p.lowFreqFactor);
        scaled = (1 - smooth) * scaled / p.factor + smooth * scaled;
      }
      f = float(scaled);
    }
    break;
  }
  case RopeType::Yarn: {
    double low =
        std::floor(yarnCorrectionDim(p.betaFast, p.dim, p.theta, double(p.originalMaxPosition)));
    double high =
        std::ceil(yarnCorrectionDim(p.betaSlow, p.dim, p.theta, double(p.originalMaxPosition)));
    low = std::max(low, 0.0);
    high = std::min(high, double(p.dim - 1));
    if (low == high)
      high += 0.001;
    for (int i = 0; i < half; ++i) {
      float posFreq = std::pow(float(p.theta), float(2 * i) / float(p.dim));
      float extrapolation = 1.0f / posFreq;
      float interpolation = 1.0f / (float(p.factor) * posFreq);
      float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
      float extrapolationFactor = 1.0f - ramp;
      inv[size_t(i)] =
          interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
    }
    break;
  }
  }
  return inv;
}

void applyRope(float* x, int heads, int64_t stride, int64_t offset, int64_t position,
               const RopeParams& p, const std::vector<float>& invFreq) {
  const int half = p.dim / 2;
  // cos/sin once per token, reused by every head.
  float cosv[512], sinv[512];
  for (int i = 0; i < half; ++i) {
    float angle = float(position) * invFreq[size_t(i)];
    cosv[i] = std::cos(angle) * float(p.attentionFactor);
    sinv[i] = std::sin(angle) * float(p.attentionFactor);
  }
  for (int h = 0; h < heads; ++h) {
    float* v = x + h * stride + offset;
    for (int i = 0; i < half; ++i) {
      float* a = p.interleaved ? &v[2 * i] : &v[i];
      float* b = p.interleaved ? &v[2 * i + 1] : &v[i + half];
      float x0 = *a, x1 = *b;
      *a = x0 * cosv[i] - x1 * sinv[i];
      *b = x1 * cosv[i] + x0 * sinv[i];
    }
  }
}

} // namespace kt::cpu
