// kt-partition on a 3-layer DeepSeek-style model (MLA attention everywhere;
// layer 0 a dense MLP, layers 1-2 MoE with 8 routed experts, top-2, and a
// shared expert), bf16, with a GPU box of round numbers (Inputs/gpu-box.json:
// two NUMA nodes of 100 GB/s, one GPU of 1000 GB/s on a 10 GB/s link).
// Sizes: embedding and lm_head 4 MiB each, attention 529 KiB + its KV cache,
// dense MLP 3 MiB, router + shared expert 777 KiB, each routed expert 768 KiB.

// GPU budget 0: everything on the CPU. Routed experts are spread over both
// nodes by expected load; node 0 also runs the router and shared expert, so
// it gets fewer of them (2 of 8).
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0" \
// RUN:   | FileCheck %s --check-prefix=CPU --implicit-check-not=gpu:
// CPU:      kt.partition = {decode_batch = 1 : i64, kv_tokens = 2048 : i64
// CPU:      kt.weight @embed {{.*}}placement = #kt.device<"cpu:numa0">
// CPU:      kt.weight @l1_exp_gate {{.*}}placement = #kt.device<"cpu:numa1">
// CPU:      kt.weight @lm_head {{.*}}placement = #kt.device<"cpu:numa0">
// CPU-LABEL: func.func @forward
// CPU:      kt.mla_attention {{.*}}placement = #kt.device<"cpu:numa0">
// CPU:      kt.moe {{.*}}kt.expert_devices = [#kt.device<"cpu:numa0">, #kt.device<"cpu:numa1">], kt.expert_placement = array<i32: 1, 1, 1, 1, 1, 0, 1, 0>, layer = 1 : i64{{.*}}placement = #kt.device<"cpu:numa0">
// CPU:      kt.lm_head {{.*}}placement = #kt.device<"cpu:numa0">

// Unlimited GPU memory: everything on the GPU, KV caches included.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited" \
// RUN:   | FileCheck %s --check-prefix=GPU --implicit-check-not=cpu:numa
// GPU:      kt.weight @embed {{.*}}placement = #kt.device<"gpu:0">
// GPU:      kt.weight @l2_exp_down {{.*}}placement = #kt.device<"gpu:0">
// GPU-LABEL: func.func @forward
// GPU:      kt.embedding {{.*}}placement = #kt.device<"gpu:0">
// GPU:      kt.moe {{.*}}kt.expert_devices = [#kt.device<"gpu:0">], kt.expert_placement = array<i32: 0, 0, 0, 0, 0, 0, 0, 0>, layer = 1
// GPU:      kt.moe {{.*}}kt.expert_devices = [#kt.device<"gpu:0">], kt.expert_placement = array<i32: 0, 0, 0, 0, 0, 0, 0, 0>, layer = 2
// GPU:      kt.lm_head {{.*}}placement = #kt.device<"gpu:0">

// 15 MiB: attention (with KV cache), the dense MLP, router + shared experts and
// lm_head fit (about 11.8 MiB) next to the 1.5 MiB prefill streaming buffer, and
// so do the hottest expert of each layer per the stats file (expert 3 of layer
// 1, expert 5 of layer 2); the embedding table (read one row per token) and the
// other experts stay on the CPU. CPU-held experts are streamed to the GPU for
// prompts from the crossover length on.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB kv-tokens=1024 expert-stats=%S/Inputs/hot-experts.json" \
// RUN:   | FileCheck %s --check-prefix=SPLIT
// SPLIT:      kt.weight @embed {{.*}}placement = #kt.device<"cpu:numa0">
// SPLIT:      kt.weight @l0_q {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.weight @l0_gate {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.weight @l1_kv_b {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.weight @l1_router {{.*}}placement = #kt.device<"gpu:0">
// The stacked experts' own placement is where most of them are.
// SPLIT:      kt.weight @l1_exp_gate {{.*}}placement = #kt.device<"cpu:numa1">
// SPLIT:      kt.weight @l1_sh_gate {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.weight @lm_head {{.*}}placement = #kt.device<"gpu:0">
// SPLIT-LABEL: func.func @forward
// SPLIT:      kt.embedding {{.*}}placement = #kt.device<"cpu:numa0">
// Norms and residual adds go with the op they feed.
// SPLIT-NEXT: kt.weight_ref @l0_in_norm
// SPLIT-NEXT: kt.rms_norm {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.mla_attention {{.*}}layer = 0 : i64{{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.mlp {{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.moe {{.*}}kt.expert_devices = [#kt.device<"cpu:numa0">, #kt.device<"cpu:numa1">, #kt.device<"gpu:0">], kt.expert_placement = array<i32: 0, 1, 1, 2, 1, 1, 1, 0>, kt.prefill_offload_device = #kt.device<"gpu:0">, kt.prefill_offload_min_tokens = {{[0-9]+}} : i64, layer = 1 : i64{{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.moe {{.*}}kt.expert_placement = array<i32: 1, 1, 0, 1, 1, 2, 0, 0>, kt.prefill_offload_device = #kt.device<"gpu:0">, kt.prefill_offload_min_tokens = {{[0-9]+}} : i64, layer = 2 : i64{{.*}}placement = #kt.device<"gpu:0">
// SPLIT:      kt.lm_head {{.*}}placement = #kt.device<"gpu:0">

// The same, explained: per layer and op group the device, bytes and predicted
// times; per device totals; predicted speed.
// RUN: kt-opt %s -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB kv-tokens=1024 expert-stats=%S/Inputs/hot-experts.json explain=true" \
// RUN:   | FileCheck %s --check-prefix=EXPLAIN
// EXPLAIN:      kt-partition: test_mla_moe (3 layers) on test-gpu-box [placeholder numbers]
// EXPLAIN-NEXT:   prefill of 512 tokens; decode batch 1 with 512 cached positions; KV cache reserved for 1024 positions per sequence
// EXPLAIN:      layer  group                   device                    weights   kv cache  decode/step  prefill(512)  prefill offload
// EXPLAIN-NEXT:     -  embedding               cpu:numa0                 4.0 MiB          -
// EXPLAIN-NEXT:     0  mla attention           gpu:0                   529.2 KiB  576.0 KiB
// EXPLAIN-NEXT:     0  dense mlp               gpu:0                     3.0 MiB          -
// EXPLAIN-NEXT:     1  mla attention           gpu:0
// EXPLAIN-NEXT:     1  router + shared experts gpu:0                   777.0 KiB          -
// EXPLAIN-NEXT:     1  routed experts          1 gpu:0 / 7 cpu           6.0 MiB          - {{.*}}  stream from {{[0-9]+}} tokens
// EXPLAIN-NEXT:     2  mla attention           gpu:0
// EXPLAIN-NEXT:     2  router + shared experts gpu:0
// EXPLAIN-NEXT:     2  routed experts          1 gpu:0 / 7 cpu
// EXPLAIN-NEXT:     -  lm_head                 gpu:0                     4.0 MiB          -
// EXPLAIN-NEXT:        link transfers
// EXPLAIN-NEXT:        total                                            26.1 MiB    1.7 MiB
// EXPLAIN:      device           weights    kv cache      budget   decode busy  prefill busy
// EXPLAIN-NEXT: cpu:numa0
// EXPLAIN-NEXT: cpu:numa1
// EXPLAIN-NEXT: gpu:0           11.6 MiB     1.7 MiB    15.0 MiB
// EXPLAIN:      predicted: prefill 512 tokens in {{.*}} ({{[0-9]+}} tok/s); decode {{.*}} per step = {{[0-9]+}} tok/s
// EXPLAIN:      note: prefill offload: 1.5 MiB of gpu:0 is reserved

// ... and as JSON.
// RUN: kt-opt %s -o /dev/null --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB kv-tokens=1024 expert-stats=%S/Inputs/hot-experts.json explain-json=-" \
// RUN:   | FileCheck %s --check-prefix=JSON
// JSON:      "devices": [
// JSON:        "budget_bytes": 15728640.0,
// JSON-NEXT:   "decode_busy_seconds":
// JSON-NEXT:   "device": "gpu:0",
// JSON:      "offload_device": "gpu:0",
// JSON:      "predicted": {
// JSON-NEXT:   "decode_step_seconds":
// JSON-NEXT:   "decode_tokens_per_second":
// JSON:      "device": "1 gpu:0 / 7 cpu",
// JSON-NEXT: "experts": {
// JSON-NEXT:   "cpu:numa0": 2,
// JSON-NEXT:   "cpu:numa1": 5,
// JSON-NEXT:   "gpu:0": 1
// JSON-NEXT: },
// JSON-NEXT: "group": "routed experts",

// --experts-on-gpu=N caps the routed experts per layer on the GPU at the N
// hottest, however much room there is; 0 keeps them all on the CPU.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited experts-on-gpu=1 expert-stats=%S/Inputs/hot-experts.json" \
// RUN:   | FileCheck %s --check-prefix=ONE
// ONE: kt.moe {{.*}}kt.expert_placement = array<i32: 0, 1, 1, 2, 1, 1, 1, 0>, {{.*}}layer = 1
// ONE: kt.moe {{.*}}kt.expert_placement = array<i32: 1, 1, 0, 1, 1, 2, 0, 0>, {{.*}}layer = 2
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=unlimited experts-on-gpu=0" \
// RUN:   | FileCheck %s --check-prefix=NONE
// NONE: kt.moe {{.*}}kt.expert_devices = [#kt.device<"cpu:numa0">, #kt.device<"cpu:numa1">], kt.expert_placement = array<i32: 0, 1, 0, 1, 0, 1, 0, 1>, {{.*}}layer = 1 : i64{{.*}}placement = #kt.device<"gpu:0">

// --prefill-offload: never streams (no attribute), always streams from 1 token.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB prefill-offload=never" \
// RUN:   | FileCheck %s --check-prefix=NEVER --implicit-check-not=kt.prefill_offload
// NEVER: kt.moe {{.*}}kt.expert_placement
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB prefill-offload=always" \
// RUN:   | FileCheck %s --check-prefix=ALWAYS
// ALWAYS: kt.moe {{.*}}kt.prefill_offload_device = #kt.device<"gpu:0">, kt.prefill_offload_min_tokens = 1 : i64, layer = 1

// Placement overrides win over the cost model: layer 1's attention and expert
// 5 of layer 2 go to the GPU although, with only 3 MiB there, the model would
// rather not split the layers (each crossing of the link costs more than the
// GPU saves).
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=3MiB placement-override=model.layers.1.self_attn=gpu:0 placement-override=l2_exp_gate\[5\]=gpu:0" \
// RUN:   | FileCheck %s --check-prefix=PIN
// PIN:      kt.weight @l0_q {{.*}}placement = #kt.device<"cpu:numa0">
// PIN:      kt.weight @l1_q {{.*}}placement = #kt.device<"gpu:0">
// PIN:      kt.weight @l1_o {{.*}}placement = #kt.device<"gpu:0">
// PIN:      kt.weight @l2_q {{.*}}placement = #kt.device<"cpu:numa0">
// PIN-LABEL: func.func @forward
// PIN:      kt.mla_attention {{.*}}layer = 0 : i64{{.*}}placement = #kt.device<"cpu:numa0">
// PIN:      kt.mla_attention {{.*}}layer = 1 : i64{{.*}}placement = #kt.device<"gpu:0">
// PIN:      kt.moe {{.*}}layer = 1 : i64{{.*}}placement = #kt.device<"cpu:numa0">
// PIN:      kt.moe {{.*}}kt.expert_devices = [#kt.device<"cpu:numa0">, #kt.device<"cpu:numa1">, #kt.device<"gpu:0">], kt.expert_placement = array<i32: {{[01], [01], [01], [01], [01]}}, 2, {{[01], [01]}}>, layer = 2

// The CPU budget is too small even with the GPU as full as it can be: the
// error says by how much and what to change.
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=0 cpu-mem=16MiB" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=NOFIT
// NOFIT: error: kt-partition: the model does not fit: it needs 29.4 MiB of CPU memory (12.0 MiB for routed experts, 17.4 MiB for other weights and the KV cache), but the CPU budget is 16.0 MiB (short by 13.4 MiB): raise --cpu-mem to at least 29.4 MiB, use --cpu-quant int4 (saves 8.6 MiB on the routed experts alone), or give the GPU more memory (--gpu-mem is 0 B)
// RUN: not kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=4MiB cpu-mem=16MiB" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=NOFIT-GPU
// NOFIT-GPU: error: kt-partition: the model does not fit: it needs 27.2 MiB of CPU memory (11.2 MiB for routed experts, 15.9 MiB for other weights and the KV cache) after 3.8 MiB went to the accelerators, but the CPU budget is 16.0 MiB (short by 11.2 MiB)

// The result verifies, prints and parses back.
// RUN: kt-opt %s --kt-partition="profile=%S/Inputs/gpu-box.json gpu-mem=15MiB" --kt-verify-placement \
// RUN:   | kt-opt --kt-verify-placement | FileCheck %s --check-prefix=ROUNDTRIP
// ROUNDTRIP: kt.moe {{.*}}kt.expert_devices

module attributes {kt.model = {arch = "test_mla_moe", num_layers = 3 : i64, max_position = 2048 : i64, hidden_size = 512 : i64, vocab_size = 4096 : i64}} {
  kt.weight @embed : tensor<4096x512xbf16> {hf_name = "model.embed_tokens.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 0, size = 4194304>]}
  kt.weight @l0_in_norm : tensor<512xbf16> {hf_name = "model.layers.0.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4194304, size = 1024>]}
  kt.weight @l0_q : tensor<192x512xbf16> {hf_name = "model.layers.0.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4195328, size = 196608>]}
  kt.weight @l0_kv_a : tensor<144x512xbf16> {hf_name = "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4391936, size = 147456>]}
  kt.weight @l0_kv_a_norm : tensor<128xbf16> {hf_name = "model.layers.0.self_attn.kv_a_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4539392, size = 256>]}
  kt.weight @l0_kv_b : tensor<256x128xbf16> {hf_name = "model.layers.0.self_attn.kv_b_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4539648, size = 65536>]}
  kt.weight @l0_o : tensor<512x128xbf16> {hf_name = "model.layers.0.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4605184, size = 131072>]}
  kt.weight @l0_post_norm : tensor<512xbf16> {hf_name = "model.layers.0.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4736256, size = 1024>]}
  kt.weight @l0_gate : tensor<1024x512xbf16> {hf_name = "model.layers.0.mlp.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4737280, size = 1048576>]}
  kt.weight @l0_up : tensor<1024x512xbf16> {hf_name = "model.layers.0.mlp.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 5785856, size = 1048576>]}
  kt.weight @l0_down : tensor<512x1024xbf16> {hf_name = "model.layers.0.mlp.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 6834432, size = 1048576>]}
  kt.weight @l1_in_norm : tensor<512xbf16> {hf_name = "model.layers.1.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 7883008, size = 1024>]}
  kt.weight @l1_q : tensor<192x512xbf16> {hf_name = "model.layers.1.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 7884032, size = 196608>]}
  kt.weight @l1_kv_a : tensor<144x512xbf16> {hf_name = "model.layers.1.self_attn.kv_a_proj_with_mqa.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8080640, size = 147456>]}
  kt.weight @l1_kv_a_norm : tensor<128xbf16> {hf_name = "model.layers.1.self_attn.kv_a_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8228096, size = 256>]}
  kt.weight @l1_kv_b : tensor<256x128xbf16> {hf_name = "model.layers.1.self_attn.kv_b_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8228352, size = 65536>]}
  kt.weight @l1_o : tensor<512x128xbf16> {hf_name = "model.layers.1.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8293888, size = 131072>]}
  kt.weight @l1_post_norm : tensor<512xbf16> {hf_name = "model.layers.1.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8424960, size = 1024>]}
  kt.weight @l1_router : tensor<8x512xbf16> {hf_name = "model.layers.1.mlp.gate.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8425984, size = 8192>]}
  kt.weight @l1_exp_gate : tensor<8x256x512xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 8434176, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 8696320, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 8958464, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 9220608, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 9482752, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 9744896, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 10007040, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 10269184, size = 262144>]}
  kt.weight @l1_exp_up : tensor<8x256x512xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 10531328, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 10793472, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 11055616, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 11317760, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 11579904, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 11842048, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 12104192, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 12366336, size = 262144>]}
  kt.weight @l1_exp_down : tensor<8x512x256xbf16> {hf_name = "model.layers.1.mlp.experts.{e}.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 12628480, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 12890624, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 13152768, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 13414912, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 13677056, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 13939200, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 14201344, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 14463488, size = 262144>]}
  kt.weight @l1_sh_gate : tensor<256x512xbf16> {hf_name = "model.layers.1.mlp.shared_experts.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 14725632, size = 262144>]}
  kt.weight @l1_sh_up : tensor<256x512xbf16> {hf_name = "model.layers.1.mlp.shared_experts.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 14987776, size = 262144>]}
  kt.weight @l1_sh_down : tensor<512x256xbf16> {hf_name = "model.layers.1.mlp.shared_experts.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15249920, size = 262144>]}
  kt.weight @l2_in_norm : tensor<512xbf16> {hf_name = "model.layers.2.input_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15512064, size = 1024>]}
  kt.weight @l2_q : tensor<192x512xbf16> {hf_name = "model.layers.2.self_attn.q_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15513088, size = 196608>]}
  kt.weight @l2_kv_a : tensor<144x512xbf16> {hf_name = "model.layers.2.self_attn.kv_a_proj_with_mqa.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15709696, size = 147456>]}
  kt.weight @l2_kv_a_norm : tensor<128xbf16> {hf_name = "model.layers.2.self_attn.kv_a_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15857152, size = 256>]}
  kt.weight @l2_kv_b : tensor<256x128xbf16> {hf_name = "model.layers.2.self_attn.kv_b_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15857408, size = 65536>]}
  kt.weight @l2_o : tensor<512x128xbf16> {hf_name = "model.layers.2.self_attn.o_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 15922944, size = 131072>]}
  kt.weight @l2_post_norm : tensor<512xbf16> {hf_name = "model.layers.2.post_attention_layernorm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 16054016, size = 1024>]}
  kt.weight @l2_router : tensor<8x512xbf16> {hf_name = "model.layers.2.mlp.gate.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 16055040, size = 8192>]}
  kt.weight @l2_exp_gate : tensor<8x256x512xbf16> {hf_name = "model.layers.2.mlp.experts.{e}.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 16063232, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 16325376, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 16587520, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 16849664, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 17111808, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 17373952, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 17636096, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 17898240, size = 262144>]}
  kt.weight @l2_exp_up : tensor<8x256x512xbf16> {hf_name = "model.layers.2.mlp.experts.{e}.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 18160384, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 18422528, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 18684672, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 18946816, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 19208960, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 19471104, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 19733248, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 19995392, size = 262144>]}
  kt.weight @l2_exp_down : tensor<8x512x256xbf16> {hf_name = "model.layers.2.mlp.experts.{e}.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 20257536, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 20519680, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 20781824, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 21043968, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 21306112, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 21568256, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 21830400, size = 262144>,
      #kt.storage<file = "model.safetensors", offset = 22092544, size = 262144>]}
  kt.weight @l2_sh_gate : tensor<256x512xbf16> {hf_name = "model.layers.2.mlp.shared_experts.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 22354688, size = 262144>]}
  kt.weight @l2_sh_up : tensor<256x512xbf16> {hf_name = "model.layers.2.mlp.shared_experts.up_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 22616832, size = 262144>]}
  kt.weight @l2_sh_down : tensor<512x256xbf16> {hf_name = "model.layers.2.mlp.shared_experts.down_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 22878976, size = 262144>]}
  kt.weight @final_norm : tensor<512xbf16> {hf_name = "model.norm.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 23141120, size = 1024>]}
  kt.weight @lm_head : tensor<4096x512xbf16> {hf_name = "lm_head.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 23142144, size = 4194304>]}

  func.func @forward(%ids: tensor<?xi32>, %positions: tensor<?xi32>) -> tensor<?x4096xf32> {
    %embed = kt.weight_ref @embed : tensor<4096x512xbf16>
    %h0 = kt.embedding %embed, %ids : (tensor<4096x512xbf16>, tensor<?xi32>) -> tensor<?x512xf32>

    // Layer 0: MLA + dense MLP.
    %l0_in = kt.weight_ref @l0_in_norm : tensor<512xbf16>
    %l0_x = kt.rms_norm %h0, %l0_in : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l0_q = kt.weight_ref @l0_q : tensor<192x512xbf16>
    %l0_kv_a = kt.weight_ref @l0_kv_a : tensor<144x512xbf16>
    %l0_kv_a_norm = kt.weight_ref @l0_kv_a_norm : tensor<128xbf16>
    %l0_kv_b = kt.weight_ref @l0_kv_b : tensor<256x128xbf16>
    %l0_o = kt.weight_ref @l0_o : tensor<512x128xbf16>
    %l0_attn = kt.mla_attention %l0_x, %positions q(%l0_q) kv_lora(%l0_kv_a, %l0_kv_a_norm, %l0_kv_b) o(%l0_o) {num_heads = 4 : i64, kv_lora_rank = 128 : i64, qk_nope_head_dim = 32 : i64, qk_rope_head_dim = 16 : i64, v_head_dim = 32 : i64, scale = 0.1443 : f64, rope = #kt.rope<dim = 16, theta = 10000.0, interleaved = true>, layer = 0 : i64} : (tensor<?x512xf32>, tensor<?xi32>, tensor<192x512xbf16>, tensor<144x512xbf16>, tensor<128xbf16>, tensor<256x128xbf16>, tensor<512x128xbf16>) -> tensor<?x512xf32>
    %l0_h1 = kt.add %h0, %l0_attn : tensor<?x512xf32>
    %l0_pn = kt.weight_ref @l0_post_norm : tensor<512xbf16>
    %l0_x2 = kt.rms_norm %l0_h1, %l0_pn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l0_g = kt.weight_ref @l0_gate : tensor<1024x512xbf16>
    %l0_u = kt.weight_ref @l0_up : tensor<1024x512xbf16>
    %l0_d = kt.weight_ref @l0_down : tensor<512x1024xbf16>
    %l0_ff = kt.mlp %l0_x2, %l0_g, %l0_u, %l0_d : (tensor<?x512xf32>, tensor<1024x512xbf16>, tensor<1024x512xbf16>, tensor<512x1024xbf16>) -> tensor<?x512xf32>
    %l0_h2 = kt.add %l0_h1, %l0_ff : tensor<?x512xf32>

    // Layer 1: MLA + MoE with a shared expert.
    %l1_in = kt.weight_ref @l1_in_norm : tensor<512xbf16>
    %l1_x = kt.rms_norm %l0_h2, %l1_in : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l1_q = kt.weight_ref @l1_q : tensor<192x512xbf16>
    %l1_kv_a = kt.weight_ref @l1_kv_a : tensor<144x512xbf16>
    %l1_kv_a_norm = kt.weight_ref @l1_kv_a_norm : tensor<128xbf16>
    %l1_kv_b = kt.weight_ref @l1_kv_b : tensor<256x128xbf16>
    %l1_o = kt.weight_ref @l1_o : tensor<512x128xbf16>
    %l1_attn = kt.mla_attention %l1_x, %positions q(%l1_q) kv_lora(%l1_kv_a, %l1_kv_a_norm, %l1_kv_b) o(%l1_o) {num_heads = 4 : i64, kv_lora_rank = 128 : i64, qk_nope_head_dim = 32 : i64, qk_rope_head_dim = 16 : i64, v_head_dim = 32 : i64, scale = 0.1443 : f64, rope = #kt.rope<dim = 16, theta = 10000.0, interleaved = true>, layer = 1 : i64} : (tensor<?x512xf32>, tensor<?xi32>, tensor<192x512xbf16>, tensor<144x512xbf16>, tensor<128xbf16>, tensor<256x128xbf16>, tensor<512x128xbf16>) -> tensor<?x512xf32>
    %l1_h1 = kt.add %l0_h2, %l1_attn : tensor<?x512xf32>
    %l1_pn = kt.weight_ref @l1_post_norm : tensor<512xbf16>
    %l1_x2 = kt.rms_norm %l1_h1, %l1_pn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l1_router = kt.weight_ref @l1_router : tensor<8x512xbf16>
    %l1_exp_gate = kt.weight_ref @l1_exp_gate : tensor<8x256x512xbf16>
    %l1_exp_up = kt.weight_ref @l1_exp_up : tensor<8x256x512xbf16>
    %l1_exp_down = kt.weight_ref @l1_exp_down : tensor<8x512x256xbf16>
    %l1_sh_gate = kt.weight_ref @l1_sh_gate : tensor<256x512xbf16>
    %l1_sh_up = kt.weight_ref @l1_sh_up : tensor<256x512xbf16>
    %l1_sh_down = kt.weight_ref @l1_sh_down : tensor<512x256xbf16>
    %l1_ff = kt.moe %l1_x2, %l1_router experts(%l1_exp_gate, %l1_exp_up, %l1_exp_down) shared(%l1_sh_gate, %l1_sh_up, %l1_sh_down) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 1 : i64} : (tensor<?x512xf32>, tensor<8x512xbf16>, tensor<8x256x512xbf16>, tensor<8x256x512xbf16>, tensor<8x512x256xbf16>, tensor<256x512xbf16>, tensor<256x512xbf16>, tensor<512x256xbf16>) -> tensor<?x512xf32>
    %l1_h2 = kt.add %l1_h1, %l1_ff : tensor<?x512xf32>

    // Layer 2: MLA + MoE with a shared expert.
    %l2_in = kt.weight_ref @l2_in_norm : tensor<512xbf16>
    %l2_x = kt.rms_norm %l1_h2, %l2_in : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l2_q = kt.weight_ref @l2_q : tensor<192x512xbf16>
    %l2_kv_a = kt.weight_ref @l2_kv_a : tensor<144x512xbf16>
    %l2_kv_a_norm = kt.weight_ref @l2_kv_a_norm : tensor<128xbf16>
    %l2_kv_b = kt.weight_ref @l2_kv_b : tensor<256x128xbf16>
    %l2_o = kt.weight_ref @l2_o : tensor<512x128xbf16>
    %l2_attn = kt.mla_attention %l2_x, %positions q(%l2_q) kv_lora(%l2_kv_a, %l2_kv_a_norm, %l2_kv_b) o(%l2_o) {num_heads = 4 : i64, kv_lora_rank = 128 : i64, qk_nope_head_dim = 32 : i64, qk_rope_head_dim = 16 : i64, v_head_dim = 32 : i64, scale = 0.1443 : f64, rope = #kt.rope<dim = 16, theta = 10000.0, interleaved = true>, layer = 2 : i64} : (tensor<?x512xf32>, tensor<?xi32>, tensor<192x512xbf16>, tensor<144x512xbf16>, tensor<128xbf16>, tensor<256x128xbf16>, tensor<512x128xbf16>) -> tensor<?x512xf32>
    %l2_h1 = kt.add %l1_h2, %l2_attn : tensor<?x512xf32>
    %l2_pn = kt.weight_ref @l2_post_norm : tensor<512xbf16>
    %l2_x2 = kt.rms_norm %l2_h1, %l2_pn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %l2_router = kt.weight_ref @l2_router : tensor<8x512xbf16>
    %l2_exp_gate = kt.weight_ref @l2_exp_gate : tensor<8x256x512xbf16>
    %l2_exp_up = kt.weight_ref @l2_exp_up : tensor<8x256x512xbf16>
    %l2_exp_down = kt.weight_ref @l2_exp_down : tensor<8x512x256xbf16>
    %l2_sh_gate = kt.weight_ref @l2_sh_gate : tensor<256x512xbf16>
    %l2_sh_up = kt.weight_ref @l2_sh_up : tensor<256x512xbf16>
    %l2_sh_down = kt.weight_ref @l2_sh_down : tensor<512x256xbf16>
    %l2_ff = kt.moe %l2_x2, %l2_router experts(%l2_exp_gate, %l2_exp_up, %l2_exp_down) shared(%l2_sh_gate, %l2_sh_up, %l2_sh_down) {num_experts = 8 : i64, experts_per_token = 2 : i64, scoring = "softmax", layer = 2 : i64} : (tensor<?x512xf32>, tensor<8x512xbf16>, tensor<8x256x512xbf16>, tensor<8x256x512xbf16>, tensor<8x512x256xbf16>, tensor<256x512xbf16>, tensor<256x512xbf16>, tensor<512x256xbf16>) -> tensor<?x512xf32>
    %l2_h2 = kt.add %l2_h1, %l2_ff : tensor<?x512xf32>

    %fn = kt.weight_ref @final_norm : tensor<512xbf16>
    %xf = kt.rms_norm %l2_h2, %fn : (tensor<?x512xf32>, tensor<512xbf16>) -> tensor<?x512xf32>
    %lm = kt.weight_ref @lm_head : tensor<4096x512xbf16>
    %logits = kt.lm_head %xf, %lm : (tensor<?x512xf32>, tensor<4096x512xbf16>) -> tensor<?x4096xf32>
    return %logits : tensor<?x4096xf32>
  }
}
