// A hand-written two-layer MoE model in the kt dialect:
//   layer 0: GQA attention (4 query heads, 2 KV heads) + dense SwiGLU MLP;
//   layer 1: DeepSeek MLA (q LoRA path) + MoE with shared experts and
//            DeepSeek-V3 routing (sigmoid scores, noaux_tc with a correction
//            bias, 4 groups of 2 experts).
// Hidden size 64, vocabulary 320. Checks that the custom syntax round-trips
// (print -> parse -> print is stable) and so does the generic form.

// RUN: kt-opt %s | kt-opt | FileCheck %s
// RUN: kt-opt %s --mlir-print-op-generic | kt-opt | FileCheck %s
// RUN: kt-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK: module attributes {kt.model = {arch = "deepseek_v3", hidden_size = 64 : i64, num_hidden_layers = 2 : i64, vocab_size = 320 : i64}}
// CHECK: kt.weight @embed : tensor<320x64xbf16> {hf_name = "model.embed_tokens.weight", storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 40960>]}
// CHECK: kt.weight @l1_bias : tensor<8xf32> {hf_name = "model.layers.1.mlp.gate.e_score_correction_bias", storage = [#kt.storage<file = "model.safetensors", offset = 148096, size = 32>]}
// Stacked experts: one byte range per expert; quant defaults (symmetric) are not printed.
// CHECK: kt.weight @l1_gate : tensor<8x32x64xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.gate_proj.weight", quant = #kt.quant<scheme = "int4", group = 64>, storage = [#kt.storage<file = "model.safetensors", offset = 148128, size = 4096>, #kt.storage<file = "model.safetensors", offset = 152224, size = 4096>, {{.*}}, #kt.storage<file = "model.safetensors", offset = 176800, size = 4096>]}
// CHECK: kt.weight @l1_down : tensor<8x64x32xbf16> {hf_name = {{.*}}quant = #kt.quant<scheme = "int4", group = 32, symmetric = false>
// CHECK: kt.weight @lm_head : tensor<320x64xbf16> {hf_name = "lm_head.weight", placement = #kt.device<"gpu:0">, storage = [#kt.storage<file = "model.safetensors", offset = 271136, size = 40960>]}

// CHECK-LABEL: func.func @forward(
// CHECK-SAME:      %[[IDS:[^:]*]]: tensor<?xi32>, %[[POS:[^:]*]]: tensor<?xi32>) -> tensor<?x320xf32>
// CHECK:         %[[EMBED:.*]] = kt.weight_ref @embed : tensor<320x64xbf16>
// CHECK:         %[[H0:.*]] = kt.embedding %[[EMBED]], %[[IDS]] : (tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x64xf32>
// CHECK:         %[[X0:.*]] = kt.rms_norm %[[H0]], %{{.*}} {eps = 1.000000e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
// CHECK:         %[[Q0:.*]] = kt.weight_ref @l0_q : tensor<64x64xbf16>
// CHECK:         %[[K0:.*]] = kt.weight_ref @l0_k : tensor<32x64xbf16>
// CHECK:         %[[V0:.*]] = kt.weight_ref @l0_v : tensor<32x64xbf16>
// CHECK:         %[[O0:.*]] = kt.weight_ref @l0_o : tensor<64x64xbf16>
// CHECK:         %[[A0:.*]] = kt.attention %[[X0]], %[[POS]], %[[Q0]], %[[K0]], %[[V0]], %[[O0]] {head_dim = 16 : i64, layer = 0 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, rope = #kt.rope<dim = 16, theta = 1.000000e+04>, scale = 2.500000e-01 : f64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// CHECK:         %[[H1:.*]] = kt.add %[[H0]], %[[A0]] : tensor<?x64xf32>
// CHECK:         %[[M0:.*]] = kt.mlp %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
// CHECK:         %[[H2:.*]] = kt.add %[[H1]], %[[M0]] : tensor<?x64xf32>
// CHECK:         %[[TAP:.*]] = kt.tap %[[H2]] {name = "hidden.1"} : tensor<?x64xf32>
// CHECK:         %[[A1:.*]] = kt.mla_attention %{{.*}}, %[[POS]] q_lora(%{{.*}}, %{{.*}}, %{{.*}}) kv_lora(%{{.*}}, %{{.*}}, %{{.*}}) o(%{{.*}}) {kv_lora_rank = 32 : i64, layer = 1 : i64, norm_eps = 1.000000e-05 : f64, num_heads = 4 : i64, q_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, rope = #kt.rope<dim = 8, theta = 1.000000e+04, type = "yarn", factor = 4.000000e+01, original_max_position = 4096, beta_fast = 3.200000e+01, beta_slow = 1.000000e+00, mscale = 1.000000e+00, mscale_all_dim = 1.000000e+00, interleaved = true>, scale = 2.041000e-01 : f64, v_head_dim = 16 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<96x32xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// CHECK:         %[[H3:.*]] = kt.add %[[TAP]], %[[A1]] : tensor<?x64xf32>
// CHECK:         %[[MOE:.*]] = kt.moe %{{.*}}, %{{.*}} correction_bias(%{{.*}}) experts(%{{.*}}, %{{.*}}, %{{.*}}) shared(%{{.*}}, %{{.*}}, %{{.*}}) {experts_per_token = 2 : i64, layer = 1 : i64, n_group = 4 : i64, norm_topk_prob = true, num_experts = 8 : i64, routed_scaling_factor = 2.500000e+00 : f64, scoring = "sigmoid", topk_group = 2 : i64, topk_method = "noaux_tc"} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
// CHECK:         %[[H4:.*]] = kt.add %[[H3]], %[[MOE]] : tensor<?x64xf32>
// CHECK:         %[[LOGITS:.*]] = kt.lm_head %{{.*}}, %{{.*}} : (tensor<?x64xf32>, tensor<320x64xbf16>) -> tensor<?x320xf32>
// CHECK:         return %[[LOGITS]] : tensor<?x320xf32>

// The generic form keeps optional operands apart with operandSegmentSizes.
// GENERIC: "kt.attention"({{.*}}operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0>
// GENERIC: "kt.mla_attention"({{.*}}operandSegmentSizes = array<i32: 1, 1, 0, 1, 1, 1, 1, 1, 1, 1>
// GENERIC: "kt.moe"({{.*}}operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 0>

module attributes {kt.model = {arch = "deepseek_v3", vocab_size = 320, hidden_size = 64, num_hidden_layers = 2}} {
  kt.weight @embed : tensor<320x64xbf16> {hf_name = "model.embed_tokens.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 40960>]}
  kt.weight @l0_input_norm : tensor<64xbf16> {hf_name = "model.layers.0.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 40960, size = 128>]}
  kt.weight @l0_q : tensor<64x64xbf16> {hf_name = "model.layers.0.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 41088, size = 8192>]}
  kt.weight @l0_k : tensor<32x64xbf16> {hf_name = "model.layers.0.self_attn.k_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 49280, size = 4096>]}
  kt.weight @l0_v : tensor<32x64xbf16> {hf_name = "model.layers.0.self_attn.v_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 53376, size = 4096>]}
  kt.weight @l0_o : tensor<64x64xbf16> {hf_name = "model.layers.0.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 57472, size = 8192>]}
  kt.weight @l0_post_norm : tensor<64xbf16> {hf_name = "model.layers.0.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 65664, size = 128>]}
  kt.weight @l0_gate : tensor<128x64xbf16> {hf_name = "model.layers.0.mlp.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 65792, size = 16384>]}
  kt.weight @l0_up : tensor<128x64xbf16> {hf_name = "model.layers.0.mlp.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 82176, size = 16384>]}
  kt.weight @l0_down : tensor<64x128xbf16> {hf_name = "model.layers.0.mlp.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 98560, size = 16384>]}
  kt.weight @l1_input_norm : tensor<64xbf16> {hf_name = "model.layers.1.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 114944, size = 128>]}
  kt.weight @l1_q_a : tensor<32x64xbf16> {hf_name = "model.layers.1.self_attn.q_a_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 115072, size = 4096>]}
  kt.weight @l1_q_a_norm : tensor<32xbf16> {hf_name = "model.layers.1.self_attn.q_a_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 119168, size = 64>]}
  kt.weight @l1_q_b : tensor<96x32xbf16> {hf_name = "model.layers.1.self_attn.q_b_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 119232, size = 6144>]}
  kt.weight @l1_kv_a : tensor<40x64xbf16> {hf_name = "model.layers.1.self_attn.kv_a_proj_with_mqa.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 125376, size = 5120>]}
  kt.weight @l1_kv_a_norm : tensor<32xbf16> {hf_name = "model.layers.1.self_attn.kv_a_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 130496, size = 64>]}
  kt.weight @l1_kv_b : tensor<128x32xbf16> {hf_name = "model.layers.1.self_attn.kv_b_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 130560, size = 8192>]}
  kt.weight @l1_o : tensor<64x64xbf16> {hf_name = "model.layers.1.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 138752, size = 8192>]}
  kt.weight @l1_post_norm : tensor<64xbf16> {hf_name = "model.layers.1.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 146944, size = 128>]}
  kt.weight @l1_router : tensor<8x64xbf16> {hf_name = "model.layers.1.mlp.gate.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 147072, size = 1024>]}
  kt.weight @l1_bias : tensor<8xf32> {hf_name = "model.layers.1.mlp.gate.e_score_correction_bias",
      storage = [#kt.storage<file = "model.safetensors", offset = 148096, size = 32>]}
  kt.weight @l1_gate : tensor<8x32x64xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.gate_proj.weight", quant = #kt.quant<scheme = "int4", group = 64>,
      storage = [#kt.storage<file = "model.safetensors", offset = 148128, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 152224, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 156320, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 160416, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 164512, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 168608, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 172704, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 176800, size = 4096>]}
  kt.weight @l1_up : tensor<8x32x64xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.up_proj.weight", quant = #kt.quant<scheme = "int4", group = 64>,
      storage = [#kt.storage<file = "model.safetensors", offset = 180896, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 184992, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 189088, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 193184, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 197280, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 201376, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 205472, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 209568, size = 4096>]}
  kt.weight @l1_down : tensor<8x64x32xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.down_proj.weight", quant = #kt.quant<scheme = "int4", group = 32, symmetric = false>,
      storage = [#kt.storage<file = "model.safetensors", offset = 213664, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 217760, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 221856, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 225952, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 230048, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 234144, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 238240, size = 4096>,
        #kt.storage<file = "model.safetensors", offset = 242336, size = 4096>]}
  kt.weight @l1_shared_gate : tensor<64x64xbf16> {hf_name = "model.layers.1.mlp.shared_experts.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 246432, size = 8192>]}
  kt.weight @l1_shared_up : tensor<64x64xbf16> {hf_name = "model.layers.1.mlp.shared_experts.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 254624, size = 8192>]}
  kt.weight @l1_shared_down : tensor<64x64xbf16> {hf_name = "model.layers.1.mlp.shared_experts.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 262816, size = 8192>]}
  kt.weight @final_norm : tensor<64xbf16> {hf_name = "model.norm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 271008, size = 128>]}
  kt.weight @lm_head : tensor<320x64xbf16> {hf_name = "lm_head.weight", placement = #kt.device<"gpu:0">,
      storage = [#kt.storage<file = "model.safetensors", offset = 271136, size = 40960>]}

  func.func @forward(%ids: tensor<?xi32>, %positions: tensor<?xi32>) -> tensor<?x320xf32> {
    %embed = kt.weight_ref @embed : tensor<320x64xbf16>
    %h0 = kt.embedding %embed, %ids : (tensor<320x64xbf16>, tensor<?xi32>) -> tensor<?x64xf32>

    // Layer 0: GQA attention + dense MLP.
    %l0_in = kt.weight_ref @l0_input_norm : tensor<64xbf16>
    %x0 = kt.rms_norm %h0, %l0_in {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %q0 = kt.weight_ref @l0_q : tensor<64x64xbf16>
    %k0 = kt.weight_ref @l0_k : tensor<32x64xbf16>
    %v0 = kt.weight_ref @l0_v : tensor<32x64xbf16>
    %o0 = kt.weight_ref @l0_o : tensor<64x64xbf16>
    %attn0 = kt.attention %x0, %positions, %q0, %k0, %v0, %o0 {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.500000e-01 : f64, rope = #kt.rope<dim = 16, theta = 10000.0>, layer = 0 : i64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<64x64xbf16>, tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
    %h1 = kt.add %h0, %attn0 : tensor<?x64xf32>
    %l0_post = kt.weight_ref @l0_post_norm : tensor<64xbf16>
    %x1 = kt.rms_norm %h1, %l0_post {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %g0 = kt.weight_ref @l0_gate : tensor<128x64xbf16>
    %u0 = kt.weight_ref @l0_up : tensor<128x64xbf16>
    %d0 = kt.weight_ref @l0_down : tensor<64x128xbf16>
    %mlp0 = kt.mlp %x1, %g0, %u0, %d0 : (tensor<?x64xf32>, tensor<128x64xbf16>, tensor<128x64xbf16>, tensor<64x128xbf16>) -> tensor<?x64xf32>
    %h2 = kt.add %h1, %mlp0 : tensor<?x64xf32>
    %h2t = kt.tap %h2 {name = "hidden.1"} : tensor<?x64xf32>

    // Layer 1: MLA + MoE (routed experts stacked [E, ...], shared experts).
    %l1_in = kt.weight_ref @l1_input_norm : tensor<64xbf16>
    %x2 = kt.rms_norm %h2t, %l1_in {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %qa = kt.weight_ref @l1_q_a : tensor<32x64xbf16>
    %qan = kt.weight_ref @l1_q_a_norm : tensor<32xbf16>
    %qb = kt.weight_ref @l1_q_b : tensor<96x32xbf16>
    %kva = kt.weight_ref @l1_kv_a : tensor<40x64xbf16>
    %kvan = kt.weight_ref @l1_kv_a_norm : tensor<32xbf16>
    %kvb = kt.weight_ref @l1_kv_b : tensor<128x32xbf16>
    %o1 = kt.weight_ref @l1_o : tensor<64x64xbf16>
    %attn1 = kt.mla_attention %x2, %positions q_lora(%qa, %qan, %qb) kv_lora(%kva, %kvan, %kvb) o(%o1) {num_heads = 4 : i64, q_lora_rank = 32 : i64, kv_lora_rank = 32 : i64, qk_nope_head_dim = 16 : i64, qk_rope_head_dim = 8 : i64, v_head_dim = 16 : i64, scale = 0.2041 : f64, rope = #kt.rope<dim = 8, theta = 10000.0, type = "yarn", factor = 40.0, original_max_position = 4096, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 1.0, interleaved = true>, layer = 1 : i64, norm_eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<?xi32>, tensor<32x64xbf16>, tensor<32xbf16>, tensor<96x32xbf16>, tensor<40x64xbf16>, tensor<32xbf16>, tensor<128x32xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
    %h3 = kt.add %h2t, %attn1 : tensor<?x64xf32>
    %l1_post = kt.weight_ref @l1_post_norm : tensor<64xbf16>
    %x3 = kt.rms_norm %h3, %l1_post {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %router = kt.weight_ref @l1_router : tensor<8x64xbf16>
    %bias = kt.weight_ref @l1_bias : tensor<8xf32>
    %eg = kt.weight_ref @l1_gate : tensor<8x32x64xbf16>
    %eu = kt.weight_ref @l1_up : tensor<8x32x64xbf16>
    %ed = kt.weight_ref @l1_down : tensor<8x64x32xbf16>
    %sg = kt.weight_ref @l1_shared_gate : tensor<64x64xbf16>
    %su = kt.weight_ref @l1_shared_up : tensor<64x64xbf16>
    %sd = kt.weight_ref @l1_shared_down : tensor<64x64xbf16>
    %moe1 = kt.moe %x3, %router correction_bias(%bias) experts(%eg, %eu, %ed) shared(%sg, %su, %sd) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "sigmoid", topk_method = "noaux_tc", n_group = 4 : i64, topk_group = 2 : i64, norm_topk_prob = true, routed_scaling_factor = 2.5 : f64, layer = 1 : i64} : (tensor<?x64xf32>, tensor<8x64xbf16>, tensor<8xf32>, tensor<8x32x64xbf16>, tensor<8x32x64xbf16>, tensor<8x64x32xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>, tensor<64x64xbf16>) -> tensor<?x64xf32>
    %h4 = kt.add %h3, %moe1 : tensor<?x64xf32>

    %fn = kt.weight_ref @final_norm : tensor<64xbf16>
    %x4 = kt.rms_norm %h4, %fn {eps = 1.0e-05 : f64} : (tensor<?x64xf32>, tensor<64xbf16>) -> tensor<?x64xf32>
    %lm = kt.weight_ref @lm_head : tensor<320x64xbf16>
    %logits = kt.lm_head %x4, %lm : (tensor<?x64xf32>, tensor<320x64xbf16>) -> tensor<?x320xf32>
    return %logits : tensor<?x320xf32>
  }
}
