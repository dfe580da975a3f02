#pragma once
// The CUDA backend's weight formats as host bytes. CudaBackend converts every matrix it uploads at
// load through packForGpu, and ExpertStream converts the checkpoint (unpacked) experts it streams
// for a long prefill through the same function: a streamed expert computes with exactly the bytes
// an uploaded one would hold (the same bf16 rounding, the same int8/int4 quantization rule).
// CPU-packed experts are streamed packed and widened on the GPU instead (widenedFormat below).
#include "kernels/cpu/Matrix.h"
#include "runtime/schema/plan_generated.h"

#include <cstddef>
#include <cstdint>

namespace kt {
class ThreadPool;
}

namespace kt::cudaops {

// f32, bf16 (round to nearest even), int8 with one f32 scale per row (symmetric, max|w| / 127:
// the CPU Int8 rule), int4 with one f16 scale per row and 128 columns (kernels/cuda/Int4Format.h).
enum class GpuFormat : uint8_t { F32, BF16, Int8, Int4 };

const char* gpuFormatName(GpuFormat f);
// The format of a GEMM matrix (expert stacks among them) in a plan: --gpu-quant first, then the
// plan's compute dtype.
GpuFormat gemmFormat(plan::QuantScheme gpuQuant, plan::DType computeDtype);

// Bytes of one [rows, cols] matrix in format `f`: its data, and its scales (int8: rows f32,
// int4: rows * int4Groups(cols) f16, none for f32/bf16).
size_t gpuDataBytes(GpuFormat f, int64_t rows, int64_t cols);
size_t gpuScaleBytes(GpuFormat f, int64_t rows, int64_t cols);

uint16_t toBf16Bits(float f);

// Prefill offload streams a CPU-packed (--cpu-quant) matrix as its packed bytes and widens it on
// the GPU (kernels/cuda/PackedWiden.h) into this format: f32 for f32 plans, bf16 for every other
// (bf16 plans, and --gpu-quant int8/int4 plans, whose GEMMs take a bf16 expert as well: the CPU's
// dequantized weights rounded once to bf16 instead of quantized a second time).
GpuFormat widenedFormat(GpuFormat planFormat);
// Bytes of a CPU-packed matrix's blob (header and panels); 0 for an unpacked view.
size_t packedBlobBytes(const cpu::MatrixView& v);

// Converts the host matrix `v` (any checkpoint dtype, or a CPU-packed blob: rows dequantized by
// rowToF32) into format `f` at `data` (gpuDataBytes) and `scales` (gpuScaleBytes; unused for
// f32/bf16). Rows run in parallel on `pool` when given. Returns false, leaving *badRow set, when
// int4 meets a non-finite value (the int4 rule needs finite weights); other formats copy them.
bool packForGpu(const cpu::MatrixView& v, GpuFormat f, void* data, void* scales, ThreadPool* pool,
                int64_t* badRow = nullptr);

} // namespace kt::cudaops
