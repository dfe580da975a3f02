//===- KTAttrs.td - kt dialect attributes -------------------*- tablegen -*-===//

#ifndef KT_DIALECT_KTATTRS_TD
#define KT_DIALECT_KTATTRS_TD

include "dialects/kt/IR/KTBase.td"
include "mlir/IR/AttrTypeBase.td"

class KT_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<KT_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Parameter kinds the builtin FieldParser does not cover.
//===----------------------------------------------------------------------===//

// A plain `double` (the accessors return double, so importers and the plan
// emitter never handle APFloat). Attributes with such parameters need a
// hand-written storage class (genStorageClass = 0): `double` has no
// llvm::hash_value, which the generated one would call.
class KT_F64Parameter<string desc, string value = "">
    : AttrOrTypeParameter<"double", desc> {
  let parser = "::mlir::kt::detail::parseF64Parameter($_parser)";
  let printer = "$_printer << $_self";
  let defaultValue = value;
}

// `true` / `false` keywords (the integral FieldParser would expect 0/1).
class KT_BoolParameter<string desc, string value>
    : AttrOrTypeParameter<"bool", desc> {
  let parser = "::mlir::kt::detail::parseBoolParameter($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
  let defaultValue = value;
}

//===----------------------------------------------------------------------===//
// #kt.device
//===----------------------------------------------------------------------===//

def KT_DeviceAttr : KT_Attr<"Device", "device"> {
  let summary = "A device a weight or an op is placed on";
  let description = [{
    One of `gpu:N`, `cpu:numaN` (the CPU cores and memory of NUMA node N),
    `npu:N` or `disk` (weights only: streamed from the file on use). Kept as
    the user-facing string so that plans, `--explain` and error messages show
    exactly what the user wrote; `getKind()`/`getIndex()` decode it.

    Example: `#kt.device<"gpu:0">`, `#kt.device<"cpu:numa1">`.
  }];
  let parameters = (ins StringRefParameter<"device spec">:$spec);
  let assemblyFormat = "`<` $spec `>`";
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins "::mlir::kt::DeviceKind":$kind, "int64_t":$index), [{
      return $_get($_ctxt, ::mlir::kt::formatDeviceSpec(kind, index));
    }]>
  ];
  let extraClassDeclaration = [{
    /// The device class; the spec was verified, so this never fails.
    ::mlir::kt::DeviceKind getKind() const;
    /// N of gpu:N / npu:N / cpu:numaN; 0 for disk.
    int64_t getIndex() const;
  }];
}

//===----------------------------------------------------------------------===//
// #kt.quant
//===----------------------------------------------------------------------===//

def KT_QuantAttr : KT_Attr<"Quant", "quant"> {
  let summary = "How a weight is stored at run time";
  let description = [{
    `scheme` is one of `f32`, `bf16`, `f16` (plain casts), `int8` (per output
    channel) or `int4` (group-wise along the input dimension; `group` is 32, 64
    or 128). `symmetric = false` adds a per-group zero point. The tensor type of
    the `kt.weight` stays the checkpoint dtype: quantization happens when the
    plan is emitted, so the IR always says where the bytes come from.

    Example: `#kt.quant<scheme = "int4", group = 128>`.
  }];
  let parameters = (ins
    StringRefParameter<"quantization scheme">:$scheme,
    DefaultValuedParameter<"int64_t", "0", "int4 group size (0 = none)">:$group,
    KT_BoolParameter<"symmetric (no zero point)", "true">:$symmetric
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True for int8/int4 (needs scales; not a plain cast).
    bool isInteger() const;
    /// Bits per stored element, excluding scales/zero points.
    int64_t getBitsPerElement() const;
  }];
}

//===----------------------------------------------------------------------===//
// #kt.storage
//===----------------------------------------------------------------------===//

def KT_StorageAttr : KT_Attr<"Storage", "storage"> {
  let summary = "A byte range of an external weight file";
  let description = [{
    `offset` is absolute in the file (for safetensors: 8 + header length + the
    tensor's data_offsets[0]), so the runtime can mmap without re-reading the
    header. The file name is relative to the model directory.

    Example: `#kt.storage<file = "model.safetensors", offset = 1234, size = 32768>`.
  }];
  let parameters = (ins
    StringRefParameter<"file path">:$file,
    "uint64_t":$offset,
    "uint64_t":$size
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// #kt.rope
//===----------------------------------------------------------------------===//

def KT_RopeAttr : KT_Attr<"Rope", "rope"> {
  let summary = "Rotary position embedding parameters";
  let description = [{
    Mirrors Hugging Face `rope_theta` + `rope_scaling`:
    - `type = "default"`: inv_freq[i] = theta^(-2i/dim).
    - `"linear"`: positions divided by `factor`.
    - `"yarn"` (DeepSeek): `factor`, `original_max_position`, `beta_fast`,
      `beta_slow`, `mscale`, `mscale_all_dim`.
    - `"llama3"`: `factor`, `low_freq_factor`, `high_freq_factor`,
      `original_max_position`.
    `attention_factor` multiplies cos and sin; it is final (the importer
    computes it, e.g. yarn_get_mscale(factor, mscale) /
    yarn_get_mscale(factor, mscale_all_dim) for DeepSeek), the mscale fields
    are kept for reference.
    `interleaved = true` rotates pairs (x[2i], x[2i+1]) (DeepSeek's layout);
    `false` rotates halves (x[i], x[i + dim/2]) (Llama's rotate_half).
    Parameters equal to their defaults are omitted when printed.

    Example: `#kt.rope<dim = 64, theta = 1.000000e+04, type = "yarn", factor = 4.000000e+01>`.
  }];
  let parameters = (ins
    "int64_t":$dim,
    KT_F64Parameter<"base frequency">:$theta,
    StringRefParameter<"scaling type", "\"default\"">:$type,
    KT_F64Parameter<"scaling factor", "1.0">:$factor,
    DefaultValuedParameter<"int64_t", "0", "pre-scaling context length">:$original_max_position,
    KT_F64Parameter<"yarn beta_fast", "0.0">:$beta_fast,
    KT_F64Parameter<"yarn beta_slow", "0.0">:$beta_slow,
    KT_F64Parameter<"yarn mscale", "0.0">:$mscale,
    KT_F64Parameter<"yarn mscale_all_dim", "0.0">:$mscale_all_dim,
    KT_F64Parameter<"cos/sin scale", "1.0">:$attention_factor,
    KT_F64Parameter<"llama3 low_freq_factor", "0.0">:$low_freq_factor,
    KT_F64Parameter<"llama3 high_freq_factor", "0.0">:$high_freq_factor,
    KT_BoolParameter<"rotate adjacent pairs instead of halves", "false">:$interleaved
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  // Hand-written in KTAttrs.cpp (hashes the doubles by their bits).
  let genStorageClass = 0;
  let builders = [
    AttrBuilder<(ins "const ::mlir::kt::RopeParams &":$p), [{
      return $_get($_ctxt, p.dim, p.theta, p.type, p.factor,
                   p.originalMaxPosition, p.betaFast, p.betaSlow, p.mscale,
                   p.mscaleAllDim, p.attentionFactor, p.lowFreqFactor,
                   p.highFreqFactor, p.interleaved);
    }]>
  ];
  let extraClassDeclaration = [{
    /// All parameters as plain C++ values (the inverse of get(ctx, params)).
    ::mlir::kt::RopeParams getParams() const;
  }];
}

#endif // KT_DIALECT_KTATTRS_TD
