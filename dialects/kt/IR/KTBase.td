//===- KTBase.td - The kt dialect ---------------------------*- tablegen -*-===//
//
// The `kt` dialect holds a Mixture-of-Experts language model at the level of
// meaning: embedding, norms, attention (GQA and MLA), MoE routing + experts,
// lm_head. Values are builtin ranked tensors whose leading (token) dimension is
// dynamic. Weights are module-level `kt.weight` symbols that name a byte range
// of an external file; they are never inlined, so a 600 GB model is a small IR.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECT_KTBASE_TD
#define KT_DIALECT_KTBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def KT_Dialect : Dialect {
  let name = "kt";
  let cppNamespace = "::mlir::kt";
  let summary = "Model-level ops of Mixture-of-Experts language models";
  let description = [{
    Ops of the `kt` dialect describe *what* a transformer layer computes, with
    enough structure left (e.g. `kt.moe` keeps router, experts and shared
    experts together) for the partitioner to place pieces on GPU, CPU NUMA nodes
    or disk, and for the LoRA pass to derive a backward graph.
  }];
  let useDefaultAttributePrinterParser = 1;
  // Checks the `kt.model` module attribute (see KTDialect.cpp).
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    // Defined in KTAttrs.cpp, next to the generated attribute classes.
    void registerAttributes();
  }];
}

//===----------------------------------------------------------------------===//
// Type constraints shared by the ops.
//===----------------------------------------------------------------------===//

// Activations are always f32 (weights may be stored narrower).
def KT_Activation : RankedTensorOf<[F32]>;
// Weight values as loaded from the checkpoint (the storage dtype).
def KT_WeightTensor : RankedTensorOf<[F32, BF16, F16]>;
// Token ids and positions.
def KT_IndexVector : 1DTensorOf<[I32]>;

#endif // KT_DIALECT_KTBASE_TD
