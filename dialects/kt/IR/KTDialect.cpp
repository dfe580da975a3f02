//===- KTDialect.cpp - The kt dialect -------------------------------------===//

#include "dialects/kt/IR/KTDialect.h"
#include "dialects/kt/IR/KTOps.h"

using namespace mlir;
using namespace mlir::kt;

#include "dialects/kt/IR/KTDialect.cpp.inc"

void KTDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/kt/IR/KTOps.cpp.inc"
      >();
  registerAttributes();
}

// Discardable `kt.*` attributes. `kt.model` carries the model's config
// (arch, vocab_size, ...) as a free-form dictionary for tools and the plan
// emitter; only its kind and location are checked. Other `kt.*` names are left
// to the passes that introduce them.
LogicalResult KTDialect::verifyOperationAttribute(Operation* op, NamedAttribute attr) {
  if (attr.getName() != "kt.model")
    return success();
  if (!llvm::isa<ModuleOp>(op))
    return op->emitError() << "'kt.model' belongs on the module, not on '" << op->getName() << "'";
  if (!llvm::isa<DictionaryAttr>(attr.getValue()))
    return op->emitError() << "'kt.model' must be a dictionary, got " << attr.getValue();
  return success();
}
