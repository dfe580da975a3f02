// kt-verify-placement: what plan emission relies on after partitioning.
// RUN: kt-opt %s --split-input-file --kt-verify-placement -verify-diagnostics

// A well-formed per-expert map: 4 experts over two devices, the CPU-held ones
// streamed to the GPU for prompts of at least 256 tokens.
module {
  kt.weight @r : tensor<4x8xf32> {hf_name = "r", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "m", offset = 0, size = 128>]}
  kt.weight @g : tensor<4x8x8xf32> {hf_name = "g.{e}", placement = #kt.device<"cpu:numa0">, storage = [#kt.storage<file = "m", offset = 0, size = 256>, #kt.storage<file = "m", offset = 256, size = 256>, #kt.storage<file = "m", offset = 512, size = 256>, #kt.storage<file = "m", offset = 768, size = 256>]}
  kt.weight @d : tensor<4x8x8xf32> {hf_name = "d.{e}", placement = #kt.device<"cpu:numa0">, storage = [#kt.storage<file = "m", offset = 0, size = 256>, #kt.storage<file = "m", offset = 256, size = 256>, #kt.storage<file = "m", offset = 512, size = 256>, #kt.storage<file = "m", offset = 768, size = 256>]}
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
    %r = kt.weight_ref @r : tensor<4x8xf32>
    %g = kt.weight_ref @g : tensor<4x8x8xf32>
    %d = kt.weight_ref @d : tensor<4x8x8xf32>
    %y = kt.moe %x, %r experts(%g, %g, %d) {num_experts = 4 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 1 : i64, placement = #kt.device<"gpu:0">, kt.expert_devices = [#kt.device<"gpu:0">, #kt.device<"cpu:numa0">], kt.expert_placement = array<i32: 0, 1, 1, 0>, kt.prefill_offload_min_tokens = 256 : i64, kt.prefill_offload_device = #kt.device<"gpu:0">} : (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<?x8xf32>
    return %y : tensor<?x8xf32>
  }
}

// -----

module {
  kt.weight @r : tensor<4x8xf32> {hf_name = "r", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "m", offset = 0, size = 128>]}
  kt.weight @g : tensor<4x8x8xf32> {hf_name = "g.{e}", placement = #kt.device<"cpu:numa0">, storage = [#kt.storage<file = "m", offset = 0, size = 256>, #kt.storage<file = "m", offset = 256, size = 256>, #kt.storage<file = "m", offset = 512, size = 256>, #kt.storage<file = "m", offset = 768, size = 256>]}
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
    %r = kt.weight_ref @r : tensor<4x8xf32>
    %g = kt.weight_ref @g : tensor<4x8x8xf32>
    // expected-error @+1 {{'kt.expert_placement' has 3 entries but the op has 4 experts}}
    %y = kt.moe %x, %r experts(%g, %g, %g) {num_experts = 4 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 1 : i64, placement = #kt.device<"gpu:0">, kt.expert_devices = [#kt.device<"gpu:0">], kt.expert_placement = array<i32: 0, 0, 0>} : (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<?x8xf32>
    return %y : tensor<?x8xf32>
  }
}

// -----

module {
  kt.weight @r : tensor<4x8xf32> {hf_name = "r", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "m", offset = 0, size = 128>]}
  kt.weight @g : tensor<4x8x8xf32> {hf_name = "g.{e}", placement = #kt.device<"cpu:numa0">, storage = [#kt.storage<file = "m", offset = 0, size = 256>, #kt.storage<file = "m", offset = 256, size = 256>, #kt.storage<file = "m", offset = 512, size = 256>, #kt.storage<file = "m", offset = 768, size = 256>]}
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
    %r = kt.weight_ref @r : tensor<4x8xf32>
    %g = kt.weight_ref @g : tensor<4x8x8xf32>
    // expected-error @+1 {{'kt.expert_placement': expert 2 has device index 5, but 'kt.expert_devices' lists 2 device(s)}}
    %y = kt.moe %x, %r experts(%g, %g, %g) {num_experts = 4 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 1 : i64, placement = #kt.device<"gpu:0">, kt.expert_devices = [#kt.device<"gpu:0">, #kt.device<"cpu:numa0">], kt.expert_placement = array<i32: 0, 1, 5, 0>} : (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<?x8xf32>
    return %y : tensor<?x8xf32>
  }
}

// -----

module {
  kt.weight @r : tensor<4x8xf32> {hf_name = "r", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "m", offset = 0, size = 128>]}
  kt.weight @g : tensor<4x8x8xf32> {hf_name = "g.{e}", placement = #kt.device<"cpu:numa0">, storage = [#kt.storage<file = "m", offset = 0, size = 256>, #kt.storage<file = "m", offset = 256, size = 256>, #kt.storage<file = "m", offset = 512, size = 256>, #kt.storage<file = "m", offset = 768, size = 256>]}
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
    %r = kt.weight_ref @r : tensor<4x8xf32>
    %g = kt.weight_ref @g : tensor<4x8x8xf32>
    // expected-error @+1 {{'kt.expert_devices' and 'kt.expert_placement' go together; only one is present}}
    %y = kt.moe %x, %r experts(%g, %g, %g) {num_experts = 4 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 1 : i64, placement = #kt.device<"gpu:0">, kt.expert_placement = array<i32: 0, 0, 0, 0>} : (tensor<?x8xf32>, tensor<4x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>, tensor<4x8x8xf32>) -> tensor<?x8xf32>
    return %y : tensor<?x8xf32>
  }
}

// -----

module {
  // expected-error @+1 {{has no placement (run kt-partition or kt-assign-placement)}}
  kt.weight @r : tensor<4x8xf32> {hf_name = "r", storage = [#kt.storage<file = "m", offset = 0, size = 128>]}
  func.func @f(%x: tensor<?x8xf32>) -> tensor<?x4xf32> {
    %r = kt.weight_ref @r : tensor<4x8xf32>
    // expected-error @+1 {{has no placement (run kt-partition or kt-assign-placement)}}
    %y = kt.linear %x, %r : (tensor<?x8xf32>, tensor<4x8xf32>) -> tensor<?x4xf32>
    return %y : tensor<?x4xf32>
  }
}
