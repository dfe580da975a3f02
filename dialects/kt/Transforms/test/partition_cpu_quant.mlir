// cpu-quant: kt-quantize-weights runs after kt-partition and packs only the
// CPU-held matrices, so the partitioner must size (and time) CPU weights in
// the packed format, accelerator weights as stored. The model is
// partition_mla_moe.mlir (bf16 weights, 26.1 MiB as stored).

// As stored: the routed experts of a layer are 6.0 MiB of bf16.
// RUN: kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0 explain=true" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=STORED
// STORED: 1  routed experts          8 cpu                     6.0 MiB
// STORED: total                                            26.1 MiB

// int4 (groups of 32, an f16 scale each): 0.5625 bytes per weight instead of 2.
// RUN: kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0 cpu-quant=int4 explain=true" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=INT4
// INT4: 1  routed experts          8 cpu                     1.7 MiB
// INT4: total                                             7.5 MiB
// INT4: predicted: {{.*}} decode {{.*}} per step

// A CPU budget that holds the packed model but not the stored one.
// RUN: not kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0 cpu-mem=16MiB" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=TOO-SMALL
// TOO-SMALL: error: kt-partition: the model does not fit: it needs 29.4 MiB of CPU memory {{.*}} use --cpu-quant int4
// RUN: kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0 cpu-mem=16MiB cpu-quant=int4" \
// RUN:   | FileCheck %s --check-prefix=FITS
// FITS: kt.partition = {{.*}}profile = "test-gpu-box"

// With a GPU, what moves there keeps its stored size (the budget is in bf16 bytes).
// RUN: kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited cpu-quant=int4 explain=true" -o /dev/null \
// RUN:   | FileCheck %s --check-prefix=GPU
// GPU: gpu:0                26.1 MiB

// A scheme kt-compile would not accept is an error naming the option.
// RUN: not kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json cpu-quant=int3" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD
// BAD: error: kt-partition: cpu-quant: expected f32, bf16, int8, int4, int4:g32, int4:g128 (optionally :asym), got 'int3'
