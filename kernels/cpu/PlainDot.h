#pragma once
// Dot products of unpacked f32 rows (routers, f32 plans: cpu::linear's plain path), a block of
// up to 4 weight rows x 4 tokens at a time. Every dot keeps eight partial sums over lanes i % 8,
// combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) and then the tail, with a
// rounding after each multiply and each add (no FMA): the AVX2 kernel computes the same bits as
// the scalar reference on any machine, and the block shape never changes a result. With one
// chain per dot the core waits on each add (a router's 128 x 2048 over 512 tokens took 3.5 ms a
// layer on 16 Xeon threads); a 2 x 4 block keeps eight in flight.
#include <cstdint>

namespace kt::cpu {

constexpr int kPlainDotMaxRows = 4, kPlainDotMaxTokens = 4;

// dots[r * tokens + t] = w[r] . x[t] for r < rows <= 4, t < tokens <= 4, each of length k.
void plainDotBlock(const float* const* w, int rows, const float* const* x, int tokens, int64_t k,
                   float* dots);
// The scalar definition (what plainDotBlock computes, bit for bit).
void plainDotBlockRef(const float* const* w, int rows, const float* const* x, int tokens, int64_t k,
                      float* dots);

} // namespace kt::cpu
