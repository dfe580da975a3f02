// Bad kt-partition input gets one clear line naming the option, file, field
// or layer at fault — never a crash.

// RUN: not kt-opt %s --kt-partition 2>&1 | FileCheck %s --check-prefix=NO-PROFILE
// NO-PROFILE: error: kt-partition: needs a hardware profile: profile=FILE (kt-compile: --hw FILE); see docs/hardware-profile.md and examples/hw/

// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/no-such.json" 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: kt-partition: {{.*}}Inputs/no-such.json: cannot open the hardware profile

// A misspelt field is named with its path and the fields that would be valid.
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/bad-typo.json" 2>&1 | FileCheck %s --check-prefix=TYPO
// TYPO: error: kt-partition: {{.*}}bad-typo.json: cpu.numa_nodes[0].bandwith_gbs: unknown field (expected one of: id, cores, memory_bytes, bandwidth_gbs)

// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/bad-gpu.json" 2>&1 | FileCheck %s --check-prefix=BAD-SIZE
// BAD-SIZE: error: kt-partition: {{.*}}bad-gpu.json: gpus[0].memory_bytes: unknown unit 'parsecs' in '24 parsecs' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)

// Inline JSON (for quick experiments); errors name it.
// RUN: not kt-opt %s --kt-partition='profile={"name": "x", "cpu": {"isa": ["avx9"]}}' 2>&1 | FileCheck %s --check-prefix=INLINE
// INLINE: error: kt-partition: inline profile: cpu.isa[0]: unknown ISA 'avx9' (expected one of: scalar, avx2, avx512, avx512_bf16, avx512_vnni, amx)

// Options.
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=lots" 2>&1 | FileCheck %s --check-prefix=GPU-MEM
// GPU-MEM: error: kt-partition: gpu-mem: expected a size such as 12GiB, 512MiB, 4096 or 'unlimited', got 'lots'
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json experts-on-gpu=many" 2>&1 | FileCheck %s --check-prefix=EXPERTS
// EXPERTS: error: kt-partition: experts-on-gpu: expected a number of experts per layer or 'auto', got 'many'
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json prefill-offload=sometimes" 2>&1 | FileCheck %s --check-prefix=OFFLOAD
// OFFLOAD: error: kt-partition: prefill-offload: expected auto, never or always, got 'sometimes'
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json placement-override=embed" 2>&1 | FileCheck %s --check-prefix=OVERRIDE-SYNTAX
// OVERRIDE-SYNTAX: error: kt-partition: placement override 'embed' is not REGEX=DEVICE
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json placement-override=embed=gpu:3" 2>&1 | FileCheck %s --check-prefix=OVERRIDE-DEVICE
// OVERRIDE-DEVICE: error: kt-partition: placement override 'embed=gpu:3': the profile has no device 'gpu:3' (it has cpu:numa0, cpu:numa1, gpu:0)
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json placement-override=embed=gpu:0 gpu-mem=1MiB" 2>&1 | FileCheck %s --check-prefix=OVERRIDE-BUDGET
// OVERRIDE-BUDGET: error: kt-partition: pinned placements (placement overrides or placements in the input) put 40.0 MiB on gpu:0, over its budget of 1.0 MiB (--gpu-mem)

// A statistics file that does not match the model names the layer.
// RUN: not kt-opt %S/partition_mla_moe.mlir --kt-partition="profile=%S/Inputs/gpu-box.json expert-stats=%S/Inputs/bad-stats.json" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=STATS
// STATS: error: kt-partition: {{.*}}bad-stats.json: layers.1 has 4 values but the model's layer 1 has 8 routed experts

module attributes {kt.model = {arch = "tiny", num_layers = 0 : i64}} {
  kt.weight @embed : tensor<40960x512xbf16> {hf_name = "model.embed_tokens.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 41943040>]}
  func.func @forward(%ids: tensor<?xi32>) -> tensor<?x40960xf32> {
    %e = kt.weight_ref @embed : tensor<40960x512xbf16>
    %h = kt.embedding %e, %ids : (tensor<40960x512xbf16>, tensor<?xi32>) -> tensor<?x512xf32>
    %logits = kt.lm_head %h, %e : (tensor<?x512xf32>, tensor<40960x512xbf16>) -> tensor<?x40960xf32>
    return %logits : tensor<?x40960xf32>
  }
}
