//===- Passes.td - kt dialect passes ------------------------*- tablegen -*-===//

#ifndef KT_DIALECT_KT_TRANSFORMS_PASSES_TD
#define KT_DIALECT_KT_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AssignPlacementPass : Pass<"kt-assign-placement", "::mlir::ModuleOp"> {
  let summary = "Place every unplaced weight and op on one device";
  let description = [{
    Sets `placement = #kt.device<device>` on every `kt.weight` and every kt op
    with a placement (all ops implementing PlacementOpInterface, i.e. the ones
    in `@forward`) that does not have one yet. Existing placements are kept,
    so a user (or an earlier pass) can pin some ops and let this pass place the
    rest. It is the trivial partitioner: the baseline the cost-model driven
    partitioner is compared against, and a way to run a whole model on one
    device.
  }];
  let dependentDialects = ["::mlir::kt::KTDialect"];
  let options = [
    Option<"device", "device", "std::string", /*default=*/"\"cpu:numa0\"",
           "Device for unplaced weights and ops: gpu:N, cpu:numaN, npu:N or disk">
  ];
}

def PartitionPass : Pass<"kt-partition", "::mlir::ModuleOp"> {
  let summary = "Place weights, ops and routed experts on devices with a cost model";
  let description = [{
    Reads a hardware profile (docs/hardware-profile.md), predicts the time of
    every op on every device with the cost model in compiler/cost
    (docs/cost-model.md), and places the model under per-device memory
    budgets: attention (with its KV cache), dense MLPs, shared experts and the
    hottest routed experts go to the GPU while memory allows, greedily by
    predicted decode time saved per byte; everything else stays in CPU memory,
    routed experts spread over the NUMA nodes. Sets `placement` on every
    kt.weight and kt op, and on each kt.moe the per-expert map
    `kt.expert_devices` / `kt.expert_placement` and, where streaming CPU-held
    experts to the GPU beats computing them on the CPU for long prompts,
    `kt.prefill_offload_min_tokens` / `kt.prefill_offload_device`
    (see PlacementAttrs.h). Placements already in the input, and
    `placement-override` rules (which win over them), are kept as given.
    Fails with an error that says by how much and what to change when the
    model does not fit.

    Example: `kt-opt m.mlir --kt-partition="profile=hw.json gpu-mem=12GiB explain=true"`.
  }];
  let dependentDialects = ["::mlir::kt::KTDialect"];
  let options = [
    Option<"profile", "profile", "std::string", /*default=*/"\"\"",
           "Hardware profile: a JSON file, or the JSON itself when it starts with '{'">,
    Option<"gpuMem", "gpu-mem", "std::string", /*default=*/"\"\"",
           "Memory budget of each GPU (e.g. 12GiB, 0, unlimited); default: the profile's memory minus its reserve">,
    Option<"cpuMem", "cpu-mem", "std::string", /*default=*/"\"\"",
           "CPU memory budget, all NUMA nodes together; default: the profile's memory minus its reserve">,
    Option<"expertsOnGpu", "experts-on-gpu", "std::string", /*default=*/"\"auto\"",
           "Routed experts per MoE layer on accelerators: a number, or auto (as many as pay off and fit)">,
    Option<"expertStats", "expert-stats", "std::string", /*default=*/"\"\"",
           "JSON file of measured per-layer, per-expert activation counts (default: uniform routing)">,
    Option<"prefillOffload", "prefill-offload", "std::string", /*default=*/"\"auto\"",
           "Stream CPU-held experts to the GPU for prefill: auto (from the predicted crossover prompt length), never, always">,
    ListOption<"placementOverrides", "placement-override", "std::string",
           "REGEX=DEVICE: pin the weights (and their ops) whose symbol or Hugging Face name matches REGEX">,
    Option<"promptLen", "prompt-len", "int64_t", /*default=*/"512",
           "Prompt length P for the predicted prefill (and decode context)">,
    Option<"decodeBatch", "decode-batch", "int64_t", /*default=*/"1",
           "Sequences decoded together (decode prediction and KV-cache reserve)">,
    Option<"kvTokens", "kv-tokens", "int64_t", /*default=*/"0",
           "KV-cache positions reserved per sequence (0: the model's max_position, at most 4096)">,
    Option<"cpuQuant", "cpu-quant", "std::string", /*default=*/"\"\"",
           "How kt-quantize-weights will pack CPU-held weight matrices (f32, bf16, int8, int4[:g32|:g128][:asym]); the partitioner sizes and times CPU-held weights in that format (default: as stored)">,
    Option<"computeDtype", "compute-dtype", "std::string", /*default=*/"\"\"",
           "The plan's compute dtype (f32, bf16; kt-compile --dtype), +int8 or +int4 with kt-compile --gpu-quant int8/int4: the CUDA backend holds GPU weights in it (vectors and MLA's kv_b_proj in f32; GEMM matrices int8 with +int8, int4 with an f16 scale per 128 columns with +int4), and the partitioner sizes accelerator-held weights the same way (default: as stored)">,
    Option<"explain", "explain", "bool", /*default=*/"false",
           "Print the placement and predicted speed as a table to stdout">,
    Option<"explainJson", "explain-json", "std::string", /*default=*/"\"\"",
           "Write the same as JSON to this file ('-' for stdout)">
  ];
}

def VerifyPlacementPass : Pass<"kt-verify-placement", "::mlir::ModuleOp"> {
  let summary = "Check that every weight and op is placed, and the expert maps are well formed";
  let description = [{
    What the plan emitter relies on after partitioning: every kt.weight and
    every kt op with a `placement` has one, and the discardable attributes of
    kt.moe (kt.expert_devices / kt.expert_placement, kt.prefill_offload_*)
    are well formed. Errors name the op.
  }];
  let dependentDialects = ["::mlir::kt::KTDialect"];
}

def AttachLoraPass : Pass<"kt-attach-lora", "::mlir::ModuleOp"> {
  let summary = "Declare LoRA adapters on the projections PEFT would target";
  let description = [{
    Matches PEFT's rules against the Hugging Face names of the weights of
    @forward: a `target-modules` entry hits a projection whose module path
    (the weight's hf_name without ".weight") equals it or ends with "." + it
    (q_proj, kv_b_proj, gate_proj of dense MLPs and shared experts, ...); a
    `target-parameters` entry (gate_up_proj, down_proj) hits the routed
    experts of every MoE layer as transformers 5 fuses them (one adapter per
    parameter in PEFT's ParamWrapper layout; gate_up covers the gate and up
    weights). Declares one `kt.lora_adapter` per hit, named as PEFT names the
    module, and records it on the op in `kt.adapters = {slot = @adapter}`.
    `rank-pattern` / `alpha-pattern` entries `REGEX=VALUE` override r / alpha
    for module (or parameter) paths that REGEX matches as PEFT does (a full
    match of a dotted suffix). Fails, naming the entry and the candidate
    modules, when an entry matches nothing. Sets the module attribute
    `kt.training` (method, r, alpha, targets).

    Example: `kt-opt m.mlir --kt-attach-lora="target-modules=q_proj,o_proj r=8 alpha=16"`.
  }];
  let dependentDialects = ["::mlir::kt::KTDialect"];
  let options = [
    ListOption<"targetModules", "target-modules", "std::string",
           "PEFT target_modules: module-name suffixes (q_proj, kv_b_proj, gate_proj, ...)">,
    ListOption<"targetParameters", "target-parameters", "std::string",
           "PEFT target_parameters of fused routed experts: gate_up_proj, down_proj">,
    Option<"rank", "r", "int64_t", /*default=*/"8", "LoRA rank">,
    Option<"alpha", "alpha", "double", /*default=*/"16.0", "LoRA alpha (scale = alpha / r)">,
    ListOption<"rankPattern", "rank-pattern", "std::string",
           "REGEX=R: PEFT rank_pattern entries">,
    ListOption<"alphaPattern", "alpha-pattern", "std::string",
           "REGEX=ALPHA: PEFT alpha_pattern entries">
  ];
}

def DeriveTrainStepPass : Pass<"kt-derive-train-step", "::mlir::ModuleOp"> {
  let summary = "Derive func @train_step: forward + loss + reverse-mode backward + AdamW";
  let description = [{
    Builds `func.func @train_step(ids, positions, labels) -> loss` from
    @forward (docs/training.md): the forward ops are cloned (taps dropped,
    lm_head replaced by kt.cross_entropy_loss), then one backward op per
    forward op is emitted in reverse order with a rule per op kind
    (rms_norm -> rms_norm_grad, attention -> attention_grad, ... ; add
    passes dy to both operands; embedding has none: its table is frozen).
    Only ops that have adapters, or that lie above one, get a backward op,
    and a backward op returns dx only when an adapter lies below it (the
    gradient is pruned where nothing below needs it). Where a value feeds
    several ops (the residual stream) its gradient contributions are summed
    with kt.add. The step ends with kt.adamw. Adapters stay only on the
    train_step ops: @forward (prefill/decode) keeps running the base model.
    Sets kt.training's saved_activation_bytes_per_token: the f32 bytes per
    token of forward values the backward reads (kept alive by the emitter).
  }];
  let dependentDialects = ["::mlir::kt::KTDialect", "::mlir::func::FuncDialect"];
}

#endif // KT_DIALECT_KT_TRANSFORMS_PASSES_TD
