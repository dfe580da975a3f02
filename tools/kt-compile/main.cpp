// kt-compile: Hugging Face model folder -> deployment plan (.ktplan).
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfConfig.h"
#include "frontends/hf/PeftAdapter.h"
#include "runtime/support/Error.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
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
  --gpu-quant int8|int4    GPU-held GEMM matrices as int8 with a scale per row, or int4 with
                           an f16 scale per row and 128 columns (quantized when kt-rt uploads
                           them; decode reads half / a quarter of the bytes of bf16)
  --pack-later             record the packed layout but write no PLAN.weights (nor read the
                           weights): `kt-rt pack PLAN` builds it, e.g. on the machine that runs it
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
                           stream CPU-held experts to the GPU for long prompts (default never
                           until kt-rt's streaming is measured on a GPU; docs/cuda.md)
  --placement-override 'REGEX=DEVICE'
                           pin weights whose symbol or HF name matches REGEX (repeatable)
  --prompt-len P           prompt length of the predicted prefill and decode context (512)
  --decode-batch B         sequences decoded together (1)
  --kv-tokens N            KV-cache positions to reserve per sequence (model max, at most 4096)
  --explain                print the placement and predicted speed per layer and device
  --explain-json FILE      the same as JSON ("-" for stdout)

LoRA (docs/training.md):
  --train lora             add LoRA adapters and a train_step entry point (for kt-rt train)
  --lora-r R               rank (default 8)
  --lora-alpha A           alpha; the update is scaled by alpha / r (default 16)
  --lora-targets LIST      PEFT target_modules, comma-separated: q_proj, k_proj, v_proj, o_proj,
                           q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj, gate_proj, up_proj,
                           down_proj (dense MLPs and shared experts), ..., or all-linear
  --lora-target-parameters LIST
                           PEFT target_parameters: gate_up_proj, down_proj (routed experts)
  --lora-config FILE       take r, lora_alpha, target_modules, target_parameters, rank_pattern
                           and alpha_pattern from a PEFT adapter_config.json (flags override)
  --adapter DIR            merge a PEFT LoRA adapter (adapter_config.json +
                           adapter_model.safetensors) into the weights: W += alpha/r * B A in
                           f32; merged weights go to PLAN.lora-merged
  --adapter-mode merged|unmerged
                           unmerged: keep the base weights as they are (packed by --cpu-quant)
                           and apply the adapter at run time, y = x W^T + s (x A^T) B^T; its A/B
                           tensors are mapped from DIR (CPU only; docs/fine-tuning.md)
  --adapter-unmerged       the same as --adapter-mode unmerged
  -h, --help               this text

supported architectures: )";

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  kt::compiler::CompileOptions opt;
  std::string modelDir, output;
  // LoRA flags, applied over --lora-config after parsing.
  std::string loraConfig, adapterDir, loraFlag, adapterMode = "merged";
  std::optional<int64_t> loraR;
  std::optional<double> loraAlpha;
  std::optional<std::vector<std::string>> loraTargets, loraParams;
  auto list = [](const std::string& v) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      std::string item =
          v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!item.empty())
        out.push_back(item);
      if (comma == std::string::npos)
        break;
      start = comma + 1;
    }
    return out;
  };
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
    else if (a == "--gpu-quant")
      opt.gpuQuant = need(i);
    else if (a == "--pack-later")
      opt.packLater = true;
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
    else if (a == "--train")
      opt.train = need(i);
    else if (a == "--lora-r") {
      loraR = number(i), loraFlag = a;
      if (*loraR == 0) {
        std::fprintf(stderr, "kt-compile: error: --lora-r must be positive\n");
        return 2;
      }
    } else if (a == "--lora-alpha") {
      std::string v = need(i);
      char* end = nullptr;
      loraAlpha = std::strtod(v.c_str(), &end), loraFlag = a;
      if (v.empty() || *end != '\0' || !(*loraAlpha > 0)) {
        std::fprintf(stderr,
                     "kt-compile: error: --lora-alpha expects a positive number, got '%s'\n",
                     v.c_str());
        return 2;
      }
    } else if (a == "--lora-targets")
      loraTargets = list(need(i)), loraFlag = a;
    else if (a == "--lora-target-parameters")
      loraParams = list(need(i)), loraFlag = a;
    else if (a == "--lora-config")
      loraConfig = need(i), loraFlag = a;
    else if (a == "--adapter")
      adapterDir = need(i);
    else if (a == "--adapter-mode") {
      adapterMode = need(i);
      if (adapterMode != "merged" && adapterMode != "unmerged") {
        std::fprintf(stderr,
                     "kt-compile: error: --adapter-mode must be merged or unmerged, not '%s'\n",
                     adapterMode.c_str());
        return 2;
      }
    } else if (a == "--adapter-unmerged")
      adapterMode = "unmerged";
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
  if (adapterMode == "unmerged" && adapterDir.empty()) {
    std::fprintf(stderr, "kt-compile: error: --adapter-unmerged needs --adapter DIR\n");
    return 2;
  }
  if (!loraFlag.empty() && opt.train.empty()) {
    std::fprintf(stderr, "kt-compile: error: %s needs --train lora\n", loraFlag.c_str());
    return 2;
  }
  opt.sidecarPath = output + ".weights";
  try {
    if (!loraConfig.empty()) {
      kt::hf::PeftConfig c = kt::hf::readPeftConfig(loraConfig);
      for (const std::string& w : c.warnings)
        std::fprintf(stderr, "kt-compile: warning: %s: %s\n", loraConfig.c_str(), w.c_str());
      kt::compiler::applyLoraConfig(c, opt);
    }
    if (loraR)
      opt.loraR = *loraR;
    if (loraAlpha)
      opt.loraAlpha = *loraAlpha;
    if (loraTargets)
      opt.loraTargetModules = *loraTargets;
    if (loraParams)
      opt.loraTargetParameters = *loraParams;
    if (opt.train == "lora" && opt.loraTargetModules.empty() && opt.loraTargetParameters.empty()) {
      std::fprintf(stderr, "kt-compile: error: --train lora needs --lora-targets, "
                           "--lora-target-parameters or --lora-config\n");
      return 2;
    }
    auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "[kt-compile] reading %s\n", modelDir.c_str());
    kt::hf::ModelDesc model = kt::hf::describeModel(modelDir);
    if (!adapterDir.empty() && adapterMode == "unmerged") {
      // The adapter's own setup decides where kt-attach-lora declares adapters.
      const std::string config = adapterDir + "/adapter_config.json";
      kt::hf::PeftConfig c = kt::hf::readPeftConfig(config);
      for (const std::string& w : c.warnings)
        std::fprintf(stderr, "kt-compile: warning: %s: %s\n", config.c_str(), w.c_str());
      kt::compiler::applyLoraConfig(c, opt);
      opt.loraInference = true;
    } else if (!adapterDir.empty()) {
      // Absolute: the plan names weight files relative to its own folder otherwise.
      std::string merged = std::filesystem::absolute(output + ".lora-merged").string();
      kt::hf::MergeStats m = kt::hf::mergePeftAdapter(model, adapterDir, merged);
      std::fprintf(stderr, "[kt-compile] merged %d LoRA adapter(s) from %s (%.1f MiB -> %s)\n",
                   m.adapters, adapterDir.c_str(), double(m.bytesWritten) / (1 << 20),
                   merged.c_str());
    }
    double readSeconds = since(t0);
    kt::plan::PlanT plan;
    kt::compiler::CompileStats stats;
    if (!kt::compiler::compileModel(model, opt, &plan, &stats))
      return 1;
    if (opt.loraInference) {
      // kt-rt applies unmerged adapters in its CPU ops only: refuse a GPU placement here rather
      // than write a plan kt-rt would refuse at load.
      for (const auto& ep : plan.entry_points)
        for (const auto& s : ep->steps)
          if (!s->adapters.empty() && plan.devices[s->device]->kind != kt::plan::DeviceKind::CPU) {
            std::fprintf(stderr,
                         "kt-compile: error: step '%s' is placed on %s and has LoRA adapters; "
                         "unmerged adapters run on the CPU only (use --adapter-mode merged, or "
                         "place the adapted layers on the CPU)\n",
                         s->name.c_str(), plan.devices[s->device]->name.c_str());
            return 1;
          }
      kt::hf::EmbedStats e = kt::hf::embedPeftAdapter(plan, adapterDir);
      std::fprintf(stderr,
                   "[kt-compile] %d unmerged LoRA adapter(s) from %s (%.2f MiB mapped from the "
                   "adapter file; base weights unchanged)\n",
                   e.adapters, adapterDir.c_str(), double(e.bytes) / (1 << 20));
    }
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
    if (plan.training) {
      // Trainable parameters: A [r·E, in] + B [out, r·E] per adapter (E = 1 unless fused experts).
      uint64_t params = 0;
      for (const auto& a : plan.adapters)
        params += uint64_t(a->r) * uint64_t(std::max(1, int(a->num_experts))) *
                  uint64_t(a->in_features + a->out_features);
      std::fprintf(stderr,
                   "[kt-compile] train_step: %zu LoRA adapters (%.3f M parameters), %zu steps; "
                   "the forward keeps %lld bytes per token for the backward (%.1f MiB per 1k "
                   "tokens)\n",
                   plan.adapters.size(), double(params) / 1e6,
                   plan.entry_points.back()->steps.size(),
                   (long long)plan.training->saved_activation_bytes_per_token,
                   double(plan.training->saved_activation_bytes_per_token) * 1000 / (1 << 20));
    }
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
