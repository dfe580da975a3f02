//===- KTOps.td - kt dialect ops ----------------------------*- tablegen -*-===//
//
// Why every compute op is Pure: ops here have value semantics. The KV cache is
// runtime state addressed by an attention op's `layer` index, not an SSA value
// that ops mutate, so no op has an observable side effect in the IR. That keeps
// CSE/DCE/canonicalization legal and, more importantly, lets a later pass derive
// the LoRA backward graph by reverse-mode AD over these ops: with no hidden
// effects, the adjoint of each op depends only on its operands and results.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECT_KTOPS_TD
#define KT_DIALECT_KTOPS_TD

include "dialects/kt/IR/KTBase.td"
include "dialects/kt/IR/KTAttrs.td"
include "dialects/kt/IR/KTInterfaces.td"
include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class KT_Op<string mnemonic, list<Trait> traits = []>
    : Op<KT_Dialect, mnemonic, traits>;

// An op that computes on some device. All carry an optional `placement`
// (set by kt-assign-placement / the partitioner) and verify shapes in C++ so
// that errors name the operand and both shapes.
class KT_ComputeOp<string mnemonic, list<Trait> traits = []>
    : KT_Op<mnemonic, !listconcat([Pure, KT_PlacementOpInterface], traits)> {
  let hasVerifier = 1;
}

defvar KT_PlacementArg = (ins OptionalAttr<KT_DeviceAttr>:$placement);

def KT_StorageArrayAttr
    : TypedArrayAttrBase<KT_StorageAttr, "array of #kt.storage byte ranges">;

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

def KT_WeightOp : KT_Op<"weight", [
    Symbol, HasParent<"::mlir::ModuleOp">, KT_PlacementOpInterface]> {
  let summary = "A model weight that lives in an external file";
  let description = [{
    Declares a weight by where its bytes are, never by value: the IR of a
    600 GB model stays small and the runtime mmaps the ranges. The element type
    is the dtype in the file (f32, bf16 or f16). `storage` is either one range
    holding the whole tensor, or `shape[0]` ranges (one per slice along dim 0)
    when per-expert checkpoint tensors are stacked into one [E, ...] weight;
    `hf_name` then names the checkpoint tensors with `{e}` for the index.
    `quant` says how the plan stores the weight at run time; `placement` says
    where.

    ```mlir
    kt.weight @l1_gate : tensor<4x32x64xbf16> {
      hf_name = "model.layers.1.mlp.experts.{e}.gate_proj.weight",
      storage = [#kt.storage<file = "model.safetensors", offset = 4096, size = 4096>, ...],
      quant = #kt.quant<scheme = "int4", group = 32>}
    ```
  }];
  let arguments = (ins
    SymbolNameAttr:$sym_name,
    TypeAttrOf<KT_WeightTensor>:$type,
    KT_StorageArrayAttr:$storage,
    StrAttr:$hf_name,
    OptionalAttr<KT_DeviceAttr>:$placement,
    OptionalAttr<KT_QuantAttr>:$quant
  );
  let assemblyFormat = "$sym_name `:` $type attr-dict";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The declared tensor type (static shape, verified).
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
    /// Total bytes of the weight in the file.
    uint64_t getStorageBytes();
  }];
}

def KT_WeightRefOp : KT_Op<"weight_ref", [
    Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "The value of a kt.weight";
  let description = [{
    `%w = kt.weight_ref @sym : tensor<...>` reads the weight declared by
    `kt.weight @sym`; the type must match the declaration.
  }];
  let arguments = (ins FlatSymbolRefAttr:$weight);
  let results = (outs KT_WeightTensor:$result);
  let assemblyFormat = "$weight attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Basic layers
//===----------------------------------------------------------------------===//

def KT_EmbeddingOp : KT_ComputeOp<"embedding"> {
  let summary = "Token embedding lookup";
  let description = [{
    `table` [V, H], `ids` [T] -> [T, H] f32 (rows of the table, converted).
    Ids outside [0, V) are a runtime error, not undefined behaviour.
  }];
  let arguments = !con((ins KT_WeightTensor:$table, KT_IndexVector:$ids),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat =
      "$table `,` $ids attr-dict `:` functional-type(operands, results)";
}

def KT_RmsNormOp : KT_ComputeOp<"rms_norm"> {
  let summary = "RMSNorm over the last dimension";
  let description = [{
    `x` [..., D], `weight` [D]: x / sqrt(mean(x^2) + eps) * weight.
  }];
  let arguments = !con((ins KT_Activation:$x, KT_WeightTensor:$weight,
                            DefaultValuedAttr<F64Attr, "1e-6">:$eps),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat =
      "$x `,` $weight attr-dict `:` functional-type(operands, results)";
}

def KT_LinearOp : KT_ComputeOp<"linear"> {
  let summary = "y = x W^T (+ bias)";
  let description = [{
    `x` [T, K], `weight` [N, K] (PyTorch nn.Linear layout), optional `bias`
    [N] -> [T, N] f32.
  }];
  let arguments = !con((ins KT_Activation:$x, KT_WeightTensor:$weight,
                            Optional<KT_WeightTensor>:$bias),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = "$x `,` $weight (`,` $bias^)? attr-dict `:` "
                       "functional-type(operands, results)";
}

def KT_RopeOp : KT_ComputeOp<"rope"> {
  let summary = "Rotary position embedding";
  let description = [{
    `x` [T, heads, D], `positions` [T] -> same type as `x`. Rotates the last
    `rope.dim` channels of each head (all of them when D == rope.dim; MLA's
    q_pe/k_pe sit after the no-position part), pairing channels as
    `rope.interleaved` says.
  }];
  let arguments = !con((ins KT_Activation:$x, KT_IndexVector:$positions,
                            KT_RopeAttr:$rope),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat =
      "$x `,` $positions attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def KT_AttentionOp : KT_ComputeOp<"attention", [AttrSizedOperandSegments]> {
  let summary = "Causal multi-head / grouped-query attention with KV cache";
  let description = [{
    `x` [T, H], `positions` [T]. With nh = num_heads, nkv = num_kv_heads,
    d = head_dim:
      q = x q_proj^T (+ q_bias) as [T, nh, d]; k, v = x {k,v}_proj^T (+ bias)
      as [T, nkv, d]; with q_norm/k_norm (Qwen3), RMSNorm each head with
      `norm_eps`; apply `rope` to the first rope.dim channels of each q/k head
      (Hugging Face's partial-rotary convention); append k, v to the
      sequence's KV cache slot `layer`; each query head h attends (causally,
      softmax(q k^T * scale)) to kv head h / (nh / nkv) over cache + new
      tokens; result = attn o_proj^T, [T, H] f32.
    Biases come as a group of three, norms as a pair.
  }];
  let arguments = !con((ins
    KT_Activation:$x,
    KT_IndexVector:$positions,
    KT_WeightTensor:$q_proj,
    KT_WeightTensor:$k_proj,
    KT_WeightTensor:$v_proj,
    KT_WeightTensor:$o_proj,
    Optional<KT_WeightTensor>:$q_bias,
    Optional<KT_WeightTensor>:$k_bias,
    Optional<KT_WeightTensor>:$v_bias,
    Optional<KT_WeightTensor>:$q_norm,
    Optional<KT_WeightTensor>:$k_norm,
    I64Attr:$num_heads,
    I64Attr:$num_kv_heads,
    I64Attr:$head_dim,
    F64Attr:$scale,
    KT_RopeAttr:$rope,
    I64Attr:$layer,
    OptionalAttr<F64Attr>:$norm_eps), KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = [{
    $x `,` $positions `,` $q_proj `,` $k_proj `,` $v_proj `,` $o_proj
    (`bias` `(` $q_bias^ `,` $k_bias `,` $v_bias `)`)?
    (`qk_norm` `(` $q_norm^ `,` $k_norm `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def KT_MlaAttentionOp : KT_ComputeOp<"mla_attention", [AttrSizedOperandSegments]> {
  let summary = "DeepSeek multi-head latent attention with KV cache";
  let description = [{
    `x` [T, H], `positions` [T]; nope = qk_nope_head_dim, r = qk_rope_head_dim.
      q = x q_proj^T                       (q_lora_rank == 0), or
      q = rms_norm(x q_a_proj^T, q_a_norm) q_b_proj^T   (q_lora_rank > 0);
      q as [T, heads, nope + r] = [q_nope | q_pe].
      [c_kv | k_pe] = x kv_a_proj^T        ([T, kv_lora_rank + r]);
      c_kv = rms_norm(c_kv, kv_a_norm); [k_nope | v] = c_kv kv_b_proj^T as
      [T, heads, nope + v_head_dim]; k_pe is shared by all heads.
      `rope` (dim == r) rotates q_pe and k_pe; the cache slot `layer` keeps
      c_kv and k_pe (the compressed latent, which is MLA's point);
      causal softmax((q_nope k_nope^T + q_pe k_pe^T) * scale) v, then o_proj.
    `scale` is final (the importer folds YaRN's mscale^2 into it); both RMSNorms
    use `norm_eps`. Result [T, H] f32.
  }];
  let arguments = !con((ins
    KT_Activation:$x,
    KT_IndexVector:$positions,
    Optional<KT_WeightTensor>:$q_proj,
    Optional<KT_WeightTensor>:$q_a_proj,
    Optional<KT_WeightTensor>:$q_a_norm,
    Optional<KT_WeightTensor>:$q_b_proj,
    KT_WeightTensor:$kv_a_proj,
    KT_WeightTensor:$kv_a_norm,
    KT_WeightTensor:$kv_b_proj,
    KT_WeightTensor:$o_proj,
    I64Attr:$num_heads,
    DefaultValuedAttr<I64Attr, "0">:$q_lora_rank,
    I64Attr:$kv_lora_rank,
    I64Attr:$qk_nope_head_dim,
    I64Attr:$qk_rope_head_dim,
    I64Attr:$v_head_dim,
    F64Attr:$scale,
    KT_RopeAttr:$rope,
    I64Attr:$layer,
    DefaultValuedAttr<F64Attr, "1e-6">:$norm_eps), KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = [{
    $x `,` $positions
    (`q` `(` $q_proj^ `)`)?
    (`q_lora` `(` $q_a_proj^ `,` $q_a_norm `,` $q_b_proj `)`)?
    `kv_lora` `(` $kv_a_proj `,` $kv_a_norm `,` $kv_b_proj `)`
    `o` `(` $o_proj `)`
    attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Feed-forward
//===----------------------------------------------------------------------===//

def KT_MoeOp : KT_ComputeOp<"moe", [AttrSizedOperandSegments]> {
  let summary = "Mixture-of-Experts block: router, routed experts, shared experts";
  let description = [{
    `x` [T, H]; E = num_experts, k = experts_per_token.
    Router: logits = x router^T [T, E]; scores = softmax or sigmoid (`scoring`).
    Top-k selection (`topk_method`):
      - `greedy`: top-k of scores (n_group = topk_group = 1).
      - `group_limited_greedy` (DeepSeek-V2): experts split into n_group
        groups; keep the topk_group groups with the highest max score; top-k
        among their experts.
      - `noaux_tc` (DeepSeek-V3, Kimi-K2, GLM-4.5): choice uses
        scores + correction_bias (groups ranked by the sum of their top-2
        biased scores when n_group > 1), but weights use the unbiased scores.
    Weights: divided by their sum if `norm_topk_prob`, then multiplied by
    `routed_scaling_factor`. Each chosen expert e computes
      down[e] (silu(gate[e] x) * up[e] x)  (gate/up [E, I, H], down [E, H, I]).
    Shared experts (shared_gate/up [S, H], shared_down [H, S]) run on every
    token; Qwen2-MoE's `shared_expert_gate` [1, H] scales their output by
    sigmoid(x shared_expert_gate^T). Result [T, H] f32 = routed + shared.
    `layer` identifies the block (expert heat statistics, placement).
    The block stays one op so the partitioner can split the experts across
    devices.
  }];
  let arguments = !con((ins
    KT_Activation:$x,
    KT_WeightTensor:$router,
    Optional<KT_WeightTensor>:$correction_bias,
    KT_WeightTensor:$gate,
    KT_WeightTensor:$up,
    KT_WeightTensor:$down,
    Optional<KT_WeightTensor>:$shared_gate,
    Optional<KT_WeightTensor>:$shared_up,
    Optional<KT_WeightTensor>:$shared_down,
    Optional<KT_WeightTensor>:$shared_expert_gate,
    I64Attr:$num_experts,
    I64Attr:$experts_per_token,
    StrAttr:$scoring,
    DefaultValuedAttr<StrAttr, "\"greedy\"">:$topk_method,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    DefaultValuedAttr<BoolAttr, "false">:$norm_topk_prob,
    DefaultValuedAttr<F64Attr, "1.0">:$routed_scaling_factor,
    I64Attr:$layer), KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = [{
    $x `,` $router
    (`correction_bias` `(` $correction_bias^ `)`)?
    `experts` `(` $gate `,` $up `,` $down `)`
    (`shared` `(` $shared_gate^ `,` $shared_up `,` $shared_down `)`)?
    (`shared_expert_gate` `(` $shared_expert_gate^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def KT_MlpOp : KT_ComputeOp<"mlp"> {
  let summary = "Dense gated MLP (SwiGLU)";
  let description = [{
    `x` [T, H], gate/up [I, H], down [H, I]:
    down(act(gate x) * up x), [T, H] f32. `activation` is "silu".
  }];
  let arguments = !con((ins KT_Activation:$x, KT_WeightTensor:$gate,
                            KT_WeightTensor:$up, KT_WeightTensor:$down,
                            DefaultValuedAttr<StrAttr, "\"silu\"">:$activation),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = [{
    $x `,` $gate `,` $up `,` $down attr-dict `:`
    functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Elementwise and output
//===----------------------------------------------------------------------===//

def KT_SwigluOp : KT_ComputeOp<"swiglu", [AllTypesMatch<["gate", "up", "result"]>]> {
  let summary = "Elementwise silu(gate) * up";
  let arguments = !con((ins KT_Activation:$gate, KT_Activation:$up),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = "$gate `,` $up attr-dict `:` type($result)";
  // The trait already checks what there is to check.
  let hasVerifier = 0;
}

def KT_AddOp : KT_ComputeOp<"add", [AllTypesMatch<["lhs", "rhs", "result"]>]> {
  let summary = "Elementwise sum (residual connections)";
  let arguments = !con((ins KT_Activation:$lhs, KT_Activation:$rhs),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
  let hasVerifier = 0;
}

def KT_LmHeadOp : KT_ComputeOp<"lm_head"> {
  let summary = "Output projection to vocabulary logits";
  let description = [{
    `x` [T, H], `weight` [V, H] -> logits [T, V] f32. (With tied embeddings the
    importer passes the embedding table's weight_ref.)
  }];
  let arguments = !con((ins KT_Activation:$x, KT_WeightTensor:$weight),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$result);
  let assemblyFormat =
      "$x `,` $weight attr-dict `:` functional-type(operands, results)";
}

def KT_TapOp : KT_Op<"tap", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Identity that names a value the runtime can dump";
  let description = [{
    `%y = kt.tap %x {name = "hidden.1"} : tensor<?x64xf32>` returns %x. It
    marks a value the runtime may dump by name, to compare activations against
    a reference implementation layer by layer.
  }];
  let arguments = (ins KT_Activation:$input, StrAttr:$name);
  let results = (outs KT_Activation:$result);
  let assemblyFormat = "$input attr-dict `:` type($result)";
}

// LoRA training: adapters, loss, backward ops, optimizer.
include "dialects/kt/IR/KTTrainOps.td"

#endif // KT_DIALECT_KTOPS_TD
