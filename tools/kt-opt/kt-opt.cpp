//===- kt-opt.cpp - The kt optimizer driver -------------------------------===//
//
// mlir-opt for KT: parses a module of kt/func/arith ops, runs kt passes one at
// a time (`kt-opt in.mlir --kt-assign-placement=device=gpu:0`), and prints the
// result. The lit tests are written against it.
//
//===----------------------------------------------------------------------===//

#include "dialects/kt/IR/KTDialect.h"
#include "dialects/kt/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char** argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::kt::KTDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect>();
  mlir::kt::registerKTPasses();
  // Generic passes (canonicalize, cse, symbol-dce, ...) are useful on kt IR:
  // every kt compute op is Pure.
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "KT modular optimizer driver\n", registry));
}
