//===- KTTrainOps.td - kt ops of the LoRA training graph ----*- tablegen -*-===//
//
// What kt-attach-lora and kt-derive-train-step add to a module (docs/training.md):
// `kt.lora_adapter` declarations, the loss, one backward op per differentiable
// forward op kind, and the optimizer update. A backward op repeats its forward
// op's operands (saved input x, positions, weights) and attributes, adds the
// upstream gradient `dy`, and returns dx only where a gradient has to flow
// further down (no result: pruned). Backward ops are NOT Pure: they accumulate
// (+=) the gradients of the adapters their weights carry, so they must survive
// DCE even without a result.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECT_KTTRAINOPS_TD
#define KT_DIALECT_KTTRAINOPS_TD

def KT_LoraAdapterOp : KT_Op<"lora_adapter", [
    Symbol, HasParent<"::mlir::ModuleOp">,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A LoRA adapter (A [r, in], B [out, r]) on rows of frozen weights";
  let description = [{
    One PEFT module's adapter. `peft_name` is the module path PEFT gives it
    ("base_model.model.model.layers.0.self_attn.q_proj"); its tensors are
    `peft_name`.lora_A.weight / .lora_B.weight. `layout` is "linear" (one
    [out, in] matrix) or "experts_fused" (PEFT's ParamWrapper on
    `num_experts` stacked experts: A [E·r, in], B [out, E·r]). The adapter's
    output rows [row_offsets[i], row_offsets[i] + rows[i]) update the rows of
    weight `targets[i]` (of every expert slice when stacked): the fused
    gate_up adapter targets gate (rows 0..I-1) and up (I..2I-1).
    Compute ops name the adapters of their weight operands with the
    discardable attribute `kt.adapters = {q_proj = @sym, ...}`.

    ```mlir
    kt.lora_adapter @lora.layers.0.self_attn.q_proj {
      peft_name = "base_model.model.model.layers.0.self_attn.q_proj",
      layout = "linear", r = 8, alpha = 16.0, in_features = 64,
      out_features = 64, targets = [@layers.0.attn.q_proj],
      row_offsets = array<i64: 0>, rows = array<i64: 64>}
    ```
  }];
  let arguments = (ins
    SymbolNameAttr:$sym_name,
    StrAttr:$peft_name,
    StrAttr:$layout,
    I64Attr:$r,
    F64Attr:$alpha,
    I64Attr:$in_features,
    I64Attr:$out_features,
    DefaultValuedAttr<I64Attr, "0">:$num_experts,
    SymbolRefArrayAttr:$targets,
    DenseI64ArrayAttr:$row_offsets,
    DenseI64ArrayAttr:$rows
  );
  let assemblyFormat = "$sym_name attr-dict";
  let hasVerifier = 1;
}

// A backward or loss op: placed like a compute op, never Pure (see above).
class KT_TrainOp<string mnemonic, list<Trait> traits = []>
    : KT_Op<mnemonic, !listconcat([KT_PlacementOpInterface], traits)> {
  // Gradient shapes: dx like x, dy like the forward result (KTTrainOps.cpp).
  let hasVerifier = 1;
}

def KT_CrossEntropyLossOp : KT_TrainOp<"cross_entropy_loss"> {
  let summary = "lm_head + shifted cross-entropy, with its gradient";
  let description = [{
    `x` [T, H] (final normed hidden state), `labels` [T] (i32, -100 ignored;
    position t predicts labels[t+1] of its sequence), `weight` [V, H]
    (lm_head or the tied embedding) -> `dx` [T, H] (gradient of CE sum / N,
    N given by the runtime) and `loss` [2] (CE sum, predicted positions).
  }];
  let arguments = !con((ins KT_Activation:$x, KT_IndexVector:$labels,
                            KT_WeightTensor:$weight), KT_PlacementArg);
  let results = (outs KT_Activation:$dx, KT_Activation:$loss);
  let assemblyFormat =
      "$x `,` $labels `,` $weight attr-dict `:` functional-type(operands, results)";
}

def KT_RmsNormGradOp : KT_TrainOp<"rms_norm_grad"> {
  let summary = "Backward of kt.rms_norm (frozen weight): dx";
  let arguments = !con((ins KT_Activation:$x, KT_Activation:$dy,
                            KT_WeightTensor:$weight,
                            DefaultValuedAttr<F64Attr, "1e-6">:$eps),
                       KT_PlacementArg);
  let results = (outs KT_Activation:$dx);
  let assemblyFormat =
      "$x `,` $dy `,` $weight attr-dict `:` functional-type(operands, results)";
}

def KT_LinearGradOp : KT_TrainOp<"linear_grad"> {
  let summary = "Backward of kt.linear: adapter gradients, dx when needed";
  let arguments = !con((ins KT_Activation:$x, KT_Activation:$dy,
                            KT_WeightTensor:$weight,
                            Optional<KT_WeightTensor>:$bias),
                       KT_PlacementArg);
  let results = (outs Optional<KT_Activation>:$dx);
  let assemblyFormat = "$x `,` $dy `,` $weight (`,` $bias^)? attr-dict `:` "
                       "functional-type(operands, results)";
}

def KT_AttentionGradOp : KT_TrainOp<"attention_grad", [AttrSizedOperandSegments]> {
  let summary = "Backward of kt.attention (recomputes q, k, v and the softmax from x)";
  let arguments = !con((ins
    KT_Activation:$x,
    KT_IndexVector:$positions,
    KT_Activation:$dy,
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
  let results = (outs Optional<KT_Activation>:$dx);
  let assemblyFormat = [{
    $x `,` $positions `,` $dy `,` $q_proj `,` $k_proj `,` $v_proj `,` $o_proj
    (`bias` `(` $q_bias^ `,` $k_bias `,` $v_bias `)`)?
    (`qk_norm` `(` $q_norm^ `,` $k_norm `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def KT_MlaAttentionGradOp
    : KT_TrainOp<"mla_attention_grad", [AttrSizedOperandSegments]> {
  let summary = "Backward of kt.mla_attention (recomputes its internals from x)";
  let arguments = !con((ins
    KT_Activation:$x,
    KT_IndexVector:$positions,
    KT_Activation:$dy,
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
  let results = (outs Optional<KT_Activation>:$dx);
  let assemblyFormat = [{
    $x `,` $positions `,` $dy
    (`q` `(` $q_proj^ `)`)?
    (`q_lora` `(` $q_a_proj^ `,` $q_a_norm `,` $q_b_proj `)`)?
    `kv_lora` `(` $kv_a_proj `,` $kv_a_norm `,` $kv_b_proj `)`
    `o` `(` $o_proj `)`
    attr-dict `:` functional-type(operands, results)
  }];
}

def KT_MoeGradOp : KT_TrainOp<"moe_grad", [AttrSizedOperandSegments]> {
  let summary = "Backward of kt.moe (routing recomputed from x; router frozen)";
  let arguments = !con((ins
    KT_Activation:$x,
    KT_Activation:$dy,
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
  let results = (outs Optional<KT_Activation>:$dx);
  let assemblyFormat = [{
    $x `,` $dy `,` $router
    (`correction_bias` `(` $correction_bias^ `)`)?
    `experts` `(` $gate `,` $up `,` $down `)`
    (`shared` `(` $shared_gate^ `,` $shared_up `,` $shared_down `)`)?
    (`shared_expert_gate` `(` $shared_expert_gate^ `)`)?
    attr-dict `:` functional-type(operands, results)
  }];
}

def KT_MlpGradOp : KT_TrainOp<"mlp_grad"> {
  let summary = "Backward of kt.mlp";
  let arguments = !con((ins KT_Activation:$x, KT_Activation:$dy,
                            KT_WeightTensor:$gate, KT_WeightTensor:$up,
                            KT_WeightTensor:$down,
                            DefaultValuedAttr<StrAttr, "\"silu\"">:$activation),
                       KT_PlacementArg);
  let results = (outs Optional<KT_Activation>:$dx);
  let assemblyFormat = [{
    $x `,` $dy `,` $gate `,` $up `,` $down attr-dict `:`
    functional-type(operands, results)
  }];
}

def KT_AdamWOp : KT_Op<"adamw"> {
  let summary = "One AdamW update of every kt.lora_adapter";
  let description = [{
    Ends a train_step: applies the accumulated adapter gradients (global L2
    clipping to `max_grad_norm`, 0 = off) and zeroes them. The values are
    defaults; `kt-rt train` flags override them at run time.
  }];
  let arguments = (ins
    DefaultValuedAttr<F64Attr, "1e-4">:$lr,
    DefaultValuedAttr<F64Attr, "0.9">:$beta1,
    DefaultValuedAttr<F64Attr, "0.999">:$beta2,
    DefaultValuedAttr<F64Attr, "1e-8">:$eps,
    DefaultValuedAttr<F64Attr, "0.0">:$weight_decay,
    DefaultValuedAttr<F64Attr, "1.0">:$max_grad_norm);
  let assemblyFormat = "attr-dict";
}

#endif // KT_DIALECT_KTTRAINOPS_TD
