// kt-attach-lora on the hand-written two-layer model of IR/test (layer 0: GQA +
// dense MLP; layer 1: MLA with q LoRA + MoE with 8 stacked routed experts and
// shared experts). Adapters are named as PEFT names the module, and recorded
// on the op per weight slot.

// target_modules are module-name suffixes: o_proj hits both attention kinds,
// gate_proj the dense MLP and the shared experts but never the routed experts.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir \
// RUN:   --kt-attach-lora="target-modules=o_proj,gate_proj r=4 alpha=8" | FileCheck %s --check-prefix=MOD
// MOD: kt.training = {alpha = 8.000000e+00 : f64, method = "lora", r = 4 : i64, target_modules = ["o_proj", "gate_proj"], target_parameters = []}
// MOD: kt.lora_adapter @lora.model.layers.0.self_attn.o_proj {alpha = 8.000000e+00 : f64, in_features = 64 : i64, layout = "linear", out_features = 64 : i64, peft_name = "base_model.model.model.layers.0.self_attn.o_proj", r = 4 : i64, row_offsets = array<i64: 0>, rows = array<i64: 64>, targets = [@l0_o]}
// MOD: kt.lora_adapter @lora.model.layers.0.mlp.gate_proj {{{.*}}out_features = 128 : i64, peft_name = "base_model.model.model.layers.0.mlp.gate_proj"{{.*}}targets = [@l0_gate]}
// MOD: kt.lora_adapter @lora.model.layers.1.self_attn.o_proj {{{.*}}targets = [@l1_o]}
// MOD: kt.lora_adapter @lora.model.layers.1.mlp.shared_experts.gate_proj {{{.*}}targets = [@l1_shared_gate]}
// MOD-NOT: kt.lora_adapter
// MOD-LABEL: func.func @forward
// MOD: kt.attention {{.*}}kt.adapters = {o_proj = @lora.model.layers.0.self_attn.o_proj}
// MOD: kt.mlp {{.*}}{kt.adapters = {gate = @lora.model.layers.0.mlp.gate_proj}}
// MOD: kt.mla_attention {{.*}}kt.adapters = {o_proj = @lora.model.layers.1.self_attn.o_proj}
// MOD: kt.moe {{.*}}kt.adapters = {shared_gate = @lora.model.layers.1.mlp.shared_experts.gate_proj}

// target_parameters put PEFT's fused adapters on the routed experts: gate_up
// (A [E*r, H], out 2I: gate rows then up rows) is wrapped first and so named
// experts.base_layer; down is "experts". rank/alpha patterns match as in PEFT.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir \
// RUN:   --kt-attach-lora="target-parameters=gate_up_proj,down_proj rank-pattern=.*\.gate_up_proj=16 alpha-pattern=.*\.gate_up_proj=32" \
// RUN:   | FileCheck %s --check-prefix=EXP
// EXP: kt.lora_adapter @lora.model.layers.1.mlp.experts.base_layer {alpha = 3.200000e+01 : f64, in_features = 64 : i64, layout = "experts_fused", num_experts = 8 : i64, out_features = 64 : i64, peft_name = "base_model.model.model.layers.1.mlp.experts.base_layer", r = 16 : i64, row_offsets = array<i64: 0, 32>, rows = array<i64: 32, 32>, targets = [@l1_gate, @l1_up]}
// EXP: kt.lora_adapter @lora.model.layers.1.mlp.experts {alpha = 1.600000e+01 : f64, in_features = 32 : i64, layout = "experts_fused", num_experts = 8 : i64, out_features = 64 : i64, peft_name = "base_model.model.model.layers.1.mlp.experts", r = 8 : i64, row_offsets = array<i64: 0>, rows = array<i64: 64>, targets = [@l1_down]}
// EXP: kt.moe {{.*}}kt.adapters = {down = @lora.model.layers.1.mlp.experts, gate = @lora.model.layers.1.mlp.experts.base_layer, up = @lora.model.layers.1.mlp.experts.base_layer}

// Only down_proj targeted: its adapter is the outermost (and only) wrapper.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-parameters=down_proj" \
// RUN:   | FileCheck %s --check-prefix=DOWN
// DOWN: kt.lora_adapter @lora.model.layers.1.mlp.experts {{{.*}}peft_name = "base_model.model.model.layers.1.mlp.experts"
// DOWN-NOT: base_layer

// A full dotted suffix matches too (PEFT accepts "self_attn.q_b_proj").
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-modules=self_attn.q_b_proj" \
// RUN:   | FileCheck %s --check-prefix=DOTTED
// DOTTED: kt.lora_adapter @lora.model.layers.1.self_attn.q_b_proj {{{.*}}in_features = 32 : i64{{.*}}out_features = 96 : i64
// DOTTED: kt.mla_attention {{.*}}kt.adapters = {q_b_proj = @lora.model.layers.1.self_attn.q_b_proj}

// Errors name the culprit.
// RUN: not kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-modules=q_proj,qkv_proj" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ERR-MOD
// ERR-MOD: error: kt-attach-lora: target module 'qkv_proj' matches no projection of this model (its projections: down_proj, gate_proj, k_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj, q_a_proj, q_b_proj, q_proj, up_proj, v_proj)
// RUN: not kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-parameters=gate_proj" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ERR-PARAM
// ERR-PARAM: error: kt-attach-lora: target parameter 'gate_proj' matches no parameter: routed experts have gate_up_proj and down_proj
// RUN: not kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-modules=o_proj rank-pattern=o_proj" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ERR-PAT
// ERR-PAT: error: kt-attach-lora: rank-pattern entry 'o_proj' must be REGEX=VALUE with a positive VALUE
// RUN: not kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora 2>&1 | FileCheck %s --check-prefix=ERR-NONE
// ERR-NONE: error: kt-attach-lora: no target-modules or target-parameters given

// PEFT's "all-linear": every projection (4 + 3 in layer 0, 5 MLA + 3 shared
// in layer 1), never the routed experts (parameters, not nn.Linear) or lm_head.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-modules=all-linear" \
// RUN:   | FileCheck %s --check-prefix=ALL
// ALL-COUNT-15: kt.lora_adapter {{.*}}layout = "linear"
// ALL-NOT:      kt.lora_adapter
