#pragma once
// Internal: the unit of work the attention kernels share across ISAs, and the per-ISA entry points.
// Only plain declarations and a member-function-free struct cross translation-unit boundaries (the
// ISA objects are compiled with -mavx2 / -mavx512f; see kernels/cpu/quant/Layout.h for why).
#include <cstdint>

namespace kt::cpu::detail {

// One query token x a block of heads reading the same key/value rows: for i < nq,
//   score[s] = scale * (q1[i] . a[s] + q2[i] . b[s])   (b == nullptr: no second term)
//   out[i]   = sum_s softmax(score)[s] * v[s]           for s < ctx
// where a[s] = a + s * aStride (d1 floats), b[s] = b + s * bStride (d2 floats),
// v[s] = v + s * vStride (dv floats).
struct AttendBlock {
  int nq;
  const float* const* q1;
  const float* const* q2;
  float* const* out;
  int64_t ctx;
  const float* a;
  int64_t aStride;
  int d1;
  const float* b;
  int64_t bStride;
  int d2;
  const float* v;
  int64_t vStride;
  int dv;
  float scale;
};

// scores: nq * ctx floats of scratch.
void attendBlockScalar(const AttendBlock& j, float* scores);
void attendBlockAvx2(const AttendBlock& j, float* scores);
void attendBlockAvx512(const AttendBlock& j, float* scores);
// Unnormalized form for key ranges merged later (AttentionSplit.cpp): out[i] = sum_s exp(score_s -
// m[i]) v[s], m[i] = max score of head i, l[i] = sum_s exp(score_s - m[i]).
void attendPartialAvx2(const AttendBlock& j, float* m, float* l);
void attendPartialAvx512(const AttendBlock& j, float* m, float* l);

} // namespace kt::cpu::detail
