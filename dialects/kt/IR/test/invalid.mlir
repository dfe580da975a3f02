// Every verifier rule of the kt dialect, one failing case per split.
// RUN: kt-opt %s -split-input-file -verify-diagnostics

//===----------------------------------------------------------------------===//
// #kt.device
//===----------------------------------------------------------------------===//

// expected-error @+1 {{invalid device "gpu:x": 'x' is not a GPU index (a non-negative integer without leading zeros)}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"gpu:x">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "gpu:-1": '-1' is not a GPU index}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"gpu:-1">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "gpu:01": '01' is not a GPU index}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"gpu:01">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "cpu:0": a CPU device is 'cpu:numaN' (N = NUMA node)}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"cpu:0">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "cpu:numa": '' is not a NUMA node index}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"cpu:numa">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "tpu:0": expected 'gpu:N', 'cpu:numaN', 'npu:N' or 'disk'}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"tpu:0">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{invalid device "disk:0"}}
kt.weight @w : tensor<4xf32> {hf_name = "w", placement = #kt.device<"disk:0">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

//===----------------------------------------------------------------------===//
// #kt.quant
//===----------------------------------------------------------------------===//

// expected-error @+1 {{unknown quantization scheme "int3" (expected f32, bf16, f16, int8 or int4)}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int3">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

// expected-error @+1 {{int4 quantization needs group = 32, 64 or 128, got 16}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int4", group = 16>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

// expected-error @+1 {{int4 quantization needs group = 32, 64 or 128, got 0}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int4">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

// expected-error @+1 {{group = 128 only applies to int4 (scheme "int8" is per output channel)}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int8", group = 128>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

// expected-error @+1 {{symmetric = false only applies to int8/int4, not "bf16"}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "bf16", symmetric = false>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

// expected-error @+2 {{expected 'true' or 'false'}}
// expected-error @+1 {{failed to parse KT_QuantAttr parameter 'symmetric' which is to be a `bool`}}
kt.weight @w : tensor<4x128xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int8", symmetric = 1>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// -----

//===----------------------------------------------------------------------===//
// #kt.storage
//===----------------------------------------------------------------------===//

// expected-error @+1 {{storage file name must not be empty}}
kt.weight @w : tensor<4xf32> {hf_name = "w", storage = [#kt.storage<file = "", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{storage range in "m.safetensors" has size 0}}
kt.weight @w : tensor<4xf32> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 0>]}

// -----

// expected-error @+1 {{storage range in "m.safetensors" overflows: offset 18446744073709551615 + size 16}}
kt.weight @w : tensor<4xf32> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 18446744073709551615, size = 16>]}

// -----

//===----------------------------------------------------------------------===//
// #kt.rope
//===----------------------------------------------------------------------===//

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope dim must be a positive even number, got 15}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 15, theta = 10000.0>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope theta must be positive and finite, got 0}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 0.0>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{unknown rope type "ntk" (expected default, linear, yarn or llama3)}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0, type = "ntk">} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope type "yarn" needs original_max_position > 0}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0, type = "yarn", factor = 40.0>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope type "llama3" needs 0 < low_freq_factor < high_freq_factor, got 4.000000e+00 and 1.000000e+00}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 500000.0, type = "llama3", factor = 8.0, original_max_position = 8192, low_freq_factor = 4.0, high_freq_factor = 1.0>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope factor must be positive and finite, got -2}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0, type = "linear", factor = -2>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x2x16xf32>, %p: tensor<?xi32>) -> tensor<?x2x16xf32> {
  // expected-error @+1 {{rope mscale must be finite and >= 0, got -1}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0, type = "yarn", original_max_position = 4096, mscale = -1>} : (tensor<?x2x16xf32>, tensor<?xi32>) -> tensor<?x2x16xf32>
  return %0 : tensor<?x2x16xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.weight
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'kt.weight' op @w has type 'tensor<?x4xf32>' but weights need a static shape}}
kt.weight @w : tensor<?x4xf32> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{'kt.weight' op attribute 'type' failed to satisfy constraint}}
kt.weight @w : tensor<4xi8> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 4>]}

// -----

// expected-error @+1 {{'kt.weight' op storage range 0 of @w has 128 bytes but 'tensor<4x8xbf16>' needs 64 (32 elements * 2 bytes)}}
kt.weight @w : tensor<4x8xbf16> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 128>]}

// -----

// expected-error @+1 {{'kt.weight' op @w has 3 storage ranges but 'tensor<4x8xbf16>' needs 1 (whole tensor) or 4 (one per slice along dim 0)}}
kt.weight @w : tensor<4x8xbf16> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>, #kt.storage<file = "m.safetensors", offset = 16, size = 16>, #kt.storage<file = "m.safetensors", offset = 32, size = 16>]}

// -----

// A stacked weight: one range per slice along dim 0, each 1/4 of the tensor.
// expected-error @+1 {{'kt.weight' op storage range 1 of @w has 32 bytes but 'tensor<4x8xbf16>' needs 16 (8 elements * 2 bytes)}}
kt.weight @w : tensor<4x8xbf16> {hf_name = "w.{e}", storage = [#kt.storage<file = "a.safetensors", offset = 0, size = 16>, #kt.storage<file = "b.safetensors", offset = 0, size = 32>, #kt.storage<file = "c.safetensors", offset = 0, size = 16>, #kt.storage<file = "d.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{'kt.weight' op @w has no storage ranges}}
kt.weight @w : tensor<4xf32> {hf_name = "w", storage = []}

// -----

// expected-error @+1 {{'kt.weight' op @w has an empty hf_name}}
kt.weight @w : tensor<4xf32> {hf_name = "", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// -----

// expected-error @+1 {{'kt.weight' op @w has shape [4, 96] but int4 group 64 requires the last (input) dimension to be a multiple of 64}}
kt.weight @w : tensor<4x96xbf16> {hf_name = "w", quant = #kt.quant<scheme = "int4", group = 64>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 768>]}

// -----

func.func @f() {
  // expected-error @+1 {{'kt.weight' op expects parent op 'builtin.module'}}
  kt.weight @w : tensor<4xf32> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
  return
}

// -----

//===----------------------------------------------------------------------===//
// kt.weight_ref
//===----------------------------------------------------------------------===//

func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{'kt.weight_ref' op refers to unknown weight @missing}}
  %0 = kt.weight_ref @missing : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

kt.weight @w : tensor<4xf32> {hf_name = "w", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
func.func @f() -> tensor<4xbf16> {
  // expected-error @+1 {{'kt.weight_ref' op has type 'tensor<4xbf16>' but @w is declared as 'tensor<4xf32>'}}
  %0 = kt.weight_ref @w : tensor<4xbf16>
  return %0 : tensor<4xbf16>
}

// -----

func.func @g() {
  return
}
func.func @f() -> tensor<4xf32> {
  // expected-error @+1 {{'kt.weight_ref' op @g is a 'func.func', not a kt.weight}}
  %0 = kt.weight_ref @g : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.embedding / kt.rms_norm / kt.linear / kt.rope
//===----------------------------------------------------------------------===//

func.func @f(%t: tensor<320xbf16>, %ids: tensor<?xi32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.embedding' op table has shape [320] but must be [V, H] (rank 2)}}
  %0 = kt.embedding %t, %ids : (tensor<320xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%t: tensor<320x64xbf16>, %ids: tensor<?xi32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.embedding' op result has shape [?, 32] but ids [T] with table [V, H] = [320, 64] requires [?, 64]}}
  %0 = kt.embedding %t, %ids : (tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @f(%t: tensor<320x64xbf16>, %ids: tensor<?xi64>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.embedding' op operand #1 must be 1D tensor of 32-bit signless integer values}}
  %0 = kt.embedding %t, %ids : (tensor<320x64xbf16>, tensor<?xi64>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.rms_norm' op weight has shape [32] but x [?, 64] (normalized over the last dimension) requires [64]}}
  %0 = kt.rms_norm %x, %w : (tensor<?x64xf32>, tensor<32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64xbf16>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.rms_norm' op result type 'tensor<?x32xf32>' must equal the type of x 'tensor<?x64xf32>'}}
  %0 = kt.rms_norm %x, %w : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.rms_norm' op eps must be positive and finite, got 0}}
  %0 = kt.rms_norm %x, %w {eps = 0.0 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xbf16>, %w: tensor<64xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{'kt.rms_norm' op operand #0 must be ranked tensor of 32-bit float values}}
  %0 = kt.rms_norm %x, %w : (tensor<?x64xbf16>, tensor<64xbf16>) -> tensor<?x64xbf16>
  return %0 : tensor<?x64xbf16>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x48xbf16>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.linear' op weight has shape [32, 48] but x [?, 64] requires [32, 64]}}
  %0 = kt.linear %x, %w : (tensor<?x64xf32>, tensor<32x48xbf16>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xbf16>, %b: tensor<64xbf16>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.linear' op bias has shape [64] but weight [32, 64] requires [32]}}
  %0 = kt.linear %x, %w, %b : (tensor<?x64xf32>, tensor<32x64xbf16>, tensor<64xbf16>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.linear' op result has shape [?, 64] but x [T, K] times weight [N, K] = [32, 64] requires [?, 32]}}
  %0 = kt.linear %x, %w : (tensor<?x64xf32>, tensor<32x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<32x64x1xbf16>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.linear' op weight has shape [32, 64, 1] but must be [N, K] (rank 2)}}
  %0 = kt.linear %x, %w : (tensor<?x64xf32>, tensor<32x64x1xbf16>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

func.func @f(%x: tensor<?x2x8xf32>, %p: tensor<?xi32>) -> tensor<?x2x8xf32> {
  // expected-error @+1 {{'kt.rope' op x has shape [?, 2, 8] but rope.dim = 16 requires a head dimension of at least 16}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0>} : (tensor<?x2x8xf32>, tensor<?xi32>) -> tensor<?x2x8xf32>
  return %0 : tensor<?x2x8xf32>
}

// -----

func.func @f(%x: tensor<4x2x16xf32>, %p: tensor<5xi32>) -> tensor<4x2x16xf32> {
  // expected-error @+1 {{'kt.rope' op positions has shape [5] but the token count of x requires [4]}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0>} : (tensor<4x2x16xf32>, tensor<5xi32>) -> tensor<4x2x16xf32>
  return %0 : tensor<4x2x16xf32>
}

// -----

func.func @f(%x: tensor<?x32xf32>, %p: tensor<?xi32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.rope' op x has shape [?, 32] but must be [T, heads, D] (rank 3)}}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 16, theta = 10000.0>} : (tensor<?x32xf32>, tensor<?xi32>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.attention (H = 128, 4 heads, 2 KV heads, head_dim 16)
//===----------------------------------------------------------------------===//

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<64x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op k_proj has shape [64, 128] but num_kv_heads * head_dim = 32 with hidden size 128 requires [32, 128]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<48x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op q_proj has shape [48, 128] but num_heads * head_dim = 64 with hidden size 128 requires [64, 128]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<48x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x96xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op v_proj has shape [32, 96] but num_kv_heads * head_dim = 32 with hidden size 128 requires [32, 128]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x96xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<64x128xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op o_proj has shape [64, 128] but num_heads * head_dim = 64 with hidden size 128 requires [128, 64]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<64x128xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<48x128xbf16>, %v: tensor<48x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op num_heads = 4 is not a multiple of num_kv_heads = 3 (each KV head serves num_heads / num_kv_heads query heads)}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 3 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<48x128xbf16>, tensor<48x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op rope.dim = 32 exceeds head_dim = 16}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 32, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op scale must be positive and finite, got 0}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.0 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op num_kv_heads must be positive, got 0}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 0 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op layer must be >= 0, got -1}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = -1 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>, %bq: tensor<64xbf16>, %bk: tensor<64xbf16>, %bv: tensor<32xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op k_bias has shape [64] but num_kv_heads * head_dim = 32 requires [32]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o bias(%bq, %bk, %bv) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<64xbf16>, tensor<64xbf16>, tensor<32xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

// Only the generic form can leave out some of the biases.
func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>, %bq: tensor<64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op q_bias, k_bias and v_bias must be given together}}
  %0 = "kt.attention"(%x, %p, %q, %k, %v, %o, %bq) <{num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0>}> : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>, %nq: tensor<16xbf16>, %nk: tensor<16xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op q_norm/k_norm need a norm_eps attribute}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o qk_norm(%nq, %nk) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<16xbf16>, tensor<16xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>, %nq: tensor<16xbf16>, %nk: tensor<32xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op k_norm has shape [32] but head_dim = 16 requires [16]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o qk_norm(%nq, %nk) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64, norm_eps = 1.0e-06 : f64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<16xbf16>, tensor<32xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x128xf32> {
  // expected-error @+1 {{'kt.attention' op norm_eps is set but there is no q_norm/k_norm to use it}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64, norm_eps = 1.0e-06 : f64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x128xf32>
  return %0 : tensor<?x128xf32>
}

// -----

func.func @f(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.attention' op result has shape [?, 64] but x [?, 128] requires [?, 128]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<3x128xf32>, %p: tensor<4xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>) -> tensor<3x128xf32> {
  // expected-error @+1 {{'kt.attention' op positions has shape [4] but the token count of x requires [3]}}
  %0 = kt.attention %x, %p, %q, %k, %v, %o {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<3x128xf32>, tensor<4xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>) -> tensor<3x128xf32>
  return %0 : tensor<3x128xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.mla_attention (H = 64, 4 heads, nope 16, rope 8, v 16, kv_lora_rank 32)
//===----------------------------------------------------------------------===//

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op q_lora_rank = 32 requires q_a_proj, q_a_norm and q_b_proj and no q_proj}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, q_lora_rank = 32 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %qa: tensor<32x64xbf16>, %qan: tensor<32xbf16>, %qb: tensor<96x32xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op q_lora_rank = 0 requires q_proj and no q_a_proj/q_a_norm/q_b_proj}}
  %0 = kt.mla_attention %x, %p q_lora(%qa, %qan, %qb) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<96x32xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<64x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op q_proj has shape [64, 64] but num_heads * (qk_nope_head_dim + qk_rope_head_dim) = 96 with hidden size 64 requires [96, 64]}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %qa: tensor<32x64xbf16>, %qan: tensor<32xbf16>, %qb: tensor<96x16xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op q_b_proj has shape [96, 16] but num_heads * (qk_nope_head_dim + qk_rope_head_dim) = 96 with q_lora_rank = 32 requires [96, 32]}}
  %0 = kt.mla_attention %x, %p q_lora(%qa, %qan, %qb) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, q_lora_rank = 32 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<96x16xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<32x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op kv_a_proj has shape [32, 64] but kv_lora_rank = 32 + qk_rope_head_dim = 40 with hidden size 64 requires [40, 64]}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<40xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op kv_a_norm has shape [40] but kv_lora_rank = 32 requires [32]}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<40xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<96x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op kv_b_proj has shape [96, 32] but num_heads * (qk_nope_head_dim + v_head_dim) = 128 with kv_lora_rank = 32 requires [128, 32]}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<96x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x96xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op o_proj has shape [64, 96] but num_heads * v_head_dim = 64 with hidden size 64 requires [64, 64]}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x96xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op rope.dim = 16 must equal qk_rope_head_dim = 8}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mla_attention' op kv_lora_rank must be positive, got 0}}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, kv_lora_rank = 0 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.moe (H = 64, E = 8, I = 32, shared S = 64)
//===----------------------------------------------------------------------===//

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op experts_per_token = 9 must be in [1, num_experts = 8]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 9 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op experts_per_token = 0 must be in [1, num_experts = 8]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 0 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op unknown scoring "relu" (expected softmax or sigmoid)}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "relu", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op unknown topk_method "random" (expected greedy, group_limited_greedy or noaux_tc)}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "random", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op n_group = 3 must be >= 1 and divide num_experts = 8}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "group_limited_greedy", n_group = 3 : i64, topk_group = 2 : i64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_group = 5 must be in [1, n_group = 4]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "group_limited_greedy", n_group = 4 : i64, topk_group = 5 : i64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_method = "greedy" ignores expert groups; n_group = 4 and topk_group = 2 must both be 1 (or use group_limited_greedy / noaux_tc)}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", n_group = 4 : i64, topk_group = 2 : i64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_method = "group_limited_greedy" needs n_group > 1 (with one group it is "greedy")}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "group_limited_greedy", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op experts_per_token = 6 exceeds the 4 experts in the topk_group = 2 selected groups of 2}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 6 : i64, scoring = "softmax", topk_method = "group_limited_greedy", n_group = 4 : i64, topk_group = 2 : i64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_method = "noaux_tc" needs a correction_bias operand (e_score_correction_bias)}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "sigmoid", topk_method = "noaux_tc", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %b: tensor<8xf32>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_method = "noaux_tc" needs scoring = "sigmoid", got "softmax"}}
  %0 = kt.moe %x, %r correction_bias(%b) experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "noaux_tc", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %b: tensor<8xf32>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op topk_method = "noaux_tc" ranks groups by their top-2 experts, so each of the n_group = 8 groups needs >= 2 experts (has 1)}}
  %0 = kt.moe %x, %r correction_bias(%b) experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "sigmoid", topk_method = "noaux_tc", n_group = 8 : i64, topk_group = 4 : i64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %b: tensor<8xf32>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op correction_bias is only used by topk_method = "noaux_tc", not "greedy"}}
  %0 = kt.moe %x, %r correction_bias(%b) experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "sigmoid", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %b: tensor<16xf32>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op correction_bias has shape [16] but num_experts = 8 requires [8]}}
  %0 = kt.moe %x, %r correction_bias(%b) experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "sigmoid", topk_method = "noaux_tc", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<16xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<16x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op router has shape [16, 64] but num_experts = 8 with hidden size 64 requires [8, 64]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<16x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<4x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op gate has shape [4, 32, 64] but num_experts = 8, moe intermediate size 32 (from gate) and hidden size 64 requires [8, 32, 64]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<4x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x48x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op up has shape [8, 48, 64] but num_experts = 8, moe intermediate size 32 (from gate) and hidden size 64 requires [8, 32, 64]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x48x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x32x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op down has shape [8, 32, 64] but num_experts = 8, moe intermediate size 32 (from gate) and hidden size 64 requires [8, 64, 32]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>, %sg: tensor<64x64xbf16>, %su: tensor<64x64xbf16>, %sd: tensor<64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op shared_down has shape [64, 32] but shared intermediate size 64 (from shared_gate) with hidden size 64 requires [64, 64]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) shared(%sg, %su, %sd) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>, %seg: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op shared_expert_gate needs shared experts (shared_gate/up/down)}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) shared_expert_gate(%seg) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>, %sg: tensor<64x64xbf16>, %su: tensor<64x64xbf16>, %sd: tensor<64x64xbf16>, %seg: tensor<64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op shared_expert_gate has shape [64] but hidden size 64 requires [1, 64]}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) shared(%sg, %su, %sd) shared_expert_gate(%seg) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.moe' op routed_scaling_factor must be positive and finite, got 0}}
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", routed_scaling_factor = 0.0 : f64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

//===----------------------------------------------------------------------===//
// kt.mlp / kt.lm_head / elementwise / kt.tap
//===----------------------------------------------------------------------===//

func.func @f(%x: tensor<?x64xf32>, %g: tensor<128x64xbf16>, %u: tensor<128x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mlp' op unsupported activation "gelu" (only "silu" is implemented)}}
  %0 = kt.mlp %x, %g, %u, %d {activation = "gelu"} : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %g: tensor<128x64xbf16>, %u: tensor<96x64xbf16>, %d: tensor<64x128xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mlp' op up has shape [96, 64] but intermediate size 128 (from gate) and hidden size 64 requires [128, 64]}}
  %0 = kt.mlp %x, %g, %u, %d : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<96x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %g: tensor<128x64xbf16>, %u: tensor<128x64xbf16>, %d: tensor<128x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.mlp' op down has shape [128, 64] but intermediate size 128 (from gate) and hidden size 64 requires [64, 128]}}
  %0 = kt.mlp %x, %g, %u, %d : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<128x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<320x32xbf16>) -> tensor<?x320xf32> {
  // expected-error @+1 {{'kt.lm_head' op weight has shape [320, 32] but hidden size 64 requires [320, 64]}}
  %0 = kt.lm_head %x, %w : (tensor<?x64xf32>, tensor<320x32xbf16>) -> tensor<?x320xf32>
  return %0 : tensor<?x320xf32>
}

// -----

func.func @f(%x: tensor<?x64xf32>, %w: tensor<320x64xbf16>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.lm_head' op result has shape [?, 64] but x [T, H] with weight [V, H] = [320, 64] requires [?, 320]}}
  %0 = kt.lm_head %x, %w : (tensor<?x64xf32>, tensor<320x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%a: tensor<?x64xf32>, %b: tensor<?x32xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.add' op failed to verify that all of {lhs, rhs, result} have same type}}
  %0 = "kt.add"(%a, %b) : (tensor<?x64xf32>, tensor<?x32xf32>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%a: tensor<?x64xf32>, %b: tensor<?x32xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kt.swiglu' op failed to verify that all of {gate, up, result} have same type}}
  %0 = "kt.swiglu"(%a, %b) : (tensor<?x64xf32>, tensor<?x32xf32>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// -----

func.func @f(%a: tensor<?x64xf32>) -> tensor<?x32xf32> {
  // expected-error @+1 {{'kt.tap' op failed to verify that all of {input, result} have same type}}
  %0 = "kt.tap"(%a) {name = "x"} : (tensor<?x64xf32>) -> tensor<?x32xf32>
  return %0 : tensor<?x32xf32>
}

// -----

//===----------------------------------------------------------------------===//
// The kt.model module attribute
//===----------------------------------------------------------------------===//

// expected-error @+1 {{'kt.model' must be a dictionary, got "deepseek_v3"}}
module attributes {kt.model = "deepseek_v3"} {
}

// -----

module {
  // expected-error @+1 {{'kt.model' belongs on the module, not on 'func.func'}}
  func.func @f() attributes {kt.model = {arch = "x"}} {
    return
  }
}
