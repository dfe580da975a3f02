#pragma once
// Quantities the cost model and the partitioner talk in: byte sizes as users type them
// ("12GiB", "0", "unlimited"), weight storage formats and what a matrix costs in each, and the
// human-readable rendering used by --explain and by error messages.
//
// Plain C++ with no exceptions in the interface: this header is included by LLVM-style
// (-fno-exceptions) code such as the kt-partition pass.
#include <cstdint>
#include <string>

namespace kt::cost {

// A budget of "unlimited": larger than any real memory, still finite arithmetic.
constexpr double kUnlimitedBytes = 1e30;

// "12GiB", "1.5 GB", "512MiB", "4096" (bytes), "0", "unlimited". Binary (KiB/MiB/GiB/TiB) and
// decimal (KB/MB/GB/TB) units; a bare number is bytes. On failure returns false and says why.
bool parseByteSize(const std::string& text, double* bytes, std::string* why);

// 1536 -> "1.5 KiB", 3.2e10 -> "29.8 GiB"; kUnlimitedBytes -> "unlimited".
std::string formatBytes(double bytes);
// 1.2e-5 -> "12.0 us", 0.0345 -> "34.5 ms", 2.5 -> "2.50 s".
std::string formatSeconds(double seconds);

// How a weight is stored at run time (the `#kt.quant` scheme, or the checkpoint dtype).
enum class WeightFormat { F32, BF16, F16, Int8, Int4 };

const char* formatName(WeightFormat f);
bool parseWeightFormat(const std::string& name, WeightFormat* f);

struct QuantSpec {
  WeightFormat format = WeightFormat::F32;
  int64_t group = 0;     // int4 group size along the input dimension
  bool symmetric = true; // int4 without a per-group minimum
};

// A --cpu-quant scheme: f32, bf16, int8, int4 (= int4:g32), int4:g32, int4:g128, with an optional
// ":asym" after the int4 group. False for anything else.
bool parseCpuQuant(const std::string& scheme, QuantSpec* out);

// What kt-quantize-weights makes of a [*, cols] matrix under scheme `q`: int4 groups must divide
// cols, so the group falls back to 32, then the matrix to int8 (compiler/passes/QuantizeWeights).
QuantSpec effectiveCpuQuant(const QuantSpec& q, int64_t cols);

// Bytes of a [rows, cols] matrix (rows = output channels, PyTorch nn.Linear layout) stored as `q`,
// matching the packed CPU layouts (kernels/cpu/quant/Layout.h): f32 4 B, bf16/f16 2 B; int8 1 B
// plus one f32 scale per row; int4 0.5 B plus one f16 scale per group of `group` columns (and one
// f16 minimum per group when asymmetric). Padding to kernel tiles is ignored (under 1% for real
// models).
double matrixBytes(int64_t rows, int64_t cols, const QuantSpec& q);

// Bytes of an unquantized tensor of `elements` elements (norm vectors, biases).
double plainBytes(int64_t elements, WeightFormat f);

// The dtype a weight has on a GPU. The CUDA backend (runtime/exec/cuda/CudaBackend.cpp, upload())
// converts what the plan stores into the plan's compute dtype when it uploads: a matrix or stacked
// matrices (rank >= 2) become bf16 under --dtype bf16 and f32 otherwise; vectors (norms, biases)
// and MLA's kv_b_proj (read by the f32 batched GEMMs of the absorbed attention) are always f32.
// AsStored is the partitioner's rule for modules compiled without a compute dtype (kt-opt on a
// hand-written module): the checkpoint dtype or #kt.quant.
// With --gpu-quant int8 (F32Int8, BF16Int8) the matrices the GPU reads only through GEMMs
// (projections, MLPs, experts, lm_head) are int8 with an f32 scale per row instead; embedding
// tables, routers, Qwen2's shared gate and kv_b keep the dtype.
enum class GpuDtype { AsStored, F32, BF16, F32Int8, BF16Int8 };
// "" -> AsStored, "f32", "bf16", "f32+int8", "bf16+int8"; false for anything else.
bool parseGpuDtype(const std::string& name, GpuDtype* out);
// The format a tensor of `rank` has on a GPU under `d` (`forceF32`: MLA's kv_b_proj; `gemmOnly`:
// every GPU use is a GEMM's matrix); `stored` is returned for AsStored.
WeightFormat gpuFormat(GpuDtype d, int rank, bool forceF32, WeightFormat stored,
                       bool gemmOnly = false);

} // namespace kt::cost
