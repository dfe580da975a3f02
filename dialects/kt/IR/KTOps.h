//===- KTOps.h - kt dialect ops ---------------------------------*- C++ -*-===//

#ifndef KT_DIALECTS_KT_IR_KTOPS_H
#define KT_DIALECTS_KT_IR_KTOPS_H

#include "dialects/kt/IR/KTAttrs.h"
#include "dialects/kt/IR/KTDialect.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kt/IR/KTInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/kt/IR/KTOps.h.inc"

#endif // KT_DIALECTS_KT_IR_KTOPS_H
