// kt-rt pack: rebuilds a plan's packed sidecar (PLAN.weights) from the checkpoint it was compiled
// against (runtime/pack/SidecarRebuild.h). For machines that run plans compiled elsewhere: carry
// the small .ktplan, recreate the checkpoint, pack here.
#include "runtime/pack/SidecarRebuild.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <cstdio>

namespace kt::cli {

int cmdPack(int argc, char** argv) {
  Args args(argc, argv, 2, {"--threads"}, {"--force", "-q", "--quiet", "--help", "-h"});
  const bool help = args.has("--help") || args.has("-h");
  if (help || args.positional().size() != 1) {
    std::fprintf(
        help ? stdout : stderr,
        "usage: kt-rt pack PLAN [--threads N] [--force] [-q]\n"
        "Rebuilds PLAN's packed sidecar (PLAN.weights) from the checkpoint files the plan\n"
        "was compiled against, byte-identical to kt-compile's. --threads: matrices packed\n"
        "in parallel (default: all cores); --force: replace an existing sidecar.\n");
    return help ? 0 : 2;
  }
  pack::RebuildOptions opt;
  opt.threads = int(args.getInt("--threads", 0));
  if (opt.threads < 0)
    throw Error("--threads must be >= 0, got " + args.get("--threads"));
  opt.force = args.has("--force");
  opt.progress = !args.has("-q") && !args.has("--quiet");
  LoadedPlan plan = LoadedPlan::fromFile(args.positional()[0]);
  pack::RebuildReport r = pack::rebuildSidecars(plan, opt);
  const double mib = double(r.sourceBytes) / (1 << 20);
  for (const std::string& s : r.sidecars)
    std::fprintf(stderr,
                 "[kt-rt pack] wrote %s: %llu matrices, %.1f MiB read -> %.1f MiB packed in %.2f s "
                 "(%.0f MiB/s, %d threads)\n",
                 s.c_str(), (unsigned long long)r.matrices, mib, double(r.packedBytes) / (1 << 20),
                 r.seconds, r.seconds > 0 ? mib / r.seconds : 0.0, r.threads);
  return 0;
}

} // namespace kt::cli
