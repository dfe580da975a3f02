//===- KTDialect.h - The kt dialect -----------------------------*- C++ -*-===//
//
// Include this (or KTOps.h, which includes it) to use the kt dialect.
//
//===----------------------------------------------------------------------===//

#ifndef KT_DIALECTS_KT_IR_KTDIALECT_H
#define KT_DIALECTS_KT_IR_KTDIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/kt/IR/KTDialect.h.inc"

#endif // KT_DIALECTS_KT_IR_KTDIALECT_H
