#pragma once
// Quantized CPU matrix kernels: y[t, n] = sum_k x[t, k] * W[n, k] for a weight matrix W [N, K]
// (row-major in checkpoints: N output features, K input features) packed once, at compile time,
// into a format-specific blob (byte layout: Layout.h), and f32 activations x [T, K].
//
// Paths (all read the same packed bytes):
//   Isa::Scalar  portable C++; also what any ISA falls back to.
//   Isa::Avx2    AVX2 + FMA + F16C. int8/int4 weights: VPMADDUBSW products with activations
//                quantized to int8 as for VNNI (token blocks of up to 4 loop inside each panel).
//                bf16 weights (exact f32 activations): t <= 2 unpacks each 64-byte line to f32 in
//                registers (GEMV); otherwise 256-column chunks of a 16-row panel are dequantized
//                to f32 in L1 and an FMA micro-kernel runs over them.
//   Isa::Avx512  AVX-512 F/BW/VL + BF16 + VNNI, straight from the packed lines: f32 weights with
//                FMA, bf16 weights with VDPBF16PS (activations rounded to bf16), int8/int4
//                weights with VPDPBUSD (activations quantized to int8 on the fly).
//   Isa::Amx     AMX tiles (TDPBF16PS / TDPBSUD) for bf16 and int8 when t > kGemvMaxTokens, with
//                the activation rounding of Avx512; everything else runs the Avx512 code.
//
// GEMV vs GEMM (Avx512/Amx). For t <= kGemvMaxTokens (4) each 16-row panel is streamed once and
// every 64-byte line feeds all t tokens, with 4-8 accumulator chains per token so that one token
// is not latency-bound: this path is bound by memory bandwidth. Above 4 tokens the registers
// cannot hold 4 chains x t tokens, so a register-tiled GEMM runs (2 panels x 8 tokens of
// accumulators; int4 1 panel x 8 tokens; AMX 2 x 2 tiles of 16 x 16). It also reads each panel
// from DRAM once (token blocks loop inside a panel pair, which stays in L1/L2), so it is
// bandwidth-bound for small t and compute-bound from t ~ 16..32 on (2t flops per weight against a
// machine balance of roughly 100 flop per byte). The threshold is a register budget, not a cache
// size, and the same for every format.
//
// Activation rounding (activationMode(); matmulRefAct reproduces each mode exactly):
//   ActMode::F32           exact f32 activations (Scalar, bf16 weights on Avx2, and f32
//                          weights everywhere).
//   ActMode::Bf16          x rounded to bf16, nearest-even, denormals to zero (what VCVTNEPS2BF16
//                          does): error <= 2^-9 |x| per element.
//   ActMode::Int8PerToken  int8 weights: per token, symmetric over all of K, s = max|x| / 127,
//                          q = rint(x / s): error <= s/2 per element. Activations with outlier
//                          channels make s large for every element of the token (see README.md for
//                          measured errors).
//   ActMode::Int8PerGroup  int4 weights: as above with one scale per token per weight group (32 or
//                          128 columns); free, since int4 kernels convert to f32 at every group
//                          anyway, and an outlier then only coarsens its own group.
// The mode depends on the ISA and the format, never on t: a token gets the same numbers alone in
// decode and inside a prefill batch.
//
// Threading: the caller splits output rows [n0, n1) over its threads. Any split is correct; splits
// at multiples of kRowBlock (16) do no redundant work.
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

constexpr int64_t kRowBlock = 16; // output rows per packed panel
// Row unit for splitting a one-token GEMV between threads: the AVX-512 kernel streams 4 panels
// side by side (its full speed) and falls back to one panel at a time for a remainder.
constexpr int64_t kGemvRowUnit = 64;
constexpr size_t kPackedAlign = 64;   // packed blobs should start 64-byte aligned (see Layout.h)
constexpr int64_t kGemvMaxTokens = 4; // t <= this: GEMV path; above: GEMM path
constexpr int64_t kInt8MaxK = 65536;  // int8: larger K could overflow the int32 VNNI accumulators

// "f32", "bf16", "int8", "int4:g32", "int4:g32:asym", "int4:g128", "int4:g128:asym".
const char* formatName(WeightFormat f);
bool parseFormat(std::string_view s, WeightFormat* out);
bool isInt4(WeightFormat f);
int64_t groupSize(WeightFormat f); // int4 group (32/128); 0 for other formats

// ---- ISA selection ----
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

// ---- Packing (pure: bytes -> bytes) ----
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
// Rows [r0, r0 + nr) of an f32 / bf16 / int8 blob into out (row stride ld), exactly dequantizeRow's
// values, with the AVX-512 panel transpose (training's dy . W reads whole weight blocks this way).
// False, nothing written, when `isa` (clamped to this CPU) is below Avx512, for other formats, or
// when r0 is not a multiple of 16: the caller then uses dequantizeRow.
bool dequantizeRows(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                    int64_t r0, int64_t nr, float* out, int64_t ld);

// ---- Matmul ----
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

// ---- Two-phase form (activations converted once, shared by all threads) ----
ActMode activationMode(Isa isa, WeightFormat f);
// Token rows the prepared buffer holds (t padded for the GEMM tiles).
int64_t activationRows(Isa isa, WeightFormat f, int64_t t);
size_t activationBytes(Isa isa, WeightFormat f, int64_t k, int64_t t);
// buf: activationBytes(...) bytes, 64-byte aligned.
void prepareActivations(Isa isa, WeightFormat f, const float* x, int64_t k, int64_t t,
                        uint8_t* buf);
// prepareActivations in parts, for threads: with `buf` zeroed first (activationBytes bytes), token
// rows [r0, r1) of the t rows; any partition of [0, t) gives prepareActivations' bytes.
void prepareActivationRows(Isa isa, WeightFormat f, const float* x, int64_t k, int64_t t,
                           int64_t r0, int64_t r1, uint8_t* buf);
void matmulPrepared(Isa isa, WeightFormat f, const uint8_t* packed, int64_t n, int64_t k,
                    const uint8_t* act, int64_t t, float* y, int64_t n0, int64_t n1);
// The scalar definition of the prepared buffer for (mode, rows); SIMD preparation must match it
// byte for byte (tested).
size_t activationBytesFor(ActMode mode, WeightFormat f, int64_t k, int64_t rows);
void prepareActivationsRef(ActMode mode, WeightFormat f, const float* x, int64_t k, int64_t t,
                           int64_t rows, uint8_t* buf);

} // namespace kt::cpu::quant
