#pragma once
// Quantized CPU matrix kernels: y[t, n] = sum_k x[t, k] * W[n, k] for a weight matrix W [N, K]
// (row-major in checkpoints: N output features, K input features) that was packed once, at compile
// time, into a format-specific blob (see Layout.h for the byte layout), and f32 activations x [T,
// K].
//
// Paths (same packed bytes for all):
//   * Isa::Scalar — portable C++; also the fallback of every other ISA.
//   * Isa::Avx2   — AVX2+FMA+F16C: dequantizes 256-column chunks of a 16-row panel to f32 in L1 and
//                   multiplies with f32 activations (exact activations, f32 accumulation).
//   * Isa::Avx512 — AVX-512 F/BW/VL + BF16 + VNNI: consumes the packed data directly. f32 weights
//   use
//                   FMA; bf16 weights use VDPBF16PS (activations rounded to bf16); int8/int4
//                   weights use VPDPBUSD (activations quantized to int8 on the fly).
//   * Isa::Amx    — AMX tiles (TDPBF16PS / TDPBSUD) for bf16 and int8 when t > kGemvMaxTokens, with
//                   the same activation rounding as Avx512; everything else runs the Avx512 code.
//
// GEMV vs GEMM (Avx512/Amx): for t <= kGemvMaxTokens (4) each 16-row panel is streamed once and
// every 64-byte line feeds all t tokens, with 4 independent accumulator chains per token so a
// single token is not latency bound — that path is bound by memory bandwidth. Beyond 4 tokens the
// register file cannot hold 4 chains x t tokens, so a register-tiled GEMM (2 panels x 8 tokens of
// accumulators, int4: 1 panel x 8 tokens) runs instead; it still reads each weight panel from DRAM
// once (the panel stays in L1/L2 while all token blocks pass over it), so it is also
// bandwidth-bound for small t and compute-bound from t ~ 16..32 on (arithmetic intensity 2*t flops
// per weight vs. the machine balance of ~100 flop/byte x bytes-per-weight). The threshold is
// therefore a register budget, not a cache one, and is the same for every format.
//
// Activation rounding (what `activationMode` reports; matmulRefAct reproduces it exactly):
//   * ActMode::F32          exact f32 activations (Scalar, Avx2, and f32 weights everywhere).
//   * ActMode::Bf16         x rounded to bf16 (round-to-nearest-even, denormals to zero: exactly
//   what
//                           VCVTNEPS2BF16 does). Relative error <= 2^-9 per element, so a dot
//                           product gains at most 2^-9 * sum|x w| (typically ~2^-9 * |y| /
//                           sqrt-ish).
//   * ActMode::Int8PerToken int8 weights: per token, symmetric over all K: s = max|x| / 127,
//                           q = round(x / s). Error <= s/2 per element; for LLM activations with a
//                           few outlier channels (max|x| ~ 20-100 x rms) this costs ~0.5-2% of |y|.
//   * ActMode::Int8PerGroup int4 weights: as above but with one scale per token per weight group
//                           (32 or 128 columns), which is free because int4 kernels convert to f32
//                           at every group anyway; outliers then only hurt their own group.
// The same token gives the same numbers whether it is decoded alone (t=1) or inside a prefill
// batch: the activation mode depends on the ISA and format, never on t.
//
// Threading: the caller splits output rows [n0, n1) over its threads. Every row range is correct;
// ranges that start and end on multiples of kRowBlock (16) do no redundant work.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kt::cpu::quant {

// Values are part of the packed header (Layout.h): never renumber.
enum class WeightFormat : uint32_t {
  F32 = 0,
  BF16 = 1,
  Int8 = 2,         // symmetric per output row: q in [-127, 127], f32 scale per row
  Int4G32Sym = 3,   // groups of 32 along K: q in [-8, 7], f16 scale per group (Q4_0-like)
  Int4G32Asym = 4,  // groups of 32: q in [0, 15], f16 scale + f16 min per group (w = d*q + min)
  Int4G128Sym = 5,  // groups of 128, as Int4G32Sym
  Int4G128Asym = 6, // groups of 128, as Int4G32Asym
};
constexpr WeightFormat kAllWeightFormats[] = {WeightFormat::F32,         WeightFormat::BF16,
                                              WeightFormat::Int8,        WeightFormat::Int4G32Sym,
                                              WeightFormat::Int4G32Asym, WeightFormat::Int4G128Sym,
                                              WeightFormat::Int4G128Asym};

// Ordered: a higher value supports everything a lower one does.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Amx = 3 };
constexpr Isa kAllIsas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx};

enum class ActMode { F32, Bf16, Int8PerToken, Int8PerGroup };

// Element type of a row-major source matrix given to packWeights.
enum class SourceType { F32, BF16, F16 };

constexpr int64_t kRowBlock = 16;     // output rows per packed panel
constexpr size_t kPackedAlign = 64;   // packed blobs should start 64-byte aligned (see Layout.h)
constexpr int64_t kGemvMaxTokens = 4; // t <= this: GEMV path; above: GEMM path
constexpr int64_t kInt8MaxK = 65536;  // int8: larger K could overflow the int32 VNNI accumulators

// "f32", "bf16", "int8", "int4:g32", "int4:g32:asym", "int4:g128", "int4:g128:asym".
const char* formatName(WeightFormat f);
bool parseFormat(std::string_view s, WeightFormat* out);
bool isInt4(WeightFormat f);
int64_t groupSize(WeightFormat f); // int4 group (32/128); 0 for other formats

// ---- ISA selection ------------------------------------------------------------------------------
const char* isaName(Isa isa); // "scalar", "avx2", "avx512", "amx"
bool parseIsa(std::string_view s, Isa* out);
// Best ISA this CPU and OS support (CPUID + XCR0; for AMX also the Linux arch_prctl permission),
// ignoring KT_ISA. Cached.
Isa bestSupportedIsa();
bool isaSupported(Isa isa);
// Best supported ISA, or KT_ISA=scalar|avx2|avx512|amx clamped to what is supported (with a note on
// stderr when clamped or unparsable). Cached after the first call.
Isa detectIsa();
// What detectIsa() would return for KT_ISA=request (nullptr: unset); uncached, for tests.
Isa isaForRequest(const char* request, bool quiet = false);

// ---- Packing (pure: bytes -> bytes) -------------------------------------------------------------
// Size of the packed blob for an [n, k] matrix; 0 when the shape is unsupported (negative sizes, or
// int8 with k > kInt8MaxK).
size_t packedBytes(WeightFormat f, int64_t n, int64_t k);
// Quantizes + packs row-major f32 w [n, k] into out[packedBytes(f, n, k)]. Weights must be finite;
// a row or group containing inf/NaN gets a NaN scale, so its outputs are NaN rather than garbage.
void packWeights(WeightFormat f, const float* w, int64_t n, int64_t k, uint8_t* out);
// Same from a bf16 or f16 (or f32) source; bf16 -> BF16 copies the bits exactly.
void packWeights(WeightFormat f, SourceType src, const void* w, int64_t n, int64_t k, uint8_t* out);
// Same with rows produced by a callback (loadRow(r, out[k]) for r in [0, n), called in order).
void packWeights(WeightFormat f, int64_t n, int64_t k,
                 const std::function<void(int64_t row, float* out)>& loadRow, uint8_t* out);
// Validates a blob (magic, version, format, shape, size) before a kernel trusts it.
bool checkPacked(WeightFormat f, const uint8_t* packed, size_t size, int64_t n, int64_t k,
                 std::string* error);

// Dequantize row r of a packed matrix into out[k] (debugging, embeddings).
void dequantizeRow(WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, int64_t r,
                   float* out);

// ---- Matmul -------------------------------------------------------------------------------------
// y[t, n] (row stride n) = x[t, k] * W^T for output rows [n0, n1) only. `isa` is clamped to what
// the CPU supports (never an illegal instruction). Uses a thread-local scratch buffer.
void matmul(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, const float* x,
            int64_t t, float* y, int64_t n0, int64_t n1);

// Scalar reference on the same packed data: weights dequantized exactly, exact f32 activations,
// double accumulation. The definition of the format.
void matmulRef(WeightFormat f, const uint8_t* packed, int64_t n, int64_t k, const float* x,
               int64_t t, float* y);
// Reference with the activation rounding of `mode` applied first (the definition the SIMD kernels
// are tested against with tight tolerances).
void matmulRefAct(ActMode mode, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                  const float* x, int64_t t, float* y);

// ---- Two-phase form (activations converted once, shared by all threads)
// --------------------------
ActMode activationMode(Isa isa, WeightFormat f);
// Token rows the prepared buffer holds (t padded for the GEMM tiles).
int64_t activationRows(Isa isa, WeightFormat f, int64_t t);
size_t activationBytes(Isa isa, WeightFormat f, int64_t k, int64_t t);
// buf: activationBytes(...) bytes, 64-byte aligned.
void prepareActivations(Isa isa, WeightFormat f, const float* x, int64_t k, int64_t t,
                        uint8_t* buf);
void matmulPrepared(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                    const uint8_t* act, int64_t t, float* y, int64_t n0, int64_t n1);
// The scalar definition of the prepared buffer for (mode, rows); SIMD preparation must match it
// byte for byte (tested).
size_t activationBytesFor(ActMode mode, WeightFormat f, int64_t k, int64_t rows);
void prepareActivationsRef(ActMode mode, WeightFormat f, const float* x, int64_t k, int64_t t,
                           int64_t rows, uint8_t* buf);

} // namespace kt::cpu::quant
