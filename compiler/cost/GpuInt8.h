#pragma once
// What a --gpu-quant int8 matrix costs the CUDA backend beyond what GpuLaunches counts for a
// linear. Blas::linearInt8 (kernels/cuda/Blas.cu) multiplies up to kInt8GemvTokens rows with the
// int8 GEMV (one launch per kGemvMaxTokens rows; reads 1 B per weight). More rows — a prefill's
// projections, or an expert's share of one — take the tensor-core path: per row block of at most
// kInt8WidenWeights weights it widens q to bf16 (int8ToBf16: reads 1 B, writes 2 B per weight),
// rounds the activations to bf16 and runs a bf16 cuBLAS GEMM (reads the 2 B again), then scales
// the output columns once (scaleColumns: reads and writes the f32 output). The cost model charges
// that traffic at the GPU's bandwidth, the GEMM at the bf16 rate, and the launches.
// Keep in step with Blas::linearInt8.
//
// --gpu-quant int4 (Blas::linearInt4) has the same shape: up to 16 rows gemvInt4 (reads 0.5 B per
// weight plus an f16 scale per row and 128 columns); more rows widen each row block to bf16 with
// the group scales applied (int4ToBf16: reads the int4 bytes, writes 2 B per weight), then the
// bf16 GEMM — and no column scaling. GpuInt8Work records both kinds (int4Matrices of them int4),
// with their bytes, so that the launches and the traffic follow the format.
#include "compiler/cost/Units.h"

#include <cstdint>
#include <string>

namespace kt::cost {

constexpr double kInt8GemvTokens = 16;         // Blas::kInt8GemvTokens
constexpr double kInt8GemvTokensPerLaunch = 8; // kGemvMaxTokens (DeviceKernels.h)
constexpr double kInt8WidenWeights = 32 << 20; // weights per widened row block (Blas.cu)
constexpr int64_t kGpuInt4Group = 128;         // kernels/cuda/Int4Format.h's kInt4Group

// kt-compile --gpu-quant: which format the GPU's GEMM matrices take (CudaBackend's upload).
enum class GpuQuant { None, Int8, Int4 };
// How the cost model sizes a --gpu-quant matrix: int8 with an f32 scale per row; int4 symmetric
// with an f16 scale per row and 128 columns (matrixBytes' int4 at group 128 — the backend's
// bytes exactly when cols % 128 == 0, as in every real model; it pads a partial last group).
QuantSpec gpuQuantSpec(GpuQuant q);
// The partitioner's compute dtype with the --gpu-quant suffix: "f32", "bf16", "f32+int8",
// "bf16+int8", "f32+int4", "bf16+int4" or "" (as stored). *dtype gets what the matrices that are
// not quantized become (parseGpuDtype; a +int4 dtype maps to the +int8 one, whose GEMM-only rule
// is the same), *quant the format of the quantized ones. false for anything else.
bool parseGpuComputeDtype(const std::string& name, GpuDtype* dtype, GpuQuant* quant);

// The int8 matrices of one piece of a unit on a GPU (its own projections, its shared experts, or
// one routed expert).
struct GpuInt8Work {
  double matrices = 0;     // int8 and int4 GEMM matrices
  double rowBlocks = 0;    // their widening row blocks (one per matrix unless it is huge)
  double weights = 0;      // their weight elements
  double outputs = 0;      // their output columns (rows of W): scaleColumns' f32 traffic per token
  double counted = 0;      // launches GpuLaunches already counts for them (linearLaunches each)
  double int4Matrices = 0; // of `matrices`, the int4 ones (no scaleColumns launch)
  double int4Weights = 0;  // their weight elements (of `weights`)
  double int4Outputs = 0;  // their output columns (of `outputs`: never scaled)
  double bytes = 0;        // what all of them occupy (and a GEMV reads): q plus scales

  bool empty() const { return matrices == 0; }
  // Adds a [rows, cols] matrix whose linear GpuLaunches counts as `countedLaunches`, int8 or (with
  // `format` Int4) int4.
  void add(int64_t rows, int64_t cols, double countedLaunches,
           WeightFormat format = WeightFormat::Int8);
  // Bytes the widening kernels move for all the matrices at once: read q (and scales), write the
  // bf16 copy (2 B per weight).
  double widenBytes() const { return bytes + 2.0 * weights; }
  // Output columns scaleColumns rescales (the int8 matrices only).
  double scaledOutputs() const { return outputs - int4Outputs; }
  // The work of everything in *this that `before` did not have (for splitting a unit's pieces).
  GpuInt8Work minus(const GpuInt8Work& before) const;
  // Whether products of `tokens` rows take the widening path.
  static bool widens(double tokens) { return tokens > kInt8GemvTokens; }
  // Launches Blas::linearInt8 issues for all the matrices at `tokens` rows, minus `counted`.
  double extraLaunches(double tokens) const;
};

} // namespace kt::cost
