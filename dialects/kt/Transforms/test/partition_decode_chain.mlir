// kt-partition with the probe's decode chain in the profile (decode_kernel_us,
// decode_gemv_gbs; docs/hardware-profile.md): a decode-sized GPU step streams
// each matrix's 1-token product at the measured rate for the unit's mean matrix
// size and pays the chain's time per kernel. The model is the f32 3-layer
// DeepSeek-style module of partition_mla_moe.mlir with everything on the GPU.
//
// Layer 0's MLA attention: 1,083,904 B in 4 matrices (q 192x512, kv_a 144x512,
// kv_b 256x128, o 512x128; the norms are vectors, not products), mean 270,976 B:
// log2 = 18.048, 51.2% of the way from 64 KiB (50 GB/s) to 1 MiB (200 GB/s)
// -> 126.79 GB/s -> 8.549 us, plus the attention kernel's 513 pairs x 2,176
// FLOPs at 100 TFLOP/s (0.011 us) and 13 launches (1 norm + 8 + 4 per sequence).
// Replayed as a graph (every unit on the GPU): 13 x 2 us -> 34.56 us.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box-chain.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=f32 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=GRAPH
// GRAPH:      "decode_seconds": 3.455{{[0-9]*}}e-05,
// GRAPH-NEXT: "device": "gpu:0",
// GRAPH-NEXT: "group": "mla attention",
// GRAPH-NEXT: "kv_bytes":
// GRAPH-NEXT: "layer": 0,

// The embedding on the CPU: no graph, the 13 launches are issued eagerly at the
// chain's 4 us each and the products' 8.56 us of work runs beyond them:
// 13 x 4 + 8.56 = 60.56 us (more than the replayed 34.56).
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box-chain.json gpu-mem=unlimited placement-override=.*=gpu:0,embed=cpu:numa0 compute-dtype=f32 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=EAGER
// EAGER:      "decode_seconds": 6.05{{[0-9]*}}e-05,
// EAGER-NEXT: "device": "gpu:0",
// EAGER-NEXT: "group": "mla attention",
// EAGER-NEXT: "kv_bytes":
// EAGER-NEXT: "layer": 0,

// Without the chain (gpu-box.json) the same unit is launch-bound at 13 x 1 us
// (partition_gpu_dtype.mlir); a prefill ignores the chain either way.
// RUN: kt-opt %S/partition_mla_moe.mlir -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited placement-override=.*=gpu:0 compute-dtype=f32 explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=OLD
// OLD:      "decode_seconds": 1.3e-05,
// OLD-NEXT: "device": "gpu:0",
// OLD-NEXT: "group": "mla attention",
