// kt-tune: measure a MoE model's expert heat on calibration text, then search placements with the
// cost model and check the best few by measurement (docs/cost-model.md, "kt-tune").
#include "compiler/cost/ExpertStats.h"
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/Units.h"
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "runtime/support/Error.h"
#include "tools/kt-tune/Calibrate.h"
#include "tools/kt-tune/Candidates.h"
#include "tools/kt-tune/CostGraph.h"
#include "tools/kt-tune/Measure.h"
#include "tools/kt-tune/Report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

namespace {

const char* kUsage = R"(usage: kt-tune MODEL --calib TEXT [options]

Runs calibration text through MODEL, counts how often each routed expert of each MoE
layer is chosen (the --expert-stats file kt-compile reads), then, with --hw, searches
placements with kt-compile's partitioner and cost model, ranks them by predicted speed,
measures the best few on this machine and prints the kt-compile flags of the winner.

MODEL is a Hugging Face folder (compiled in process; needed for the placement search)
or a .ktplan (calibration only).

calibration:
  --calib FILE             plain text, tokenized with the model's tokenizer
  --calib-ids FILE         token ids separated by white space (models without a tokenizer)
  --calib-len N            tokens per prefill window, BOS included (default 512, at most the
                           model's maximum positions)
  --max-tokens N           use at most N tokens of the text (default 8192; -1 = all)
  --plan PLAN              run the calibration on this plan instead of compiling MODEL
  --cpu-quant FORMAT       f32, bf16, int8, int4, ...: the calibration plan's and the
                           candidates' CPU weight format (as kt-compile --cpu-quant)
  --dtype f32|bf16         compute precision of the plans (as kt-compile --dtype; f32)
  --threads T              runtime threads (default: all cores)
  --stats-out FILE         where the expert counts go (default expert-stats.json)

placement search (needs --hw and a model folder):
  --hw PROFILE             hardware profile JSON (docs/hardware-profile.md, examples/hw/)
  --gpu-mem SIZE           GPU memory budget: 12GiB, 0, unlimited (default: the profile's)
  --cpu-mem SIZE           CPU memory budget (default: the profile's)
  --prompt-len P           prompt length of the prediction and of the measurement (512)
  --decode-batch B         sequences decoded together in the prediction (1)
  --kv-tokens N            KV-cache positions per sequence (model max, at most 4096)
  --max-expert-values N    experts-on-gpu values tried, spread from 0 to what fits (12)
  --top N                  rows of the ranked table to print (20)
  --measure-top N          measure the N best distinct placements (default 3; 0 = none)
  --gen-len N              decoded tokens per measurement (32)
  --reps N                 measurement repetitions, best kept (2)
  --report-json FILE       every candidate, prediction and measurement as JSON
  --work-dir DIR           keep the calibration and candidate plans there (default: a
                           temporary folder, removed at exit)
  -h, --help               this text

example:
  kt-tune ./DeepSeek-V2-Lite --calib prompts.txt --hw examples/hw/xeon-2s-rtx4090.json \
      --gpu-mem 20GiB --cpu-quant int4 --report-json tune.json
)";

[[noreturn]] void usageError(const std::string& message) {
  std::fprintf(stderr, "kt-tune: error: %s (see --help)\n", message.c_str());
  std::exit(2);
}

struct Flags {
  std::string model, calib, calibIds, plan, cpuQuant, dtype = "f32", statsOut = "expert-stats.json";
  std::string hw, gpuMem, cpuMem, reportJson, workDir;
  int64_t calibLen = 512, maxTokens = 8192, threads = 0, promptLen = 512, decodeBatch = 1,
          kvTokens = 0, maxExpertValues = 12, top = 20, measureTop = 3, genLen = 32, reps = 2;
};

Flags parseFlags(int argc, char** argv) {
  Flags f;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc)
      usageError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto integer = [&](int& i, int64_t min) -> int64_t {
    std::string flag = argv[i], v = need(i);
    char* end = nullptr;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < min)
      usageError(flag + " expects an integer >= " + std::to_string(min) + ", got '" + v + "'");
    return int64_t(n);
  };
  std::string searchFlag; // a placement-search flag, which needs --hw
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (a == "--calib")
      f.calib = need(i);
    else if (a == "--calib-ids")
      f.calibIds = need(i);
    else if (a == "--calib-len")
      f.calibLen = integer(i, 2);
    else if (a == "--max-tokens")
      f.maxTokens = integer(i, -1);
    else if (a == "--plan")
      f.plan = need(i);
    else if (a == "--cpu-quant")
      f.cpuQuant = need(i);
    else if (a == "--dtype")
      f.dtype = need(i);
    else if (a == "--threads")
      f.threads = integer(i, 0);
    else if (a == "--stats-out")
      f.statsOut = need(i);
    else if (a == "--hw")
      f.hw = need(i);
    else if (a == "--gpu-mem")
      f.gpuMem = need(i), searchFlag = a;
    else if (a == "--cpu-mem")
      f.cpuMem = need(i), searchFlag = a;
    else if (a == "--prompt-len")
      f.promptLen = integer(i, 1), searchFlag = a;
    else if (a == "--decode-batch")
      f.decodeBatch = integer(i, 1), searchFlag = a;
    else if (a == "--kv-tokens")
      f.kvTokens = integer(i, 0), searchFlag = a;
    else if (a == "--max-expert-values")
      f.maxExpertValues = integer(i, 2), searchFlag = a;
    else if (a == "--top")
      f.top = integer(i, 1), searchFlag = a;
    else if (a == "--measure-top")
      f.measureTop = integer(i, 0), searchFlag = a;
    else if (a == "--gen-len")
      f.genLen = integer(i, 1), searchFlag = a;
    else if (a == "--reps")
      f.reps = integer(i, 1), searchFlag = a;
    else if (a == "--report-json")
      f.reportJson = need(i), searchFlag = a;
    else if (a == "--work-dir")
      f.workDir = need(i);
    else if (!a.empty() && a[0] == '-')
      usageError("unknown flag '" + a + "'");
    else if (f.model.empty())
      f.model = a;
    else
      usageError("unexpected argument '" + a + "'");
  }
  if (f.model.empty())
    usageError("need MODEL (a Hugging Face folder or a .ktplan)");
  if (f.calib.empty() == f.calibIds.empty())
    usageError("give the calibration input with exactly one of --calib TEXT or --calib-ids FILE");
  if (!searchFlag.empty() && f.hw.empty())
    usageError(searchFlag + " belongs to the placement search, which needs --hw PROFILE");
  if (f.dtype != "f32" && f.dtype != "bf16")
    usageError("--dtype must be f32 or bf16, not '" + f.dtype + "'");
  if (!f.cpuQuant.empty()) {
    kt::cost::QuantSpec q;
    if (!kt::cost::parseCpuQuant(f.cpuQuant, &q))
      usageError("--cpu-quant: expected f32, bf16, int8, int4, int4:g32, int4:g128 (optionally "
                 ":asym), got '" +
                 f.cpuQuant + "'");
  }
  return f;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void writeFile(const std::string& path, const std::string& text, const char* what) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out)
    throw kt::Error("cannot write the " + std::string(what) + " '" + path + "'");
}

// A scratch folder for the plans kt-tune compiles; removed at exit unless the user named it.
struct WorkDir {
  std::string path;
  bool owned = false;
  explicit WorkDir(const std::string& wanted) {
    if (!wanted.empty()) {
      fs::create_directories(wanted);
      path = fs::absolute(wanted).string();
      return;
    }
    std::string tmpl = (fs::temp_directory_path() / "kt-tune-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw kt::Error("cannot create a temporary folder under " +
                      fs::temp_directory_path().string());
    path = tmpl;
    owned = true;
  }
  ~WorkDir() {
    std::error_code ec;
    if (owned)
      fs::remove_all(path, ec);
  }
};

kt::compiler::CompileOptions baseCompileOptions(const Flags& f) {
  kt::compiler::CompileOptions o;
  o.cpuQuant = f.cpuQuant;
  o.dtype = f.dtype;
  o.hwProfile = f.hw;
  o.gpuMem = f.gpuMem;
  o.cpuMem = f.cpuMem;
  o.promptLen = f.promptLen;
  o.decodeBatch = f.decodeBatch;
  o.kvTokens = f.kvTokens;
  return o;
}

int run(const Flags& f) {
  using namespace kt;
  auto t0 = std::chrono::steady_clock::now();
  WorkDir work(f.workDir);
  const bool isFolder = fs::is_directory(f.model);
  if (!isFolder && !fs::is_regular_file(f.model))
    throw Error(f.model + ": no such model folder or plan file");
  if (!isFolder && !f.plan.empty())
    throw Error("--plan: MODEL is already a plan (" + f.model + ")");
  if (!isFolder && !f.hw.empty())
    throw Error("--hw: the placement search compiles candidates from the Hugging Face folder; "
                "give the folder as MODEL (and this plan with --plan)");

  hf::ModelDesc model;
  std::string planPath = isFolder ? f.plan : f.model;
  if (isFolder) {
    std::fprintf(stderr, "[kt-tune] reading %s\n", f.model.c_str());
    model = hf::describeModel(fs::absolute(f.model).string());
  }
  if (planPath.empty()) {
    planPath = work.path + "/calibration.ktplan";
    compiler::CompileOptions o;
    o.cpuQuant = f.cpuQuant;
    o.dtype = f.dtype;
    o.sidecarPath = planPath + ".weights";
    plan::PlanT plan;
    compiler::CompileStats stats;
    std::fprintf(stderr, "[kt-tune] compiling a CPU plan for the calibration run (%s)\n",
                 f.cpuQuant.empty() ? "weights as stored" : ("--cpu-quant " + f.cpuQuant).c_str());
    if (!compiler::compileModel(model, o, &plan, &stats))
      return 1;
    if (!model.tokenizerJson.empty()) {
      plan.tokenizer = std::make_unique<plan::TokenizerBlobT>();
      plan.tokenizer->tokenizer_json = model.tokenizerJson;
      plan.tokenizer->tokenizer_config_json = model.tokenizerConfigJson;
    }
    compiler::writePlanFile(plan, planPath);
  }

  // 1. Calibration: expert counts per MoE layer.
  tune::ExpertCounts counts;
  std::string modelName;
  {
    Model m(planPath, int(f.threads), "auto");
    modelName = m.info().source() && m.info().source()->size() ? m.info().source()->str()
                : m.info().arch()                              ? m.info().arch()->str()
                                                               : std::string("model");
    tune::moeLayers(m.plan()); // a dense model has nothing to count: say so before any work
    const tune::CalibInput input = tune::calibrationInput(m, f.calib, f.calibIds);
    const std::vector<int32_t>& ids = input.ids;
    tune::CalibOptions co;
    co.windowLen = std::min<int64_t>(f.calibLen, m.info().max_position());
    co.maxTokens = f.maxTokens;
    const int64_t use = f.maxTokens >= 0 ? std::min<int64_t>(f.maxTokens, int64_t(ids.size()))
                                         : int64_t(ids.size());
    std::fprintf(stderr, "[kt-tune] calibration: %lld of %zu tokens from %s in windows of %lld\n",
                 (long long)use, ids.size(), (f.calib.empty() ? f.calibIds : f.calib).c_str(),
                 (long long)co.windowLen);
    auto tc = std::chrono::steady_clock::now();
    counts = tune::countExpertActivations(m, input, co, [&](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r[kt-tune] routed %lld/%lld tokens (%.1f tok/s)", (long long)done,
                   (long long)total, double(done) / std::max(1e-9, since(tc)));
    });
    std::fprintf(stderr, "\n");
  }
  writeFile(f.statsOut, tune::expertStatsJson(counts, modelName), "expert statistics file");
  std::printf("expert heat over %lld tokens (%lld prefill windows) -> %s\n",
              (long long)counts.tokens, (long long)counts.windows, f.statsOut.c_str());
  std::printf("%s", tune::heatSummary(counts).c_str());
  if (f.hw.empty()) {
    std::fprintf(stderr, "[kt-tune] done in %.1fs (add --hw PROFILE to search placements)\n",
                 since(t0));
    return 0;
  }

  // 2. Placement search with kt-compile's partitioner, over uniform and measured routing.
  cost::HardwareProfile hw;
  std::string why;
  if (!cost::loadHardwareProfile(f.hw, &hw, &why))
    throw Error(why);
  tune::SearchOptions so;
  auto size = [&](const std::string& text, const char* flag, double* out) {
    if (!text.empty() && !cost::parseByteSize(text, out, &why))
      throw Error(std::string(flag) + ": " + why);
  };
  size(f.gpuMem, "--gpu-mem", &so.base.gpuMemBytes);
  size(f.cpuMem, "--cpu-mem", &so.base.cpuMemBytes);
  so.base.promptLen = f.promptLen;
  so.base.decodeBatch = f.decodeBatch;
  so.maxExpertValues = int(f.maxExpertValues);
  cost::ExpertStats stats;
  if (!cost::loadExpertStats(f.statsOut, &stats, &why)) // read back as kt-compile will
    throw Error(why);
  cost::ModelGraph uniform, measured;
  // As compileModel: --dtype bf16 without --cpu-quant packs CPU weights as bf16.
  const std::string cpuQuant = f.cpuQuant.empty() && f.dtype == "bf16" ? "bf16" : f.cpuQuant;
  if (!tune::buildCostGraph(model, nullptr, cpuQuant, f.dtype, &uniform, &why) ||
      !tune::buildCostGraph(model, &stats, cpuQuant, f.dtype, &measured, &why))
    throw Error(f.model + ": " + why);
  so.base.kvTokens =
      f.kvTokens > 0
          ? f.kvTokens
          : (uniform.maxPosition > 0 ? std::min<int64_t>(uniform.maxPosition, 4096) : 4096);
  cost::CostModel costModel(hw);
  std::vector<tune::Candidate> ranked;
  if (!tune::searchPlacements(
          uniform, &measured, costModel, so,
          [](const std::string& line) { std::fprintf(stderr, "[kt-tune] %s\n", line.c_str()); },
          &ranked, &why))
    throw Error("no placement fits: " + why);
  std::printf("\ncandidate placements on %s (predicted, prompt %lld, ranked by decode tok/s):\n%s",
              hw.name.c_str(), (long long)f.promptLen,
              tune::candidateTable(ranked, size_t(f.top)).c_str());

  // 3. Measure the best distinct placements this machine can run.
  const compiler::CompileOptions base = baseCompileOptions(f);
  std::string noGpu;
  const int gpus = tune::visibleGpus(&noGpu);
  if (gpus == 0 && f.measureTop > 0)
    std::fprintf(stderr, "[kt-tune] no GPU here (%s): candidates that need one are not measured\n",
                 noGpu.c_str());
  int measuredCount = 0;
  tune::MeasureOptions mo;
  mo.threads = int(f.threads);
  mo.bench.promptLen = int(f.promptLen);
  mo.bench.genLen = int(f.genLen);
  mo.bench.reps = int(f.reps);
  if (f.promptLen + f.genLen > model.config.maxPosition) {
    mo.bench.promptLen = int(std::max<int64_t>(1, model.config.maxPosition - f.genLen));
    std::fprintf(stderr,
                 "[kt-tune] measuring with %d-token prompts: --prompt-len + --gen-len exceed the "
                 "model's %lld positions\n",
                 mo.bench.promptLen, (long long)model.config.maxPosition);
  }
  for (size_t i = 0; i < ranked.size() && measuredCount < f.measureTop; ++i) {
    tune::Candidate& c = ranked[i];
    if (c.sameAs >= 0)
      continue;
    const compiler::CompileOptions o = tune::candidateOptions(base, c, f.statsOut);
    if (c.usesAccelerator && gpus == 0) {
      c.skipped = "needs a GPU; this machine has none";
      continue;
    }
    std::fprintf(stderr, "[kt-tune] #%zu: compiling and measuring %s\n", i + 1,
                 tune::candidateFlags(o).c_str());
    mo.planPath = work.path + "/candidate-" + std::to_string(i + 1) + ".ktplan";
    try {
      const BenchResult r = tune::measurePlacement(model, o, mo);
      c.measured = true;
      c.measuredPrefillTokS = r.best.prefillTokPerSec();
      c.measuredDecodeTokS = r.best.decodeTokPerSec();
    } catch (const Error& e) {
      c.skipped = std::string("measurement failed: ") + e.what();
      std::fprintf(stderr, "[kt-tune] #%zu: %s\n", i + 1, c.skipped.c_str());
    }
    ++measuredCount;
  }
  std::printf("\n%s", tune::measuredTable(ranked).c_str());

  // 4. The winner: the best measured decode speed; the best prediction when nothing was measured.
  const tune::Winner w = tune::pickWinner(ranked);
  const compiler::CompileOptions wo =
      tune::candidateOptions(base, ranked[size_t(w.rank)], f.statsOut);
  const std::string line = "kt-compile " + f.model + " -o model.ktplan " + tune::candidateFlags(wo);
  std::printf("\nbest placement (#%d, %s):\n  %s\n", w.rank + 1, w.reason.c_str(), line.c_str());
  if (!f.reportJson.empty()) {
    tune::ReportInfo info{f.model, hw.name, f.statsOut, counts.tokens, counts.windows, line, w};
    writeFile(f.reportJson, tune::reportJson(info, ranked, base, f.statsOut), "report");
    std::fprintf(stderr, "[kt-tune] report -> %s\n", f.reportJson.c_str());
  }
  std::fprintf(stderr, "[kt-tune] done in %.1fs\n", since(t0));
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // results and stderr progress lines stay in order
  const Flags f = parseFlags(argc, argv);
  try {
    return run(f);
  } catch (const kt::Error& e) {
    std::fprintf(stderr, "\nkt-tune: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) { // std::filesystem errors name the path
    std::fprintf(stderr, "\nkt-tune: error: %s\n", e.what());
    return 1;
  }
}
