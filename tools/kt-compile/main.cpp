// kt-compile: Hugging Face model folder -> deployment plan (.ktplan).
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfConfig.h"
#include "runtime/support/Error.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* kUsage = R"(usage: kt-compile MODEL_DIR -o PLAN [options]

Compiles a Hugging Face checkpoint (config.json + model.safetensors or a sharded
model.safetensors.index.json) into a KT plan that `kt-rt` runs. Weights stay in
their files; the plan records where they are.

options:
  -o, --output PLAN        plan file to write (required)
  --target cpu             devices to compile for (cpu; gpu and hybrid: in progress)
  --dtype f32|bf16         compute precision (bf16: bf16 weights x bf16 activations, f32 sums)
  --cpu-quant FORMAT       pack CPU weight matrices: f32, bf16, int8, int4 (= int4:g32),
                           int4:g128, int4:g32:asym, int4:g128:asym; packed weights go to
                           PLAN.weights next to the plan (the checkpoint is only read)
  --device SPEC            placement for the cpu target (default cpu:numa0)
  --pass-pipeline P        extra MLIR passes to run after placement (textual pipeline)
  --emit-mlir FILE         also write the placed kt module ("-" for stdout)
  -v, --verbose            print each phase's time

placement by the cost model (docs/cost-model.md; without --hw everything goes on --device):
  --hw PROFILE             hardware profile JSON (docs/hardware-profile.md, examples/hw/)
  --gpu-mem SIZE           memory budget of each GPU: 12GiB, 0, unlimited (default: the profile's)
  --cpu-mem SIZE           CPU memory budget, all NUMA nodes together (default: the profile's)
  --experts-on-gpu N|auto  routed experts per MoE layer on the GPU (default auto: by benefit/byte)
  --expert-stats FILE      measured per-layer expert activation counts (default: uniform routing)
  --prefill-offload auto|never|always
                           stream CPU-held experts to the GPU for long prompts (default auto)
  --placement-override 'REGEX=DEVICE'
                           pin weights whose symbol or HF name matches REGEX (repeatable)
  --prompt-len P           prompt length of the predicted prefill and decode context (512)
  --decode-batch B         sequences decoded together (1)
  --kv-tokens N            KV-cache positions to reserve per sequence (model max, at most 4096)
  --explain                print the placement and predicted speed per layer and device
  --explain-json FILE      the same as JSON ("-" for stdout)
  -h, --help               this text

supported architectures: )";

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  kt::compiler::CompileOptions opt;
  std::string modelDir, output;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "kt-compile: error: %s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  // A flag of the cost-model partitioner given without --hw (which it needs).
  std::string partitionFlag;
  auto number = [&](int& i) -> int64_t {
    std::string flag = argv[i], v = need(i);
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 0) {
      std::fprintf(stderr, "kt-compile: error: %s expects a non-negative integer, got '%s'\n",
                   flag.c_str(), v.c_str());
      std::exit(2);
    }
    return int64_t(n);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      for (const auto& arch : kt::hf::supportedArchitectures())
        std::printf("%s ", arch.c_str());
      std::printf("\n");
      return 0;
    } else if (a == "-o" || a == "--output")
      output = need(i);
    else if (a == "--target")
      opt.target = need(i);
    else if (a == "--dtype")
      opt.dtype = need(i);
    else if (a == "--cpu-quant")
      opt.cpuQuant = need(i);
    else if (a == "--device")
      opt.device = need(i);
    else if (a == "--pass-pipeline")
      opt.passPipeline = need(i);
    else if (a == "--emit-mlir")
      opt.dumpMlirPath = need(i);
    else if (a == "-v" || a == "--verbose")
      opt.verbose = true;
    else if (a == "--hw")
      opt.hwProfile = need(i);
    else if (a == "--gpu-mem")
      opt.gpuMem = need(i), partitionFlag = a;
    else if (a == "--cpu-mem")
      opt.cpuMem = need(i), partitionFlag = a;
    else if (a == "--experts-on-gpu")
      opt.expertsOnGpu = need(i), partitionFlag = a;
    else if (a == "--expert-stats")
      opt.expertStats = need(i), partitionFlag = a;
    else if (a == "--prefill-offload")
      opt.prefillOffload = need(i), partitionFlag = a;
    else if (a == "--placement-override")
      opt.placementOverrides.push_back(need(i)), partitionFlag = a;
    else if (a == "--prompt-len")
      opt.promptLen = number(i), partitionFlag = a;
    else if (a == "--decode-batch")
      opt.decodeBatch = number(i), partitionFlag = a;
    else if (a == "--kv-tokens")
      opt.kvTokens = number(i), partitionFlag = a;
    else if (a == "--explain")
      opt.explain = true, partitionFlag = a;
    else if (a == "--explain-json")
      opt.explainJsonPath = need(i), partitionFlag = a;
    else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "kt-compile: error: unknown flag '%s' (see --help)\n", a.c_str());
      return 2;
    } else if (modelDir.empty())
      modelDir = a;
    else {
      std::fprintf(stderr, "kt-compile: error: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (!partitionFlag.empty() && opt.hwProfile.empty()) {
    std::fprintf(stderr,
                 "kt-compile: error: %s needs a hardware profile: add --hw PROFILE (e.g. "
                 "examples/hw/this-vm.json)\n",
                 partitionFlag.c_str());
    return 2;
  }
  if (modelDir.empty() || output.empty()) {
    std::fprintf(stderr, "kt-compile: error: need MODEL_DIR and -o PLAN (see --help)\n");
    return 2;
  }
  opt.sidecarPath = output + ".weights";
  try {
    auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "[kt-compile] reading %s\n", modelDir.c_str());
    kt::hf::ModelDesc model = kt::hf::describeModel(modelDir);
    double readSeconds = since(t0);
    kt::plan::PlanT plan;
    kt::compiler::CompileStats stats;
    if (!kt::compiler::compileModel(model, opt, &plan, &stats))
      return 1;
    if (!model.tokenizerJson.empty()) {
      plan.tokenizer = std::make_unique<kt::plan::TokenizerBlobT>();
      plan.tokenizer->tokenizer_json = model.tokenizerJson;
      plan.tokenizer->tokenizer_config_json = model.tokenizerConfigJson;
    }
    kt::compiler::writePlanFile(plan, output);
    uint64_t bytes = 0;
    for (const auto& w : plan.weights)
      for (const auto& s : w->segments)
        bytes += s.size();
    if (opt.verbose)
      std::fprintf(stderr,
                   "[kt-compile] phases: read %.3fs, import %.3fs, passes %.3fs, emit %.3fs\n",
                   readSeconds, stats.importSeconds, stats.passSeconds, stats.emitSeconds);
    std::fprintf(stderr,
                 "[kt-compile] %s: %d layers, %zu ops, %zu weights (%.1f MiB, mapped from %zu "
                 "file(s)) -> %s in %.2fs\n",
                 model.config.arch.c_str(), model.config.numLayers, stats.numOps, stats.numWeights,
                 double(bytes) / (1 << 20), plan.weight_files.size(), output.c_str(), since(t0));
    return 0;
  } catch (const kt::Error& e) {
    std::fprintf(stderr, "kt-compile: error: %s\n", e.what());
    return 1;
  }
}
