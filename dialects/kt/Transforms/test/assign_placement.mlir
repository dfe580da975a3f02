// kt-assign-placement places every unplaced kt.weight and kt op on one
// device; placements already present are kept.
// RUN: kt-opt %s --kt-assign-placement | FileCheck %s --check-prefix=NUMA0
// RUN: kt-opt %s --kt-assign-placement=device=gpu:0 | FileCheck %s --check-prefix=GPU0
// RUN: not kt-opt %s --kt-assign-placement=device=gpu0 2>&1 | FileCheck %s --check-prefix=BAD

// NUMA0: kt.weight @embed : tensor<320x64xbf16> {hf_name = "model.embed_tokens.weight", placement = #kt.device<"cpu:numa0">,
// NUMA0: kt.weight @norm : tensor<64xbf16> {hf_name = "model.norm.weight", placement = #kt.device<"cpu:numa0">,
// A weight pinned by the user stays where it is.
// NUMA0: kt.weight @lm_head : tensor<320x64xbf16> {hf_name = "lm_head.weight", placement = #kt.device<"gpu:1">,
// NUMA0-LABEL: func.func @forward
// weight_ref and tap do no work and get no placement.
// NUMA0: kt.weight_ref @embed : tensor<320x64xbf16>
// NUMA0-NOT: placement
// NUMA0-SAME: {{$}}
// NUMA0: kt.embedding %{{.*}}, %{{.*}} {placement = #kt.device<"cpu:numa0">}
// NUMA0: kt.rms_norm %{{.*}}, %{{.*}} {eps = 1.000000e-05 : f64, placement = #kt.device<"cpu:numa0">}
// NUMA0: kt.tap %{{.*}} {name = "normed"} : tensor<?x64xf32>
// NUMA0: kt.lm_head %{{.*}}, %{{.*}} {placement = #kt.device<"gpu:1">}

// GPU0: kt.weight @embed {{.*}}placement = #kt.device<"gpu:0">
// GPU0: kt.weight @norm {{.*}}placement = #kt.device<"gpu:0">
// GPU0: kt.weight @lm_head {{.*}}placement = #kt.device<"gpu:1">
// GPU0: kt.embedding {{.*}}placement = #kt.device<"gpu:0">
// GPU0: kt.rms_norm {{.*}}placement = #kt.device<"gpu:0">
// GPU0: kt.lm_head {{.*}}placement = #kt.device<"gpu:1">

// BAD: kt-assign-placement: invalid device="gpu0": expected 'gpu:N', 'cpu:numaN', 'npu:N' or 'disk'

module attributes {kt.model = {arch = "tiny"}} {
  kt.weight @embed : tensor<320x64xbf16> {hf_name = "model.embed_tokens.weight", storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 40960>]}
  kt.weight @norm : tensor<64xbf16> {hf_name = "model.norm.weight", storage = [#kt.storage<file = "model.safetensors", offset = 40960, size = 128>]}
  kt.weight @lm_head : tensor<320x64xbf16> {hf_name = "lm_head.weight", placement = #kt.device<"gpu:1">, storage = [#kt.storage<file = "model.safetensors", offset = 41088, size = 40960>]}

  func.func @forward(%ids: tensor<?xi32>, %positions: tensor<?xi32>) -> tensor<?x320xf32> {
    %e = kt.weight_ref @embed : tensor<320x64xbf16>
    %h = kt.embedding %e, %ids : (tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
    %n = kt.weight_ref @norm : tensor<64xbf16>
    %x = kt.rms_norm %h, %n {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %t = kt.tap %x {name = "normed"} : tensor<?x64xf32>
    %w = kt.weight_ref @lm_head : tensor<320x64xbf16>
    %logits = kt.lm_head %t, %w {placement = #kt.device<"gpu:1">} : (tensor<?x64xf32>, tensor<320x64xbf16>) -> tensor<?x320xf32>
    return %logits : tensor<?x320xf32>
  }
}
