#pragma once
// A scalar model of the AMX tile instructions MatmulAmx.cpp uses, for machines without AMX:
// amx_emulated.cpp includes MatmulAmx.cpp with KT_AMX_EMULATE pointing here, so the kernel's tile
// shapes, strides and offsets are tested everywhere (the instruction semantics are Intel's:
// TDPBF16PS  C.f32[m][n] += sum_k A.bf16[m][2k]*B.bf16[k][2n] + A.bf16[m][2k+1]*B.bf16[k][2n+1]
// TDPBSUD    C.s32[m][n] += sum_k sum_i s8(A[m][4k+i]) * u8(B[k][4n+i])).
// Every tile is 16 rows x 64 bytes, matching the kernel's only configuration.
#include <cstdint>
#include <cstring>

#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#undef _tile_dpbsud

namespace kt_amx_emu {
struct Tiles {
  alignas(64) uint8_t t[8][16][64];
};
static thread_local Tiles regs;

static inline void load(int d, const void* base, long stride) {
  for (int r = 0; r < 16; ++r)
    std::memcpy(regs.t[d][r], static_cast<const uint8_t*>(base) + r * stride, 64);
}
static inline void store(int s, void* base, long stride) {
  for (int r = 0; r < 16; ++r)
    std::memcpy(static_cast<uint8_t*>(base) + r * stride, regs.t[s][r], 64);
}
static inline void zero(int d) {
  std::memset(regs.t[d], 0, sizeof regs.t[d]);
}
static inline float bf(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
static inline void dpbf16ps(int c, int a, int b) {
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float acc;
      std::memcpy(&acc, regs.t[c][m] + 4 * n, 4);
      for (int k = 0; k < 16; ++k)
        acc += bf(regs.t[a][m] + 4 * k) * bf(regs.t[b][k] + 4 * n) +
               bf(regs.t[a][m] + 4 * k + 2) * bf(regs.t[b][k] + 4 * n + 2);
      std::memcpy(regs.t[c][m] + 4 * n, &acc, 4);
    }
}
static inline void dpbsud(int c, int a, int b) {
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      int32_t acc;
      std::memcpy(&acc, regs.t[c][m] + 4 * n, 4);
      for (int k = 0; k < 16; ++k)
        for (int i = 0; i < 4; ++i)
          acc += int32_t(int8_t(regs.t[a][m][4 * k + i])) * int32_t(regs.t[b][k][4 * n + i]);
      std::memcpy(regs.t[c][m] + 4 * n, &acc, 4);
    }
}
} // namespace kt_amx_emu

#define _tile_loadd(d, base, stride) kt_amx_emu::load(d, base, stride)
#define _tile_stored(s, base, stride) kt_amx_emu::store(s, base, stride)
#define _tile_zero(d) kt_amx_emu::zero(d)
#define _tile_dpbf16ps(c, a, b) kt_amx_emu::dpbf16ps(c, a, b)
#define _tile_dpbsud(c, a, b) kt_amx_emu::dpbsud(c, a, b)
#define _tile_loadconfig(cfg) ((void)(cfg))
#define _tile_release() ((void)0)
