// The LoRA training ops: kt.lora_adapter and its verifier, the loss, backward
// ops with and without dx, kt.adamw. Custom syntax round-trips.
// RUN: kt-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// CHECK-LABEL: kt.lora_adapter @a_q {alpha = 1.600000e+01 : f64, in_features = 64 : i64, layout = "linear", out_features = 64 : i64, peft_name = "base_model.model.model.layers.0.self_attn.q_proj", r = 8 : i64, row_offsets = array<i64: 0>, rows = array<i64: 64>, targets = [@q]}
// CHECK: kt.lora_adapter @a_gate_up {{{.*}}layout = "experts_fused", num_experts = 4 : i64, out_features = 64 : i64{{.*}}r = 16 : i64, row_offsets = array<i64: 0, 32>, rows = array<i64: 32, 32>, targets = [@gate, @up]}
// CHECK: %{{.*}}, %{{.*}} = kt.cross_entropy_loss %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<?xi32>, tensor<320x64xf32>) -> (tensor<?x64xf32>, tensor<2xf32>)
// CHECK: %{{.*}} = kt.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} {eps = 1.000000e-05 : f64}
// CHECK: %{{.*}} = kt.linear_grad %{{.*}}, %{{.*}}, %{{.*}} {kt.adapters = {weight = @a_q}} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
// CHECK: kt.linear_grad %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64x64xf32>) -> ()
// CHECK: kt.mlp_grad
// CHECK: kt.adamw{{$}}
// CHECK: kt.adamw {lr = 1.000000e-02 : f64, max_grad_norm = 0.000000e+00 : f64}
module {
  kt.weight @q : tensor<64x64xf32> {hf_name = "model.layers.0.self_attn.q_proj.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
  kt.weight @gate : tensor<4x32x64xf32> {hf_name = "model.layers.1.mlp.experts.{e}.gate_proj.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 8192>, #kt.storage<file = "m.safetensors", offset = 8192, size = 8192>, #kt.storage<file = "m.safetensors", offset = 16384, size = 8192>, #kt.storage<file = "m.safetensors", offset = 24576, size = 8192>]}
  kt.weight @up : tensor<4x32x64xf32> {hf_name = "model.layers.1.mlp.experts.{e}.up_proj.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 8192>, #kt.storage<file = "m.safetensors", offset = 8192, size = 8192>, #kt.storage<file = "m.safetensors", offset = 16384, size = 8192>, #kt.storage<file = "m.safetensors", offset = 24576, size = 8192>]}
  kt.lora_adapter @a_q {peft_name = "base_model.model.model.layers.0.self_attn.q_proj", layout = "linear", r = 8, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}
  kt.lora_adapter @a_gate_up {peft_name = "base_model.model.model.layers.1.mlp.experts.base_layer", layout = "experts_fused", num_experts = 4, r = 16, alpha = 32.0, in_features = 64, out_features = 64, targets = [@gate, @up], row_offsets = array<i64: 0, 32>, rows = array<i64: 32, 32>}
  func.func @f(%x: tensor<?x64xf32>, %dy: tensor<?x64xf32>, %labels: tensor<?xi32>, %w: tensor<64x64xf32>, %n: tensor<64xf32>, %head: tensor<320x64xf32>, %g: tensor<128x64xf32>, %d: tensor<64x128xf32>) -> tensor<2xf32> {
    %dx, %loss = kt.cross_entropy_loss %x, %labels, %head : (tensor<?x64xf32>, tensor<?xi32>, tensor<320x64xf32>) -> (tensor<?x64xf32>, tensor<2xf32>)
    %0 = kt.rms_norm_grad %x, %dx, %n {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
    %1 = kt.linear_grad %x, %0, %w {kt.adapters = {weight = @a_q}} : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
    kt.linear_grad %x, %1, %w : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<64x64xf32>) -> ()
    kt.mlp_grad %x, %dy, %g, %g, %d : (tensor<?x64xf32>, tensor<?x64xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> ()
    kt.adamw
    kt.adamw {lr = 0.01 : f64, max_grad_norm = 0.0 : f64}
    return %loss : tensor<2xf32>
  }
}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op layout must be "linear" or "experts_fused", not "fused"}}
kt.lora_adapter @a {peft_name = "x", layout = "fused", r = 8, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op rank r must be positive, got 0}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = 0, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op targets cover 64 output rows, out_features is 96}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = 8, alpha = 16.0, in_features = 64, out_features = 96, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op target 1 starts at output row 0, expected 64 (targets tile the output rows)}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = 8, alpha = 16.0, in_features = 64, out_features = 128, targets = [@q, @q], row_offsets = array<i64: 0, 0>, rows = array<i64: 64, 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op target @q has 64 rows x 64 columns, adapter expects 64 x 32}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = 8, alpha = 16.0, in_features = 32, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op target @q must be a 3-D [E, out, in] weight for layout experts_fused}}
kt.lora_adapter @a {peft_name = "x", layout = "experts_fused", num_experts = 4, r = 8, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

// expected-error @+1 {{'kt.lora_adapter' op target @nope is not a kt.weight}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = 8, alpha = 16.0, in_features = 64, out_features = 64, targets = [@nope], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op num_experts must be set exactly for the experts_fused layout}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", num_experts = 4, r = 8, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

kt.weight @q : tensor<64x64xf32> {hf_name = "q.weight", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16384>]}
// expected-error @+1 {{'kt.lora_adapter' op rank r must be positive, got -2}}
kt.lora_adapter @a {peft_name = "x", layout = "linear", r = -2, alpha = 16.0, in_features = 64, out_features = 64, targets = [@q], row_offsets = array<i64: 0>, rows = array<i64: 64>}

// -----

func.func @bad_dy(%x: tensor<?x64xf32>, %dy: tensor<?x32xf32>, %g: tensor<128x64xf32>, %d: tensor<64x128xf32>) {
  // expected-error @+1 {{'kt.mlp_grad' op dy has type 'tensor<?x32xf32>', expected 'tensor<?x64xf32>' (the type of x)}}
  kt.mlp_grad %x, %dy, %g, %g, %d : (tensor<?x64xf32>, tensor<?x32xf32>, tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) -> ()
  return
}

// -----

func.func @bad_loss(%x: tensor<?x64xf32>, %labels: tensor<?xi32>, %head: tensor<320x64xf32>) {
  // expected-error @+1 {{'kt.cross_entropy_loss' op loss must be tensor<2xf32> (CE sum, predicted positions), got 'tensor<1xf32>'}}
  %dx, %loss = kt.cross_entropy_loss %x, %labels, %head : (tensor<?x64xf32>, tensor<?xi32>, tensor<320x64xf32>) -> (tensor<?x64xf32>, tensor<1xf32>)
  return
}

// -----

func.func @bad_linear(%x: tensor<?x64xf32>, %dy: tensor<?x32xf32>, %w: tensor<48x64xf32>) {
  // expected-error @+1 {{'kt.linear_grad' op dy [T, N] must have the weight's N = 48 columns}}
  kt.linear_grad %x, %dy, %w : (tensor<?x64xf32>, tensor<?x32xf32>, tensor<48x64xf32>) -> ()
  return
}
