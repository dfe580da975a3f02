// kt-partition sizes GPU-held weights the way the CUDA backend uploads them
// (CudaBackend::upload, cost::gpuFormat): every matrix in the plan's compute
// dtype, vectors (norms) and MLA's kv_b_proj in f32. The model is the bf16
// 3-layer DeepSeek-style module of partition_mla_moe.mlir (41 weights,
// 13,668,224 elements, of which 98,304 in kv_b_proj and 3,968 in vectors), all
// pinned to the GPU. By the runtime's rule the GPU holds
//   f32 plan:  4 B x 13,668,224                                  = 54,672,896 B
//   bf16 plan: 2 B x 13,565,952 + 4 B x (98,304 + 3,968)         = 27,540,992 B
//   no compute dtype (kt-opt's abstract model): as stored, 2 B   = 27,336,448 B
// (the hybrid f32 plan of docs/cost-model.md used twice its budget because the
// partitioner used the last rule for an f32 plan).

// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=f32 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=F32
// F32:      "device": "gpu:0",
// F32-NEXT: "kv_bytes":
// F32-NEXT: "prefill_busy_seconds":
// F32-NEXT: "weight_bytes": 54672896.0
// Layer 0's attention, f32: q 192x512, kv_a 144x512, kv_a_norm 128, kv_b
// 256x128, o 512x128 and the input norm 512, 4 B each = 1,083,904 B. Its decode
// step is launch-bound: 1 norm + 8 launches + 4 per sequence (2 cache appends,
// the attention kernel split over the keys and its merge) at 1 us each.
// F32:      "decode_seconds": 1.3e-05,
// F32-NEXT: "device": "gpu:0",
// F32-NEXT: "group": "mla attention",
// F32-NEXT: "kv_bytes":
// F32-NEXT: "layer": 0,
// F32-NEXT: "prefill_seconds":
// F32-NEXT: "weight_bytes": 1083904.0

// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=bf16 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=BF16
// BF16:      "device": "gpu:0",
// BF16-NEXT: "kv_bytes":
// BF16-NEXT: "prefill_busy_seconds":
// BF16-NEXT: "weight_bytes": 27540992.0
// Layer 0's attention, bf16: the matrices but kv_b at 2 B, kv_b and the norms
// at 4 B = 608,768 B.
// BF16:      "group": "mla attention",
// BF16-NEXT: "kv_bytes":
// BF16-NEXT: "layer": 0,
// BF16-NEXT: "prefill_seconds":
// BF16-NEXT: "weight_bytes": 608768.0

// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=STORED
// STORED:      "device": "gpu:0",
// STORED-NEXT: "kv_bytes":
// STORED-NEXT: "prefill_busy_seconds":
// STORED-NEXT: "weight_bytes": 27336448.0

// RUN: not kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json compute-dtype=fp8" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD
// BAD: error: kt-partition: compute-dtype: expected f32 or bf16, optionally +int8 or +int4 (or nothing: size GPU weights as stored), got 'fp8'

// --gpu-quant int8 (compute-dtype=bf16+int8): the GEMM matrices are int8 with an
// f32 scale per row, the rest as under bf16. Layer 0's attention: q 192x512
// (98,304 + 768), kv_a 144x512 (73,728 + 576), o 512x128 (65,536 + 2,048); kv_b
// 131,072 and the norms 512 + 2,048 at 4 B = 374,592 B.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=bf16+int8 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=INT8
// INT8:      "group": "mla attention",
// INT8-NEXT: "kv_bytes":
// INT8-NEXT: "layer": 0,
// INT8-NEXT: "prefill_seconds":
// INT8-NEXT: "weight_bytes": 374592.0

// --gpu-quant int8 in a prefill (GpuInt8.h, Blas::linearInt8): a product of more
// than 16 rows widens each int8 matrix to bf16 first, 3 launches per row block
// (widen, round the activations, GEMM) and a column scaling, instead of the one
// launch GpuLaunches counts for an f32 linear. Layer 0's attention at 512 tokens
// (f32+int8): q, kv_a and o are int8, so 12 launches + 3 x (3 + 1 - 1) = 21 at
// 1 us, more than its GPU work (under 8 us) -> 21 us (12 us under compute-dtype
// f32, above). Its decode is the int8 GEMV, one launch per matrix as counted:
// 13 us as in f32.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=f32+int8 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=I8PREFILL
// I8PREFILL:      "decode_seconds": 1.3e-05,
// I8PREFILL-NEXT: "device": "gpu:0",
// I8PREFILL-NEXT: "group": "mla attention",
// I8PREFILL-NEXT: "kv_bytes":
// I8PREFILL-NEXT: "layer": 0,
// I8PREFILL-NEXT: "prefill_seconds": 2.1e-05,

// --gpu-quant int4 (compute-dtype=bf16+int4): the same matrices int4 with an f16
// scale per row and 128 columns (kernels/cuda/Int4Format.h). Layer 0's attention:
// q 192x512 (49,152 + 192 x 4 x 2), kv_a 144x512 (36,864 + 1,152), o 512x128
// (32,768 + 1,024); kv_b 131,072 and the norms 2,560 at 4 B = 256,128 B.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=bf16+int4 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=INT4
// INT4:      "group": "mla attention",
// INT4-NEXT: "kv_bytes":
// INT4-NEXT: "layer": 0,
// INT4-NEXT: "prefill_seconds":
// INT4-NEXT: "weight_bytes": 256128.0

// int4 in a prefill (Blas::linearInt4): 3 launches per row block like int8 but no
// column scaling (the scales are applied while widening): 12 + 3 x (3 - 1) = 18
// launches at 1 us -> 18 us; decode 13 us as in f32.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=f32+int4 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=I4PREFILL
// I4PREFILL:      "decode_seconds": 1.3e-05,
// I4PREFILL-NEXT: "device": "gpu:0",
// I4PREFILL-NEXT: "group": "mla attention",
// I4PREFILL-NEXT: "kv_bytes":
// I4PREFILL-NEXT: "layer": 0,
// I4PREFILL-NEXT: "prefill_seconds": 1.8e-05,
