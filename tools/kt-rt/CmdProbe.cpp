// kt-rt probe: measure this machine into a hardware profile that kt-compile --hw reads
// (runtime/probe; schema in docs/hardware-profile.md).
#include "runtime/probe/Probe.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <cstdio>
#include <fstream>
#include <unistd.h>

namespace kt::cli {

int cmdProbe(int argc, char** argv) {
  Args args(argc, argv, 2, {"-o", "--output", "--threads", "--name"},
            {"--quick", "--no-gpu", "-q"});
  if (!args.positional().empty()) {
    std::fprintf(stderr, "usage: kt-rt probe [-o hw.json] [--quick] [--threads N] [--name NAME] "
                         "[--no-gpu] [-q]\n");
    return 2;
  }
  probe::ProbeOptions o;
  o.quick = args.has("--quick");
  o.gpu = !args.has("--no-gpu");
  o.threadsPerNode = int(args.getInt("--threads", 0));
  if (o.threadsPerNode < 0)
    throw Error("--threads must be >= 0 (0: every core of each NUMA node)");
  std::string out = args.get("-o", args.get("--output", "-"));
  std::string name = args.get("--name");
  if (name.empty()) {
    char host[256] = {0};
    name = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "this-machine";
  }
  if (!args.has("-q"))
    o.progress = [](const std::string& line) { std::fprintf(stderr, "probe: %s\n", line.c_str()); };
  // Open the output first: a bad path must not cost a whole probe.
  std::ofstream file;
  if (out != "-") {
    file.open(out, std::ios::binary | std::ios::trunc);
    if (!file)
      throw Error(out + ": cannot write the hardware profile");
  }
  probe::ProbeResult r = probe::runProbe(o);
  std::string json = probe::profileJson(r, name);
  if (out == "-") {
    std::fwrite(json.data(), 1, json.size(), stdout);
  } else {
    file << json;
    if (!file.flush())
      throw Error(out + ": write failed");
    if (!args.has("-q"))
      std::fprintf(stderr, "probe: wrote %s in %.1f s (kt-compile MODEL --hw %s --explain)\n",
                   out.c_str(), r.seconds, out.c_str());
  }
  return 0;
}

} // namespace kt::cli
