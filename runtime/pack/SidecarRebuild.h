#pragma once
// `kt-rt pack`: rebuilds a plan's packed sidecar (PLAN.weights) from the checkpoint it was compiled
// against, using the source segments the plan records for every packed weight. Each blob is
// packed by the same rule as kt-compile (PackMatrix.h, SourceSlices.h) and written at exactly the
// offset and size the plan records, so the result is byte-identical to kt-compile's sidecar. This
// lets a machine without the compiler (or one that cannot receive GBs) rebuild it locally.
#include "runtime/plan/PlanReader.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kt::pack {

struct RebuildOptions {
  int threads = 0;      // workers packing matrices in parallel; 0 = all cores
  bool force = false;   // replace a sidecar that already exists
  bool progress = true; // progress lines (MiB/s) on stderr
};

struct RebuildReport {
  std::vector<std::string> sidecars; // the files written
  uint64_t matrices = 0, sourceBytes = 0, packedBytes = 0;
  int threads = 0;
  double seconds = 0;
};

// Throws kt::Error naming the plan, weight or file at fault: a plan without packed weights or
// without their source segments, a checkpoint file missing or of another size than recorded, an
// existing sidecar without `force`, a blob whose packed size differs from the plan's. Writes each
// sidecar to PATH.tmp and renames it into place only when every blob was written.
RebuildReport rebuildSidecars(const LoadedPlan& plan, const RebuildOptions& options);

} // namespace kt::pack
