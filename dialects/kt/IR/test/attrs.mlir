// Round trip of the kt attributes; parameters equal to their defaults are
// omitted when printed, and struct parameters may come in any order.
// RUN: kt-opt %s | FileCheck %s
// RUN: kt-opt %s | kt-opt | FileCheck %s

// CHECK-LABEL: kt.weight @on_gpu
// CHECK-SAME: placement = #kt.device<"gpu:0">
kt.weight @on_gpu : tensor<4xf32> {hf_name = "a", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
// CHECK-LABEL: kt.weight @on_gpu7
// CHECK-SAME: placement = #kt.device<"gpu:7">
kt.weight @on_gpu7 : tensor<4xf32> {hf_name = "a", placement = #kt.device<"gpu:7">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
// CHECK-LABEL: kt.weight @on_numa1
// CHECK-SAME: placement = #kt.device<"cpu:numa1">
kt.weight @on_numa1 : tensor<4xf32> {hf_name = "a", placement = #kt.device<"cpu:numa1">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
// CHECK-LABEL: kt.weight @on_npu
// CHECK-SAME: placement = #kt.device<"npu:12">
kt.weight @on_npu : tensor<4xf32> {hf_name = "a", placement = #kt.device<"npu:12">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}
// CHECK-LABEL: kt.weight @on_disk
// CHECK-SAME: placement = #kt.device<"disk">
kt.weight @on_disk : tensor<4xf32> {hf_name = "a", placement = #kt.device<"disk">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 16>]}

// Quantization: defaults (group = 0, symmetric = true) are not printed.
// CHECK-LABEL: kt.weight @q_int4
// CHECK-SAME: quant = #kt.quant<scheme = "int4", group = 128>
kt.weight @q_int4 : tensor<2x128xbf16> {hf_name = "a", quant = #kt.quant<scheme = "int4", group = 128, symmetric = true>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 512>]}
// CHECK-LABEL: kt.weight @q_int4_asym
// CHECK-SAME: quant = #kt.quant<scheme = "int4", group = 32, symmetric = false>
kt.weight @q_int4_asym : tensor<2x128xbf16> {hf_name = "a", quant = #kt.quant<symmetric = false, group = 32, scheme = "int4">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 512>]}
// CHECK-LABEL: kt.weight @q_int8
// CHECK-SAME: quant = #kt.quant<scheme = "int8">
kt.weight @q_int8 : tensor<2x128xbf16> {hf_name = "a", quant = #kt.quant<scheme = "int8", group = 0, symmetric = true>, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 512>]}
// CHECK-LABEL: kt.weight @q_bf16
// CHECK-SAME: quant = #kt.quant<scheme = "bf16">
kt.weight @q_bf16 : tensor<2x128xf32> {hf_name = "a", quant = #kt.quant<scheme = "bf16">, storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 1024>]}

// Storage: 64-bit offsets (files larger than 4 GiB) and f16 element size.
// CHECK-LABEL: kt.weight @big_offset
// CHECK-SAME: storage = [#kt.storage<file = "model-00163-of-00163.safetensors", offset = 5368709120, size = 8>]
kt.weight @big_offset : tensor<4xf16> {hf_name = "a", storage = [#kt.storage<size = 8, file = "model-00163-of-00163.safetensors", offset = 5368709120>]}

// CHECK-LABEL: func.func @ropes
func.func @ropes(%x: tensor<?x2x64xf32>, %p: tensor<?xi32>) -> tensor<?x2x64xf32> {
  // Every parameter at its default except dim/theta: printed as just those.
  // An integer theta is accepted and printed as a float.
  // CHECK: kt.rope %{{.*}}, %{{.*}} {rope = #kt.rope<dim = 64, theta = 1.000000e+04>}
  %0 = kt.rope %x, %p {rope = #kt.rope<dim = 64, theta = 10000, type = "default", factor = 1.0, original_max_position = 0, beta_fast = 0.0, beta_slow = 0.0, mscale = 0.0, mscale_all_dim = 0.0, attention_factor = 1.0, low_freq_factor = 0.0, high_freq_factor = 0.0, interleaved = false>} : (tensor<?x2x64xf32>, tensor<?xi32>) -> tensor<?x2x64xf32>
  // DeepSeek-V2 YaRN, interleaved pairs.
  // CHECK: kt.rope %{{.*}}, %{{.*}} {rope = #kt.rope<dim = 64, theta = 1.000000e+04, type = "yarn", factor = 4.000000e+01, original_max_position = 4096, beta_fast = 3.200000e+01, beta_slow = 1.000000e+00, mscale = 7.070000e-01, mscale_all_dim = 7.070000e-01, interleaved = true>}
  %1 = kt.rope %0, %p {rope = #kt.rope<dim = 64, theta = 10000.0, type = "yarn", factor = 40.0, original_max_position = 4096, beta_fast = 32.0, beta_slow = 1.0, mscale = 0.707, mscale_all_dim = 0.707, attention_factor = 1.0, interleaved = true>} : (tensor<?x2x64xf32>, tensor<?xi32>) -> tensor<?x2x64xf32>
  // Llama 3.1 frequency-dependent scaling.
  // CHECK: kt.rope %{{.*}}, %{{.*}} {rope = #kt.rope<dim = 64, theta = 5.000000e+05, type = "llama3", factor = 8.000000e+00, original_max_position = 8192, low_freq_factor = 1.000000e+00, high_freq_factor = 4.000000e+00>}
  %2 = kt.rope %1, %p {rope = #kt.rope<dim = 64, theta = 500000.0, type = "llama3", factor = 8.0, original_max_position = 8192, low_freq_factor = 1.0, high_freq_factor = 4.0>} : (tensor<?x2x64xf32>, tensor<?xi32>) -> tensor<?x2x64xf32>
  // Linear scaling; a non-default attention_factor is printed.
  // CHECK: kt.rope %{{.*}}, %{{.*}} {rope = #kt.rope<dim = 32, theta = 1.000000e+06, type = "linear", factor = 2.000000e+00, attention_factor = 1.500000e+00>}
  %3 = kt.rope %2, %p {rope = #kt.rope<type = "linear", theta = 1000000.0, dim = 32, factor = 2.0, attention_factor = 1.5>} : (tensor<?x2x64xf32>, tensor<?xi32>) -> tensor<?x2x64xf32>
  return %3 : tensor<?x2x64xf32>
}
