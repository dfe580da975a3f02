// kt-synth: a Hugging Face config.json -> a checkpoint of that exact shape with random weights,
// so compiler and runtime can be exercised (and timed) on real model sizes without downloads.
#include "runtime/support/Error.h"
#include "tools/kt-synth/Synthesize.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

const char* kUsage = R"(usage: kt-synth CONFIG.json OUT_DIR [options]
       kt-synth CONFIG.json --dry-run [options]

Writes a Hugging Face checkpoint with the tensors and shapes CONFIG.json implies,
filled with deterministic random weights: OUT_DIR/config.json (a copy, edited by
--layers/--set) and model.safetensors, or model-0000i-of-0000N.safetensors shards
with model.safetensors.index.json when larger than --shard-size. Streams tensor by
tensor: memory stays a few MB whatever the model's size.

options:
  --dtype bf16|f16|f32   weight type (default bf16)
  --seed N               random seed (default 0); same seed, same bytes
  --layers N             override num_hidden_layers (to shrink a model)
  --set KEY=VALUE        override any config field (VALUE is JSON, else a string),
                         e.g. --set vocab_size=4096 --set n_routed_experts=8
  --shard-size SIZE      largest shard (default 4GiB; e.g. 500MB, 2GiB)
  --dry-run              write nothing: print tensor count, parameters and bytes
  --layout-only          headers only, data left as holes (sparse files reading as
                         zeros): compile plans for a model larger than this disk
  --list                 print every tensor (name, shape) on stdout
  -q, --quiet            no progress lines
  -h, --help             this text

weights: embeddings N(0,1); projections N(0, 1/fan_in); norms 1 + 0.1 N(0,1);
routers N(0, 1/hidden); biases 0.02 N(0,1); e_score_correction_bias 0.01 N(0,1).
)";

[[noreturn]] void usageError(const std::string& msg) {
  std::fprintf(stderr, "kt-synth: error: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

uint64_t parseUnsigned(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || v[0] == '-' || *end || errno)
    usageError(flag + " needs a non-negative integer, got '" + v + "'");
  return x;
}

kt::synth::SynthOptions parseArgs(int argc, char** argv) {
  kt::synth::SynthOptions opt;
  std::vector<std::string> positional;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc)
      usageError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (a == "--dtype") {
      const std::string v = need(i);
      if (v == "bf16")
        opt.dtype = kt::DType::BF16;
      else if (v == "f16")
        opt.dtype = kt::DType::F16;
      else if (v == "f32")
        opt.dtype = kt::DType::F32;
      else
        usageError("--dtype must be bf16, f16 or f32, got '" + v + "'");
    } else if (a == "--seed") {
      opt.seed = parseUnsigned(a, need(i));
    } else if (a == "--layers") {
      const uint64_t n = parseUnsigned(a, need(i));
      if (n == 0 || n > 100000)
        usageError("--layers must be in 1..100000");
      opt.layers = int(n);
    } else if (a == "--set") {
      const std::string v = need(i);
      const size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0)
        usageError("--set needs KEY=VALUE, got '" + v + "'");
      opt.overrides.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (a == "--shard-size") {
      const std::string v = need(i);
      if (!kt::synth::parseByteSize(v, &opt.shardBytes))
        usageError("--shard-size must be a size such as 4GiB, 500MB or 1000000, got '" + v + "'");
    } else if (a == "--dry-run") {
      opt.dryRun = true;
    } else if (a == "--layout-only") {
      opt.layoutOnly = true;
    } else if (a == "--list") {
      opt.listTensors = true;
    } else if (a == "-q" || a == "--quiet") {
      opt.progress = false;
    } else if (a.size() > 1 && a[0] == '-') {
      usageError("unknown flag '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty())
    usageError("need CONFIG.json and OUT_DIR");
  if (positional.size() > 2)
    usageError("unexpected argument '" + positional[2] + "'");
  opt.configPath = positional[0];
  if (positional.size() == 2)
    opt.outDir = positional[1];
  else if (!opt.dryRun)
    usageError("need OUT_DIR (or --dry-run)");
  return opt;
}

void printPlan(const kt::synth::SynthPlan& p, const kt::synth::SynthOptions& opt) {
  int moe = 0;
  for (bool m : p.config.layerIsMoe)
    moe += m;
  std::printf("model_type: %s\nlayers: %d (%d MoE)\ndtype: %s\ntensors: %zu\nparameters: "
              "%llu\nbytes: %llu\n"
              "file_bytes: %llu\nfiles: %zu\n",
              p.config.arch.c_str(), p.config.numLayers, moe, kt::dtypeName(opt.dtype),
              p.tensors.size(), static_cast<unsigned long long>(p.parameters),
              static_cast<unsigned long long>(p.dataBytes),
              static_cast<unsigned long long>(p.fileBytes), p.shards.size());
}

} // namespace

int main(int argc, char** argv) {
  kt::synth::SynthOptions opt = parseArgs(argc, argv);
  try {
    kt::synth::SynthPlan plan = kt::synth::planSynthesis(opt);
    for (const auto& n : plan.notes)
      std::fprintf(stderr, "kt-synth: config: %s\n", n.c_str());
    if (opt.listTensors)
      for (const auto& t : plan.tensors) {
        std::printf("%s [", t.name.c_str());
        for (size_t i = 0; i < t.shape.size(); ++i)
          std::printf("%s%lld", i ? ", " : "", static_cast<long long>(t.shape[i]));
        std::printf("] %s\n", kt::hf::tensorKindName(t.kind));
      }
    if (opt.dryRun) {
      printPlan(plan, opt);
      return 0;
    }
    std::fprintf(stderr, "kt-synth: %s, %d layers, %zu tensors, %s (%s) in %zu file(s) -> %s\n",
                 plan.config.arch.c_str(), plan.config.numLayers, plan.tensors.size(),
                 kt::synth::humanBytes(plan.dataBytes).c_str(), kt::dtypeName(opt.dtype),
                 plan.shards.size(), opt.outDir.c_str());
    kt::synth::writeCheckpoint(plan, opt);
  } catch (const kt::Error& e) {
    std::fprintf(stderr, "kt-synth: error: %s\n", e.what());
    return 1;
  } catch (
      const std::exception& e) { // filesystem/allocation failures: still a message, not a crash
    std::fprintf(stderr, "kt-synth: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
