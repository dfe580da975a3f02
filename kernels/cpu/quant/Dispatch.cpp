// ISA detection (CPUID + XCR0 + Linux AMX permission), KT_ISA override, and the public matmul entry
// points that route to one ISA's translation unit. Baseline flags: this file must run everywhere.
#include "kernels/cpu/quant/Kernels.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <cmath>
#include <cpuid.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kt::cpu::quant {
using namespace detail;

const char* isaName(Isa isa) {
  switch (isa) {
  case Isa::Scalar:
    return "scalar";
  case Isa::Avx2:
    return "avx2";
  case Isa::Avx512:
    return "avx512";
  case Isa::Amx:
    return "amx";
  }
  return "?";
}

bool parseIsa(std::string_view s, Isa* out) {
  for (Isa i : kAllIsas)
    if (s == isaName(i)) {
      *out = i;
      return true;
    }
  return false;
}

namespace {

uint64_t readXcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

// Linux keeps AMX tile data disabled until a process asks for it (kernel >= 5.16).
bool requestAmxPermission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0)
    return false;
  return (bitmask >> kXfeatureXtiledata) & 1;
#else
  return false;
#endif
}

Isa probeIsa() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d))
    return Isa::Scalar;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1,
             f16c = (c >> 29) & 1;
  if (!osxsave || !avx)
    return Isa::Scalar;
  const uint64_t xcr0 = readXcr0();
  if ((xcr0 & 0x6) != 0x6)
    return Isa::Scalar; // OS saves SSE + AVX state
  if (__get_cpuid_max(0, nullptr) < 7)
    return Isa::Scalar;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  const bool vnni = (c >> 11) & 1;
  const bool amxBf16 = (d >> 22) & 1, amxTile = (d >> 24) & 1, amxInt8 = (d >> 25) & 1;
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  const bool avx512bf16 = (a1 >> 5) & 1;
  if (!(avx2 && fma && f16c))
    return Isa::Scalar;
  const bool zmmState = (xcr0 & 0xe0) == 0xe0; // opmask, ZMM_Hi256, Hi16_ZMM
  if (!(avx512f && avx512bw && avx512vl && vnni && avx512bf16 && zmmState))
    return Isa::Avx2;
  const bool tileState = (xcr0 & 0x60000) == 0x60000; // XTILECFG, XTILEDATA
  if (!(amxTile && amxBf16 && amxInt8 && tileState))
    return Isa::Avx512;
  if (!requestAmxPermission())
    return Isa::Avx512;
  return Isa::Amx;
}

} // namespace

Isa bestSupportedIsa() {
  static const Isa best = probeIsa();
  return best;
}

bool isaSupported(Isa isa) {
  return int(isa) <= int(bestSupportedIsa());
}

static Isa clampIsa(Isa isa) {
  Isa best = bestSupportedIsa();
  return int(isa) <= int(best) ? isa : best;
}

Isa isaForRequest(const char* request, bool quiet) {
  const Isa best = bestSupportedIsa();
  if (!request || !*request)
    return best;
  Isa want;
  if (!parseIsa(request, &want)) {
    if (!quiet)
      std::fprintf(stderr, "kt: KT_ISA='%s' is not one of scalar|avx2|avx512|amx; using %s\n",
                   request, isaName(best));
    return best;
  }
  if (!isaSupported(want)) {
    if (!quiet)
      std::fprintf(stderr, "kt: KT_ISA=%s is not supported by this CPU; using %s\n", request,
                   isaName(best));
    return best;
  }
  return want;
}

Isa detectIsa() {
  static const Isa isa = isaForRequest(std::getenv("KT_ISA"));
  return isa;
}

ActMode activationMode(Isa isa, WeightFormat f) {
  isa = clampIsa(isa);
  if (isa == Isa::Scalar || f == WeightFormat::F32)
    return ActMode::F32;
  if (f == WeightFormat::BF16) // AVX2 has no bf16 product: exact f32 activations there
    return isa == Isa::Avx2 ? ActMode::F32 : ActMode::Bf16;
  if (f == WeightFormat::Int8)
    return ActMode::Int8PerToken;
  return ActMode::Int8PerGroup;
}

static bool usesAmx(Isa isa, WeightFormat f, int64_t t) {
  return isa == Isa::Amx && t > kGemvMaxTokens &&
         (f == WeightFormat::BF16 || f == WeightFormat::Int8);
}

int64_t activationRows(Isa isa, WeightFormat f, int64_t t) {
  isa = clampIsa(isa);
  if (t <= kGemvMaxTokens)
    return t;
  return roundUpI(t, usesAmx(isa, f, t) ? 16 : 8); // GEMM tiles: 8 tokens (AMX: 16)
}

size_t activationBytes(Isa isa, WeightFormat f, int64_t k, int64_t t) {
  return makeActLayout(activationMode(isa, f), f, k, t, activationRows(isa, f, t)).totalBytes;
}

void prepareActivations(Isa isa, WeightFormat f, const float* x, int64_t k, int64_t t,
                        uint8_t* buf) {
  std::memset(buf, 0, activationBytes(isa, f, k, t)); // padding columns and rows are zero
  prepareActivationRows(isa, f, x, k, t, 0, t, buf);
}

void prepareActivationRows(Isa isa, WeightFormat f, const float* x, int64_t k, int64_t t,
                           int64_t r0, int64_t r1, uint8_t* buf) {
  isa = clampIsa(isa);
  const ActMode mode = activationMode(isa, f);
  const ActLayout A = makeActLayout(mode, f, k, t, activationRows(isa, f, t));
  if (mode == ActMode::F32) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(buf + size_t(r) * A.rowBytes, x + r * k, size_t(k) * 4);
    return;
  }
  if (isa == Isa::Avx2) // the int8 modes (bf16 weights take f32 activations on AVX2)
    prepareAvx2Int8Rows(A, x, k, r0, r1, buf);
  else
    prepareAvx512Rows(A, x, k, r0, r1, buf);
}

namespace {

float* floatScratch(size_t count) {
  static thread_local std::vector<float> buf;
  if (buf.size() < count + 16)
    buf.resize(count + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
}

uint8_t* byteScratch(size_t count) {
  static thread_local std::vector<uint8_t> buf;
  if (buf.size() < count + 64)
    buf.resize(count + 64);
  return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) &
                                    ~uintptr_t(63));
}

} // namespace

void matmulPrepared(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                    const uint8_t* act, int64_t t, float* y, int64_t n0, int64_t n1) {
  isa = clampIsa(isa);
  if (n0 < 0)
    n0 = 0;
  if (n1 > n)
    n1 = n;
  if (n0 >= n1 || t <= 0)
    return;
  if (packedBytes(f, n, k) == 0) { // unsupported shape: make it visible, never read the blob
    for (int64_t s = 0; s < t; ++s)
      for (int64_t r = n0; r < n1; ++r)
        y[s * n + r] = NAN;
    return;
  }
  Job j;
  j.w = makeLayout(f, n, k);
  j.packed = packed;
  j.a = makeActLayout(activationMode(isa, f), f, k, t, activationRows(isa, f, t));
  j.act = act;
  j.y = y;
  j.n0 = n0;
  j.n1 = n1;
  switch (isa) {
  case Isa::Scalar:
    matmulScalarKernel(j, floatScratch(dequantScratchFloats(j)));
    return;
  case Isa::Avx2:
    matmulAvx2(j, floatScratch(dequantScratchFloats(j)));
    return;
  case Isa::Avx512:
    matmulAvx512(j);
    return;
  case Isa::Amx:
    if (usesAmx(isa, f, t))
      matmulAmx(j);
    else
      matmulAvx512(j);
    return;
  }
}

bool dequantizeRows(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                    int64_t r0, int64_t nr, float* out, int64_t ld) {
  if (int(clampIsa(isa)) < int(Isa::Avx512) || r0 < 0 || nr <= 0 || r0 >= n)
    return false;
  return dequantizeRowsAvx512(f, packed, n, k, r0, nr, out, ld);
}

void matmul(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, const float* x,
            int64_t t, float* y, int64_t n0, int64_t n1) {
  isa = clampIsa(isa);
  if (t <= 0 || n0 >= n1)
    return;
  uint8_t* act = byteScratch(activationBytes(isa, f, k, t));
  prepareActivations(isa, f, x, k, t, act);
  matmulPrepared(isa, f, packed, n, k, act, t, y, n0, n1);
}

} // namespace kt::cpu::quant
