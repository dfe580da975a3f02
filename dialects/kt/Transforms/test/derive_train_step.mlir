// kt-derive-train-step on the two-layer model of IR/test: forward clone with
// the loss instead of lm_head, backward in reverse order with one rule per op
// kind, kt.add where a value feeds two ops (the residual stream), dx pruned
// below the lowest adapter, kt.adamw last.

// Adapters on both layers' o_proj: everything above layer 0's attention needs
// a gradient; layer 0's attention needs none for its input (the embedding is
// frozen), so it has no result and no rms_norm_grad runs below it.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-modules=o_proj" \
// RUN:   --kt-derive-train-step | FileCheck %s
// CHECK: saved_activation_bytes_per_token = 2048 : i64
// CHECK-LABEL: func.func @forward
// The inference entry keeps running the base model.
// CHECK-NOT: kt.adapters
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME:      %[[IDS:[^:]*]]: tensor<?xi32>, %[[POS:[^:]*]]: tensor<?xi32>, %[[LABELS:[^:]*]]: tensor<?xi32>) -> tensor<2xf32>
// CHECK:         %[[H0:.*]] = kt.embedding %{{.*}}, %[[IDS]]
// CHECK:         %[[X0:.*]] = kt.rms_norm %[[H0]]
// CHECK:         %[[A0:.*]] = kt.attention %[[X0]], %[[POS]], {{.*}}kt.adapters = {o_proj = @lora.model.layers.0.self_attn.o_proj}
// CHECK:         %[[H1:.*]] = kt.add %[[H0]], %[[A0]]
// CHECK:         %[[X1:.*]] = kt.rms_norm %[[H1]]
// CHECK:         %[[M0:.*]] = kt.mlp %[[X1]]
// CHECK:         %[[H2:.*]] = kt.add %[[H1]], %[[M0]]
// Taps are dropped: the next op reads the residual directly.
// CHECK-NOT:     kt.tap
// CHECK:         %[[X2:.*]] = kt.rms_norm %[[H2]]
// CHECK:         %[[A1:.*]] = kt.mla_attention %[[X2]], %[[POS]]
// CHECK:         %[[H3:.*]] = kt.add %[[H2]], %[[A1]]
// CHECK:         %[[X3:.*]] = kt.rms_norm %[[H3]]
// CHECK:         %[[MOE:.*]] = kt.moe %[[X3]]
// CHECK:         %[[H4:.*]] = kt.add %[[H3]], %[[MOE]]
// CHECK:         %[[X4:.*]] = kt.rms_norm %[[H4]]
// CHECK-NOT:     kt.lm_head
// CHECK:         %[[DX4:.*]], %[[LOSS:.*]] = kt.cross_entropy_loss %[[X4]], %[[LABELS]], %{{.*}} : (tensor<?x64xf32>, tensor<?xi32>, tensor<320x64xbf16>) -> (tensor<?x64xf32>, tensor<2xf32>)
// Backward, last layer first. Final norm:
// CHECK:         %[[DH4:.*]] = kt.rms_norm_grad %[[H4]], %[[DX4]], %{{.*}} {eps = 1.000000e-05 : f64}
// h4 = h3 + moe(norm(h3)): moe_grad reads the saved x3; the residual's two contributions are summed.
// CHECK:         %[[DX3:.*]] = kt.moe_grad %[[X3]], %[[DH4]], {{.*}}layer = 1
// CHECK:         %[[DN3:.*]] = kt.rms_norm_grad %[[H3]], %[[DX3]]
// CHECK:         %[[DH3:.*]] = kt.add %[[DH4]], %[[DN3]]
// CHECK:         %[[DX2:.*]] = kt.mla_attention_grad %[[X2]], %[[POS]], %[[DH3]] {{.*}}kt.adapters = {o_proj = @lora.model.layers.1.self_attn.o_proj}
// CHECK:         %[[DN2:.*]] = kt.rms_norm_grad %[[H2]], %[[DX2]]
// CHECK:         %[[DH2:.*]] = kt.add %[[DH3]], %[[DN2]]
// CHECK:         %[[DX1:.*]] = kt.mlp_grad %[[X1]], %[[DH2]]
// CHECK:         %[[DN1:.*]] = kt.rms_norm_grad %[[H1]], %[[DX1]]
// CHECK:         %[[DH1:.*]] = kt.add %[[DH2]], %[[DN1]]
// Layer 0's attention: adapter gradients only, no dx (nothing below is trained).
// CHECK-NEXT:    kt.attention_grad %[[X0]], %[[POS]], %[[DH1]], {{.*}}kt.adapters = {o_proj = @lora.model.layers.0.self_attn.o_proj}{{.*}} -> (){{$}}
// CHECK-NEXT:    kt.adamw
// CHECK-NEXT:    return %[[LOSS]] : tensor<2xf32>

// Adapters only on layer 1's routed experts: nothing below the MoE is trained,
// so only the final norm and the MoE get backward ops, and the MoE returns no
// dx (its input lies below every adapter).
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-attach-lora="target-parameters=down_proj" \
// RUN:   --kt-derive-train-step | FileCheck %s --check-prefix=TOP
// TOP-LABEL: func.func @train_step
// TOP:       kt.cross_entropy_loss
// TOP-NEXT:  %[[D:.*]] = kt.rms_norm_grad
// TOP-NEXT:  kt.moe_grad %{{.*}}, %[[D]], {{.*}} -> (){{$}}
// TOP-NEXT:  kt.adamw
// TOP-NOT:   _grad

// Without adapters there is nothing to train.
// RUN: not kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-derive-train-step 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: error: kt-derive-train-step: no op of @forward has LoRA adapters (run kt-attach-lora first): nothing to train

// Backward ops run where their forward op was placed (experts' backward next
// to the experts); the loss goes where lm_head was.
// RUN: kt-opt %S/../../IR/test/two_layer_moe.mlir --kt-assign-placement=device=cpu:numa1 \
// RUN:   --kt-attach-lora="target-parameters=down_proj" --kt-derive-train-step | FileCheck %s --check-prefix=PLACED
// PLACED-LABEL: func.func @train_step
// PLACED:       kt.cross_entropy_loss {{.*}}{placement = #kt.device<"cpu:numa1">}
// PLACED:       kt.rms_norm_grad {{.*}}placement = #kt.device<"cpu:numa1">
// PLACED:       kt.moe_grad {{.*}}placement = #kt.device<"cpu:numa1">
