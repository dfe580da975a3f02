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
#include <cstdint>

namespace kt::cost {

constexpr double kInt8GemvTokens = 16;         // Blas::kInt8GemvTokens
constexpr double kInt8GemvTokensPerLaunch = 8; // kGemvMaxTokens (DeviceKernels.h)
constexpr double kInt8WidenWeights = 32 << 20; // weights per widened row block (Blas.cu)

// The int8 matrices of one piece of a unit on a GPU (its own projections, its shared experts, or
// one routed expert).
struct GpuInt8Work {
  double matrices = 0;  // int8 GEMM matrices
  double rowBlocks = 0; // their widening row blocks (one per matrix unless it is huge)
  double weights = 0;   // their weight elements
  double outputs = 0;   // their output columns (rows of W): scaleColumns' f32 traffic per token
  double counted = 0;   // launches GpuLaunches already counts for them (linearLaunches each)

  bool empty() const { return matrices == 0; }
  // Adds a [rows, cols] matrix whose linear GpuLaunches counts as `countedLaunches`.
  void add(int64_t rows, int64_t cols, double countedLaunches);
  // The work of everything in *this that `before` did not have (for splitting a unit's pieces).
  GpuInt8Work minus(const GpuInt8Work& before) const;
  // Whether products of `tokens` rows take the widening path.
  static bool widens(double tokens) { return tokens > kInt8GemvTokens; }
  // Launches Blas::linearInt8 issues for all the matrices at `tokens` rows, minus `counted`.
  double extraLaunches(double tokens) const;
};

} // namespace kt::cost
