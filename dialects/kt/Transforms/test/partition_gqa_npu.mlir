// kt-partition on a 2-layer Llama-style dense model (GQA attention, SwiGLU
// MLPs, bf16) whose lm_head reads the embedding table (tied embeddings).
// Layer 1's down projection already carries a placement in the input: a
// placement given by hand is kept, like kt-assign-placement does.

// An NPU that runs GQA attention, dense MLPs, norms and adds (and embedding
// lookups) but not lm_head (Inputs/npu-box.json): what it supports goes there.
// Embedding and lm_head share their table, so they stay together, on the CPU.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/npu-box.json" | FileCheck %s --check-prefix=NPU
// NPU:      kt.weight @embed {{.*}}placement = #kt.device<"cpu:numa0">
// NPU:      kt.weight @l0_q {{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.weight @l0_down {{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.weight @l1_k {{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.weight @l1_gate {{.*}}placement = #kt.device<"cpu:numa0">
// NPU:      kt.weight @final_norm {{.*}}placement = #kt.device<"cpu:numa0">
// NPU-LABEL: func.func @forward
// NPU:      kt.embedding {{.*}}placement = #kt.device<"cpu:numa0">
// NPU:      kt.attention {{.*}}layer = 0 : i64{{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.mlp {{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.attention {{.*}}layer = 1 : i64{{.*}}placement = #kt.device<"npu:0">
// NPU:      kt.mlp {{.*}}placement = #kt.device<"cpu:numa0">
// NPU:      kt.lm_head {{.*}}placement = #kt.device<"cpu:numa0">

// A placement override wins over the hand-written placement.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/npu-box.json placement-override=l1_down=npu:0" \
// RUN:   | FileCheck %s --check-prefix=OVERRIDE
// OVERRIDE: kt.weight @l1_down {{.*}}placement = #kt.device<"npu:0">
// OVERRIDE: kt.mlp {{.*}}placement = #kt.device<"npu:0">
// OVERRIDE: kt.mlp {{.*}}placement = #kt.device<"npu:0">

// ... but cannot put an op where its device cannot run it.
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/npu-box.json placement-override=model.embed_tokens=npu:0" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=CANNOT
// CANNOT: error: kt-partition: unit 'lm_head' is placed on npu:0, which cannot run 'lm_head' ops (its supported_ops do not list it)

// On the GPU box everything but the pinned MLP goes to the GPU, the shared
// table once.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json explain=true" | FileCheck %s --check-prefix=GPU
// GPU:      -  embedding               gpu:0                     4.0 MiB          -
// GPU:      0  attention               gpu:0                     1.3 MiB    4.0 MiB
// GPU:      1  dense mlp               cpu:numa0                 3.0 MiB          -
// GPU:      -  lm_head                 gpu:0                     1.0 KiB          -
// GPU:      kt.weight @embed {{.*}}placement = #kt.device<"gpu:0">
// GPU:      kt.lm_head {{.*}}placement = #kt.device<"gpu:0">

module attributes {kt.model = {arch = "test_gqa_dense", num_layers = 2 : i64, max_position = 8192 : i64, hidden_size = 512 : i64, vocab_size = 4096 : i64}} {
  kt.weight @embed : tensor<4096x512xbf16> {hf_name = "model.embed_tokens.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 4194304>]}
  kt.weight @l0_in_norm : tensor<512xbf16> {hf_name = "model.layers.0.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4194304, size = 1024>]}
  kt.weight @l0_q : tensor<512x512xbf16> {hf_name = "model.layers.0.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4195328, size = 524288>]}
  kt.weight @l0_k : tensor<128x512xbf16> {hf_name = "model.layers.0.self_attn.k_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4719616, size = 131072>]}
  kt.weight @l0_v : tensor<128x512xbf16> {hf_name = "model.layers.0.self_attn.v_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4850688, size = 131072>]}
  kt.weight @l0_o : tensor<512x512xbf16> {hf_name = "model.layers.0.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4981760, size = 524288>]}
  kt.weight @l0_post_norm : tensor<512xbf16> {hf_name = "model.layers.0.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 5506048, size = 1024>]}
  kt.weight @l0_gate : tensor<1024x512xbf16> {hf_name = "model.layers.0.mlp.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 5507072, size = 1048576>]}
  kt.weight @l0_up : tensor<1024x512xbf16> {hf_name = "model.layers.0.mlp.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 6555648, size = 1048576>]}
  kt.weight @l0_down : tensor<512x1024xbf16> {hf_name = "model.layers.0.mlp.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 7604224, size = 1048576>]}
  kt.weight @l1_in_norm : tensor<512xbf16> {hf_name = "model.layers.1.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8652800, size = 1024>]}
  kt.weight @l1_q : tensor<512x512xbf16> {hf_name = "model.layers.1.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8653824, size = 524288>]}
  kt.weight @l1_k : tensor<128x512xbf16> {hf_name = "model.layers.1.self_attn.k_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 9178112, size = 131072>]}
  kt.weight @l1_v : tensor<128x512xbf16> {hf_name = "model.layers.1.self_attn.v_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 9309184, size = 131072>]}
  kt.weight @l1_o : tensor<512x512xbf16> {hf_name = "model.layers.1.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 9440256, size = 524288>]}
  kt.weight @l1_post_norm : tensor<512xbf16> {hf_name = "model.layers.1.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 9964544, size = 1024>]}
  kt.weight @l1_gate : tensor<1024x512xbf16> {hf_name = "model.layers.1.mlp.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 9965568, size = 1048576>]}
  kt.weight @l1_up : tensor<1024x512xbf16> {hf_name = "model.layers.1.mlp.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 11014144, size = 1048576>]}
  kt.weight @l1_down : tensor<512x1024xbf16> {hf_name = "model.layers.1.mlp.down_proj.weight", placement = #kt.device<"cpu:numa0">,
      storage = [#kt.storage<file = "model.safetensors", offset = 12062720, size = 1048576>]}
  kt.weight @final_norm : tensor<512xbf16> {hf_name = "model.norm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 13111296, size = 1024>]}

  func.func @forward(%ids: tensor<?xi32>, %positions: tensor<?xi32>) -> tensor<?x4096xf32> {
    %embed = kt.weight_ref @embed : tensor<4096x512xbf16>
    %h0 = kt.embedding %embed, %ids : (tensor<4096x512xbf16>, tensor<?xi32>) -> tensor<?x512xf32>

    // Layer 0: GQA attention + dense MLP.
    %l0_in = kt.weight_ref @l0_in_norm : tensor<512xbf16>
    %l0_x = kt.rms_norm %h0, %l0_in : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l0_q = kt.weight_ref @l0_q : tensor<512x512xbf16>
    %l0_k = kt.weight_ref @l0_k : tensor<128x512xbf16>
    %l0_v = kt.weight_ref @l0_v : tensor<128x512xbf16>
    %l0_o = kt.weight_ref @l0_o : tensor<512x512xbf16>
    %l0_attn = kt.attention %l0_x, %positions, %l0_q, %l0_k, %l0_v, %l0_o {num_heads = 8 : i64, num_kv_heads = 2 : i64, head_dim = 64 : i64, scale = 0.125 : f64, rope = #kt.rope<dim = 64, theta = 500000.0>, layer = 0 : i64} : (tensor<?x512xf32>, tensor<?xi32>, tensor<512x512xbf16>, tensor<128x512xbf16>, tensor<128x512xbf16>, tensor<512x512xbf16>) -> tensor<?x512xf32>
    %l0_h1 = kt.add %h0, %l0_attn : tensor<?x512xf32>
    %l0_pn = kt.weight_ref @l0_post_norm : tensor<512xbf16>
    %l0_x2 = kt.rms_norm %l0_h1, %l0_pn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l0_g = kt.weight_ref @l0_gate : tensor<1024x512xbf16>
    %l0_u = kt.weight_ref @l0_up : tensor<1024x512xbf16>
    %l0_d = kt.weight_ref @l0_down : tensor<512x1024xbf16>
    %l0_ff = kt.mlp %l0_x2, %l0_g, %l0_u, %l0_d : (tensor<?x512xf32>, tensor<1024x512xbf16>, tensor<1024x512xbf16>, tensor<512x1024xbf16>) -> tensor<?x512xf32>
    %l0_h2 = kt.add %l0_h1, %l0_ff : tensor<?x512xf32>

    // Layer 1: GQA attention + dense MLP.
    %l1_in = kt.weight_ref @l1_in_norm : tensor<512xbf16>
    %l1_x = kt.rms_norm %l0_h2, %l1_in : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l1_q = kt.weight_ref @l1_q : tensor<512x512xbf16>
    %l1_k = kt.weight_ref @l1_k : tensor<128x512xbf16>
    %l1_v = kt.weight_ref @l1_v : tensor<128x512xbf16>
    %l1_o = kt.weight_ref @l1_o : tensor<512x512xbf16>
    %l1_attn = kt.attention %l1_x, %positions, %l1_q, %l1_k, %l1_v, %l1_o {num_heads = 8 : i64, num_kv_heads = 2 : i64, head_dim = 64 : i64, scale = 0.125 : f64, rope = #kt.rope<dim = 64, theta = 500000.0>, layer = 1 : i64} : (tensor<?x512xf32>, tensor<?xi32>, tensor<512x512xbf16>, tensor<128x512xbf16>, tensor<128x512xbf16>, tensor<512x512xbf16>) -> tensor<?x512xf32>
    %l1_h1 = kt.add %l0_h2, %l1_attn : tensor<?x512xf32>
    %l1_pn = kt.weight_ref @l1_post_norm : tensor<512xbf16>
    %l1_x2 = kt.rms_norm %l1_h1, %l1_pn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l1_g = kt.weight_ref @l1_gate : tensor<1024x512xbf16>
    %l1_u = kt.weight_ref @l1_up : tensor<1024x512xbf16>
    %l1_d = kt.weight_ref @l1_down : tensor<512x1024xbf16>
    %l1_ff = kt.mlp %l1_x2, %l1_g, %l1_u, %l1_d : (tensor<?x512xf32>, tensor<1024x512xbf16>, tensor<1024x512xbf16>, tensor<512x1024xbf16>) -> tensor<?x512xf32>
    %l1_h2 = kt.add %l1_h1, %l1_ff : tensor<?x512xf32>

    // Tied embeddings: lm_head reads the embedding table.
    %fn = kt.weight_ref @final_norm : tensor<512xbf16>
    %xf = kt.rms_norm %l1_h2, %fn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %lm = kt.weight_ref @embed : tensor<4096x512xbf16>
    %logits = kt.lm_head %xf, %lm : (tensor<?x512xf32>, tensor<4096x512xbf16>) -> tensor<?x4096xf32>
    return %logits : tensor<?x4096xf32>
  }
}
