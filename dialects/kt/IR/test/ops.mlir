// Round trip of op variants not in two_layer_moe.mlir: optional operands
// (biases, QK norms, q_proj MLA, MoE without shared experts, Qwen2-MoE's
// shared_expert_gate), placement on ops, and defaults left out when printed.
// RUN: kt-opt %s | kt-opt | FileCheck %s
// RUN: kt-opt %s --mlir-print-op-generic | kt-opt | FileCheck %s

// CHECK-LABEL: func.func @linear_swiglu
func.func @linear_swiglu(%x: tensor<?x64xf32>, %w: tensor<128x64xbf16>, %b: tensor<128xf32>, %w2: tensor<128x64xf16>) -> tensor<?x128xf32> {
  // CHECK: %[[G:.*]] = kt.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xf32>) -> tensor<?x128xf32>
  %g = kt.linear %x, %w, %b : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128xf32>) -> tensor<?x128xf32>
  // CHECK: %[[U:.*]] = kt.linear %{{.*}}, %{{.*}} {placement = #kt.device<"gpu:1">} : (tensor<?x64xf32>, tensor<128x64xf16>) -> tensor<?x128xf32>
  %u = kt.linear %x, %w2 {placement = #kt.device<"gpu:1">} : (tensor<?x64xf32>, tensor<128x64xf16>) -> tensor<?x128xf32>
  // CHECK: kt.swiglu %[[G]], %[[U]] : tensor<?x128xf32>
  %s = kt.swiglu %g, %u : tensor<?x128xf32>
  return %s : tensor<?x128xf32>
}

// Qwen2 (q/k/v biases) and Qwen3 (per-head q/k RMSNorm) attention.
// CHECK-LABEL: func.func @attention_variants
func.func @attention_variants(%x: tensor<?x128xf32>, %p: tensor<?xi32>, %q: tensor<64x128xbf16>, %k: tensor<32x128xbf16>, %v: tensor<32x128xbf16>, %o: tensor<128x64xbf16>, %bq: tensor<64xbf16>, %bk: tensor<32xbf16>, %bv: tensor<32xbf16>, %nq: tensor<16xbf16>, %nk: tensor<16xbf16>) -> tensor<?x128xf32> {
  // CHECK: kt.attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} bias(%{{.*}}, %{{.*}}, %{{.*}}) {head_dim = 16 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, rope = #kt.rope<dim = 16, theta = 1.000000e+06>, scale = 2.500000e-01 : f64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<64xbf16>, tensor<32xbf16>, tensor<32xbf16>) -> tensor<?x128xf32>
  %a = kt.attention %x, %p, %q, %k, %v, %o bias(%bq, %bk, %bv) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 1000000.0>, layer = 0 : i64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<64xbf16>, tensor<32xbf16>, tensor<32xbf16>) -> tensor<?x128xf32>
  // CHECK: kt.attention %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} qk_norm(%{{.*}}, %{{.*}}) {head_dim = 16 : i64, layer = 1 : i64, norm_eps = 9.9999999999999995E-7 : f64, num_heads = 4 : i64, num_kv_heads = 2 : i64, rope = #kt.rope<dim = 8, theta = 1.000000e+06>, scale = 2.500000e-01 : f64}
  %b = kt.attention %a, %p, %q, %k, %v, %o qk_norm(%nq, %nk) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 8, theta = 1000000.0>, layer = 1 : i64, norm_eps = 1.0e-06 : f64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<16xbf16>, tensor<16xbf16>) -> tensor<?x128xf32>
  // Both optional groups at once; MHA (num_kv_heads == num_heads) works too.
  // CHECK: kt.attention {{.*}} bias(%{{.*}}, %{{.*}}, %{{.*}}) qk_norm(%{{.*}}, %{{.*}}) {{{.*}}layer = 2 : i64
  %c = kt.attention %b, %p, %q, %k, %v, %o bias(%bq, %bk, %bv) qk_norm(%nq, %nk) {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 2 : i64, norm_eps = 1.0e-06 : f64} : (tensor<?x128xf32>, tensor<?xi32>, tensor<64x128xbf16>, tensor<32x128xbf16>, tensor<32x128xbf16>, tensor<128x64xbf16>, tensor<64xbf16>, tensor<32xbf16>, tensor<32xbf16>, tensor<16xbf16>, tensor<16xbf16>) -> tensor<?x128xf32>
  return %c : tensor<?x128xf32>
}

// DeepSeek-V2-Lite MLA: q_lora_rank = 0 means one q_proj (and is not printed).
// CHECK-LABEL: func.func @mla_q_proj
func.func @mla_q_proj(%x: tensor<?x64xf32>, %p: tensor<?xi32>, %q: tensor<96x64xbf16>, %kva: tensor<40x64xbf16>, %kvan: tensor<32xbf16>, %kvb: tensor<128x32xbf16>, %o: tensor<64x64xbf16>) -> tensor<?x64xf32> {
  // CHECK: kt.mla_attention %{{.*}}, %{{.*}} q(%{{.*}}) kv_lora(%{{.*}}, %{{.*}}, %{{.*}}) o(%{{.*}}) {kv_lora_rank = 32 : i64, layer = 0 : i64, num_heads = 4 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, rope = #kt.rope<dim = 8, theta = 1.000000e+04, interleaved = true>, scale = 2.000000e-01 : f64, v_head_dim = 16 : i64}
  %0 = kt.mla_attention %x, %p q(%q) kv_lora(%kva, %kvan, %kvb) o(%o) {num_heads = 4 : i64, q_lora_rank = 0 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2 : f64, rope = #kt.rope<dim = 8, theta = 10000.0, interleaved = true>, layer = 0 : i64, norm_eps = 1.0e-06 : f64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<96x64xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @moe_variants
func.func @moe_variants(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>, %sg: tensor<96x64xbf16>, %su: tensor<96x64xbf16>, %sd: tensor<64x96xbf16>, %seg: tensor<1x64xbf16>) -> tensor<?x64xf32> {
  // Mixtral: softmax + greedy top-2, renormalized; defaults are not printed.
  // CHECK: kt.moe %{{.*}}, %{{.*}} experts(%{{.*}}, %{{.*}}, %{{.*}}) {experts_per_token = 2 : i64, layer = 0 : i64, norm_topk_prob = true, num_experts = 8 : i64, scoring = "softmax"} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  %0 = kt.moe %x, %r experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", topk_method = "greedy", n_group = 1 : i64, topk_group = 1 : i64, norm_topk_prob = true, routed_scaling_factor = 1.0 : f64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  // Qwen2-MoE: shared expert scaled by sigmoid(x shared_expert_gate^T).
  // CHECK: kt.moe %{{.*}}, %{{.*}} experts(%{{.*}}, %{{.*}}, %{{.*}}) shared(%{{.*}}, %{{.*}}, %{{.*}}) shared_expert_gate(%{{.*}}) {experts_per_token = 4 : i64, layer = 1 : i64, num_experts = 8 : i64, scoring = "softmax"}
  %1 = kt.moe %0, %r experts(%g, %u, %d) shared(%sg, %su, %sd) shared_expert_gate(%seg) {num_experts = 8 : i64, experts_per_token = 4 : i64, scoring = "softmax", layer = 1 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>, tensor<1x64xbf16>) -> tensor<?x64xf32>
  // DeepSeek-V2: group-limited greedy over 4 groups, keep 2, scaled by 16.
  // CHECK: kt.moe %{{.*}}, %{{.*}} experts(%{{.*}}, %{{.*}}, %{{.*}}) shared(%{{.*}}, %{{.*}}, %{{.*}}) {experts_per_token = 3 : i64, layer = 2 : i64, n_group = 4 : i64, num_experts = 8 : i64, placement = #kt.device<"cpu:numa0">, routed_scaling_factor = 1.600000e+01 : f64, scoring = "softmax", topk_group = 2 : i64, topk_method = "group_limited_greedy"}
  %2 = kt.moe %1, %r experts(%g, %u, %d) shared(%sg, %su, %sd) {num_experts = 8 : i64, experts_per_token = 3 : i64, scoring = "softmax", topk_method = "group_limited_greedy", n_group = 4 : i64, topk_group = 2 : i64, routed_scaling_factor = 16.0 : f64, layer = 2 : i64, placement = #kt.device<"cpu:numa0">} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<96x64xbf16>, tensor<96x64xbf16>, tensor<64x96xbf16>) -> tensor<?x64xf32>
  return %2 : tensor<?x64xf32>
}

// Kimi-K2 / GLM-4.5 style: noaux_tc with a single group is allowed.
// CHECK-LABEL: func.func @moe_noaux_one_group
func.func @moe_noaux_one_group(%x: tensor<?x64xf32>, %r: tensor<8x64xbf16>, %bias: tensor<8xf32>, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xf32> {
  // CHECK: kt.moe %{{.*}}, %{{.*}} correction_bias(%{{.*}}) experts({{.*}}) {experts_per_token = 8 : i64, layer = 0 : i64, norm_topk_prob = true, num_experts = 8 : i64, routed_scaling_factor = 2.827000e+00 : f64, scoring = "sigmoid", topk_method = "noaux_tc"}
  %0 = kt.moe %x, %r correction_bias(%bias) experts(%g, %u, %d) {num_experts = 8 : i64, experts_per_token = 8 : i64, scoring = "sigmoid", topk_method = "noaux_tc", norm_topk_prob = true, routed_scaling_factor = 2.827 : f64, layer = 0 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>) -> tensor<?x64xf32>
  return %0 : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @misc
func.func @misc(%x: tensor<?x64xf32>, %g: tensor<128x64xbf16>, %u: tensor<128x64xbf16>, %d: tensor<64x128xbf16>, %n: tensor<64xf32>, %h: tensor<?x4x16xf32>) -> tensor<?x64xf32> {
  // activation = "silu" and eps = 1e-6 are the defaults and are not printed.
  // CHECK: kt.mlp %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
  %0 = kt.mlp %x, %g, %u, %d {activation = "silu"} : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
  // CHECK: kt.rms_norm %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  %1 = kt.rms_norm %0, %n {eps = 1.0e-06 : f64} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  // RMSNorm over the last dim of a rank-3 value (per-head norms).
  // CHECK: kt.rms_norm %{{.*}}, %{{.*}} {eps = 1.000000e-05 : f64} : (tensor<?x4x16xf32>, tensor<16xbf16>) -> tensor<?x4x16xf32>
  %w16 = kt.weight_ref @norm16 : tensor<16xbf16>
  %2 = kt.rms_norm %h, %w16 {eps = 1.0e-05 : f64} : (tensor<?x4x16xf32>, tensor<16xbf16>) -> tensor<?x4x16xf32>
  // CHECK: kt.tap %{{.*}} {name = "layer0.out"} : tensor<?x64xf32>
  %3 = kt.tap %1 {name = "layer0.out"} : tensor<?x64xf32>
  return %3 : tensor<?x64xf32>
}
kt.weight @norm16 : tensor<16xbf16> {hf_name = "n", storage = [#kt.storage<file = "m.safetensors", offset = 0, size = 32>]}
