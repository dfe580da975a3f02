// kt-compile --adapter DIR --adapter-unmerged: the base weights stay as compiled and the plan
// carries PEFT's A/B tensors (Adapter.init_a/init_b) that the CPU ops apply at run time,
// y = x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ. Checked against PEFT's logits with the trained adapter
// (fixtures hf/<arch>/lora: `final_logits` [2, 32, V] for `data` [2, 32]; max |diff| < 1e-3, the
// merged path's tolerance), against the merged plan (prefill and KV-cached greedy decode), with an
// int8-packed base, and for adapters that do not fit the model.
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "frontends/hf/PeftAdapter.h"
#include "runtime/exec/Executor.h"
#include "runtime/exec/LoraWeights.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/generate/Generator.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/common/FixtureTensors.h"
#include "test/unit/common/LogitAgreement.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>

using namespace kt;

namespace {

using testing_util::fixture;
using testing_util::tensor;

// kt-compile's options for the adapter configured in `adapterDir` kept unmerged (separate A/B
// weights), with the packed sidecar at `sidecar`.
compiler::CompileOptions unmergedOptions(const std::string& adapterDir,
                                         const std::string& sidecar) {
  compiler::CompileOptions opt;
  opt.sidecarPath = sidecar;
  compiler::applyLoraConfig(hf::readPeftConfig(adapterDir + "/adapter_config.json"), opt);
  opt.loraInference = true;
  return opt;
}

// The plan of `arch` with `adapterDir` unmerged (what kt-compile --adapter-unmerged does).
std::string compileUnmerged(const std::string& arch, const std::string& adapterDir,
                            const std::string& cpuQuant, const std::string& tag) {
  hf::ModelDesc desc = hf::describeModel(fixture(arch));
  const std::string plan = testing::TempDir() + "/" + arch + "." + tag + ".ktplan";
  compiler::CompileOptions opt = unmergedOptions(adapterDir, plan + ".weights");
  opt.cpuQuant = cpuQuant;
  plan::PlanT p;
  compiler::CompileStats stats;
  EXPECT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  hf::EmbedStats e = hf::embedPeftAdapter(p, adapterDir);
  EXPECT_EQ(e.adapters, int(p.adapters.size()));
  compiler::writePlanFile(p, plan);
  return plan;
}

std::string compileMerged(const std::string& arch, const std::string& adapterDir,
                          const std::string& cpuQuant, const std::string& tag) {
  hf::ModelDesc desc = hf::describeModel(fixture(arch));
  const std::string plan = testing::TempDir() + "/" + arch + "." + tag + ".ktplan";
  hf::mergePeftAdapter(desc, adapterDir, plan + ".lora-merged");
  compiler::CompileOptions opt;
  opt.sidecarPath = plan + ".weights";
  opt.cpuQuant = cpuQuant;
  plan::PlanT p;
  compiler::CompileStats stats;
  EXPECT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  compiler::writePlanFile(p, plan);
  return plan;
}

struct LoraReference {
  std::vector<std::vector<int32_t>> seqs; // data [B, L]
  std::vector<float> finalLogits;         // [B, L, V]
  size_t L = 0;
};

LoraReference loraReference(const std::string& arch) {
  SafetensorsFile ref(fixture(arch) + "/lora/reference.safetensors");
  LoraReference r;
  std::vector<int32_t> data = tensor<int32_t>(ref, "data");
  r.finalLogits = tensor<float>(ref, "final_logits");
  const TensorInfo* shape = ref.find("data");
  EXPECT_NE(shape, nullptr);
  const size_t B = size_t(shape->shape[0]);
  r.L = size_t(shape->shape[1]);
  for (size_t b = 0; b < B; ++b)
    r.seqs.emplace_back(data.begin() + std::ptrdiff_t(b * r.L),
                        data.begin() + std::ptrdiff_t((b + 1) * r.L));
  return r;
}

std::vector<float> flatten(const std::vector<std::vector<float>>& rows) {
  std::vector<float> out;
  for (const auto& r : rows)
    out.insert(out.end(), r.begin(), r.end());
  return out;
}

double maxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  return worst;
}

// Greedy decoding with the KV cache: the new ids and the logits row behind each.
struct Greedy {
  std::vector<int32_t> ids;
  std::vector<float> logits;
};
Greedy greedy(Model& m, const std::vector<int32_t>& prompt, int n) {
  GenerateRequest req;
  req.prompts = {prompt};
  req.maxNewTokens = n;
  Greedy g;
  GenerateCallbacks cb;
  cb.onLogits = [&](int, const float* row, int64_t vocab) {
    g.logits.insert(g.logits.end(), row, row + vocab);
  };
  g.ids = generate(m, req, cb).newIds[0];
  return g;
}

class AdapterUnmerged : public testing::TestWithParam<std::string> {};

TEST_P(AdapterUnmerged, ReproducesPeftFinalLogitsAndTheMergedPlan) {
  const std::string arch = GetParam(), adapter = fixture(arch) + "/lora/adapter_final";
  const std::string unmergedPath = compileUnmerged(arch, adapter, "", "unmerged");
  LoadedPlan lp = LoadedPlan::fromFile(unmergedPath);
  // The base weights are the checkpoint's, untouched; the adapters are plan weights in the
  // adapter's own file, and prefill steps apply them.
  ASSERT_NE(lp.root().adapters(), nullptr);
  for (const plan::WeightFile* f : *lp.root().weight_files())
    EXPECT_EQ(f->path()->str().find("lora-merged"), std::string::npos) << f->path()->str();
  for (const plan::Adapter* a : *lp.root().adapters()) {
    EXPECT_GE(a->init_a(), 0) << a->name()->str();
    EXPECT_GE(a->init_b(), 0) << a->name()->str();
  }
  int stepsWithAdapters = 0;
  for (const plan::Step* s : *lp.entryPoint("prefill")->steps())
    stepsWithAdapters += s->adapters() && s->adapters()->size() > 0;
  EXPECT_GT(stepsWithAdapters, 0);
  EXPECT_EQ(lp.entryPoint("train_step"), nullptr);

  LoraReference ref = loraReference(arch);
  Model unmerged(unmergedPath, 2);
  std::vector<float> got = flatten(scoreSequences(unmerged, ref.seqs));
  const double vsPeft = maxAbsDiff(got, ref.finalLogits);
  EXPECT_LT(vsPeft, 1e-3) << arch << ": max |logit - PEFT| with the unmerged adapter";

  Model merged(compileMerged(arch, adapter, "", "merged-ref"), 2);
  std::vector<float> mergedLogits = flatten(scoreSequences(merged, ref.seqs));
  const double vsMerged = maxAbsDiff(got, mergedLogits);
  EXPECT_LT(vsMerged, 1e-4) << arch << ": unmerged vs merged plan";

  // Decode steps (one token at a time over the KV cache) apply the adapters too.
  const std::vector<int32_t> prompt(ref.seqs[0].begin(), ref.seqs[0].begin() + 12);
  Greedy gu = greedy(unmerged, prompt, 8), gm = greedy(merged, prompt, 8);
  EXPECT_EQ(gu.ids, gm.ids);
  const double decode = maxAbsDiff(gu.logits, gm.logits);
  EXPECT_LT(decode, 1e-3) << arch << ": greedy decode logits, unmerged vs merged";
  std::printf("[ unmerged ] %s: %u adapters, max |logit - PEFT| %.2e, vs merged %.2e, decode "
              "vs merged %.2e\n",
              arch.c_str(), lp.root().adapters()->size(), vsPeft, vsMerged, decode);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterUnmerged,
                         testing::Values("llama", "mixtral", "qwen3_moe", "deepseek_v2",
                                         "deepseek_v2_yarn", "deepseek_v3"));

// QLoRA-style: the base packed to int8, the adapter f32 beside it. Against merged-then-quantized
// (the adapter's update quantized with the base) and against PEFT's exact logits, with the int8
// bounds of the quantized-plan test (test/unit/e2e/quant_test.cpp: top-1 >= 0.7, KL <= 5e-2).
class AdapterUnmergedInt8 : public testing::TestWithParam<std::string> {};

TEST_P(AdapterUnmergedInt8, BaseStaysPackedAndAgreesWithMergedThenQuantized) {
  using testing_util::compareLogits;
  const std::string arch = GetParam(), adapter = fixture(arch) + "/lora/adapter_final";
  const std::string unmergedPath = compileUnmerged(arch, adapter, "int8", "unmerged-int8");
  LoadedPlan lp = LoadedPlan::fromFile(unmergedPath);
  for (const plan::Adapter* a : *lp.root().adapters()) {
    const plan::Weight* A = lp.root().weights()->Get(uint32_t(a->init_a()));
    EXPECT_EQ(A->layout(), plan::Layout::RowMajor) << "adapters stay unpacked";
    // (MLA's kv_b is never packed: the absorbed attention splits it per head at load.)
    for (const plan::AdapterTarget* t : *a->targets()) {
      if (a->name()->str().find("kv_b_proj") == std::string::npos) {
        EXPECT_EQ(lp.root().weights()->Get(t->weight())->layout(), plan::Layout::Packed)
            << a->name()->str() << ": the frozen base weight must stay packed";
      }
    }
  }
  LoraReference ref = loraReference(arch);
  Model unmerged(unmergedPath, 2), merged(compileMerged(arch, adapter, "int8", "merged-int8"), 2);
  std::vector<float> u = flatten(scoreSequences(unmerged, ref.seqs));
  std::vector<float> m = flatten(scoreSequences(merged, ref.seqs));
  const int64_t V = unmerged.info().vocab_size();
  testing_util::LogitAgreement um = compareLogits(m, u, V),
                               up = compareLogits(ref.finalLogits, u, V),
                               mp = compareLogits(ref.finalLogits, m, V);
  std::printf("[ int8     ] %s: unmerged vs merged-int8 top-1 %.3f KL %.2e max %.3f; vs PEFT: "
              "unmerged top-1 %.3f KL %.2e, merged-int8 top-1 %.3f KL %.2e\n",
              arch.c_str(), um.top1, um.kl, um.maxAbs, up.top1, up.kl, mp.top1, mp.kl);
  EXPECT_GE(um.top1, 0.7);
  EXPECT_LE(um.kl, 5e-2);
  EXPECT_GE(up.top1, 0.7);
  EXPECT_LE(up.kl, 5e-2);
  // Unmerged keeps the update exact, so it is not further from PEFT than merged-then-quantized
  // (up to noise of the same order as the quantization itself).
  EXPECT_LE(up.kl, 2 * mp.kl + 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AdapterUnmergedInt8,
                         testing::Values("llama", "qwen3_moe", "deepseek_v3"));

// ---- adapters that do not fit --------------------------------------------------------------

std::string adapterDir(const std::string& name) {
  std::string d = testing::TempDir() + "/" + name;
  std::filesystem::create_directories(d);
  return d;
}

TEST(AdapterUnmergedErrors, AdapterForAnotherModelNamesTheTarget) {
  // deepseek_v2's adapter targets MLA projections llama does not have: kt-attach-lora refuses.
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  const compiler::CompileOptions opt = unmergedOptions(
      fixture("deepseek_v2") + "/lora/adapter_final", testing::TempDir() + "/wrong.weights");
  plan::PlanT p;
  compiler::CompileStats stats;
  testing::internal::CaptureStderr();
  const bool ok = compiler::compileModel(desc, opt, &p, &stats);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(ok);
  EXPECT_NE(err.find("kv_a_proj_with_mqa"), std::string::npos) << err;
  EXPECT_NE(err.find("matches no projection"), std::string::npos) << err;
}

TEST(AdapterUnmergedErrors, WrongShapeNamesTheTensorAndTheExpectedShape) {
  // llama's trained adapter with layer 0's q_proj lora_A cut to rank 4.
  const std::string src = fixture("llama") + "/lora/adapter_final";
  const std::string dir = adapterDir("bad_shape");
  std::filesystem::copy_file(src + "/adapter_config.json", dir + "/adapter_config.json",
                             std::filesystem::copy_options::overwrite_existing);
  SafetensorsFile in(src + "/adapter_model.safetensors");
  const std::string bad = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  std::vector<std::vector<float>> keep;
  std::vector<OutTensor> out;
  for (const auto& [name, t] : in.tensors()) {
    ASSERT_EQ(t.dtype, DType::F32);
    std::vector<int64_t> shape = t.shape;
    if (name == bad)
      shape[0] = 4;
    keep.emplace_back(size_t(shape[0] * shape[1]));
    std::memcpy(keep.back().data(), in.data(t), keep.back().size() * sizeof(float));
    out.push_back({name, DType::F32, shape, keep.back().data()});
  }
  writeSafetensors(dir + "/adapter_model.safetensors", out);
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  const compiler::CompileOptions opt = unmergedOptions(dir, dir + "/p.weights");
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  try {
    hf::embedPeftAdapter(p, dir);
    FAIL() << "embedded a rank-4 lora_A into a rank-8 adapter";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, "), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, "), std::string::npos) << msg;
  }
}

TEST(AdapterUnmergedErrors, TensorsOfUntargetedModulesAreRefused) {
  // A config that targets only q_proj next to a file with every projection's tensors: the rest
  // would be silently dropped, so it is an error naming one of them.
  const std::string src = fixture("llama") + "/lora/adapter_final";
  const std::string dir = adapterDir("extra_tensors");
  std::filesystem::copy_file(src + "/adapter_model.safetensors", dir + "/adapter_model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(dir + "/adapter_config.json")
      << R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]})";
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  const compiler::CompileOptions opt = unmergedOptions(dir, dir + "/p.weights");
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  try {
    hf::embedPeftAdapter(p, dir);
    FAIL() << "ignored adapter tensors of untargeted modules";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to no adapter"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adapter_model.safetensors"), std::string::npos)
        << e.what();
  }
}

TEST(AdapterUnmergedErrors, GpuPlacedAdaptersAreRefusedByTheRuntime) {
  // The CUDA ops have no adapter path: a plan that puts adapted steps on a GPU is refused at load
  // with the reason, rather than run without its adapters.
  const std::string adapter = fixture("llama") + "/lora/adapter_final";
  hf::ModelDesc desc = hf::describeModel(fixture("llama"));
  const std::string plan = testing::TempDir() + "/llama.gpu-unmerged.ktplan";
  compiler::CompileOptions opt = unmergedOptions(adapter, plan + ".weights");
  opt.device = "gpu:0";
  plan::PlanT p;
  compiler::CompileStats stats;
  ASSERT_TRUE(compiler::compileModel(desc, opt, &p, &stats));
  hf::embedPeftAdapter(p, adapter);
  compiler::writePlanFile(p, plan);
  // The executor alone: Model would first look for a CUDA device, which this machine may lack.
  LoadedPlan lp = LoadedPlan::fromFile(plan);
  WeightStore weights(lp);
  ThreadPool pool(1);
  try {
    Executor ex(lp, weights, pool);
    FAIL() << "loaded a plan with GPU-placed unmerged adapters";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
  }
}

TEST(AdapterUnmergedRsLora, ScalesByAlphaOverSqrtRLikeTheMerge) {
  // llama's trained adapter declared rsLoRA: both forms must scale by alpha / sqrt(r) (PEFT's
  // use_rslora), which moves the logits away from the plain alpha / r ones.
  const std::string src = fixture("llama") + "/lora/adapter_final";
  const std::string dir = adapterDir("rslora");
  std::filesystem::copy_file(src + "/adapter_model.safetensors", dir + "/adapter_model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::ifstream cfgIn(src + "/adapter_config.json");
  std::string cfg((std::istreambuf_iterator<char>(cfgIn)), std::istreambuf_iterator<char>());
  const size_t at = cfg.find("\"use_rslora\": false");
  ASSERT_NE(at, std::string::npos) << cfg;
  cfg.replace(at, std::string("\"use_rslora\": false").size(), "\"use_rslora\": true");
  std::ofstream(dir + "/adapter_config.json") << cfg;

  LoraReference ref = loraReference("llama");
  Model unmerged(compileUnmerged("llama", dir, "", "rslora-unmerged"), 2);
  Model merged(compileMerged("llama", dir, "", "rslora-merged"), 2);
  std::vector<float> u = flatten(scoreSequences(unmerged, ref.seqs));
  std::vector<float> m = flatten(scoreSequences(merged, ref.seqs));
  EXPECT_LT(maxAbsDiff(u, m), 1e-4);
  EXPECT_GT(maxAbsDiff(u, ref.finalLogits), 1e-2) << "use_rslora changed nothing";
}

TEST(AdapterUnmergedCli, FlagWritesAPlanWithAdapterValues) {
  using testing_util::run;
  const std::string compile = std::string(KT_BINARY_DIR) + "/tools/kt-compile/kt-compile";
  const std::string d = testing_util::tempDir("kt_lora_cli_", "unmerged");
  const std::string adapter = fixture("qwen3_moe") + "/lora/adapter_final";
  auto r = run(compile + " " + fixture("qwen3_moe") + " -o " + d + "/p.ktplan --adapter " +
               adapter + " --adapter-unmerged --cpu-quant int8");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("16 unmerged LoRA adapter(s)"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(d + "/p.ktplan.lora-merged"));
  LoadedPlan p = LoadedPlan::fromFile(d + "/p.ktplan");
  ASSERT_NE(p.root().adapters(), nullptr);
  EXPECT_EQ(p.root().adapters()->size(), 16u);
  EXPECT_GE(p.root().adapters()->Get(0)->init_a(), 0);

  // Adapted steps on a GPU: refused at compile time (kt-rt would refuse the plan at load).
  auto gpu = run(compile + " " + fixture("qwen3_moe") + " -o " + d + "/g.ktplan --adapter " +
                 adapter + " --adapter-unmerged --device gpu:0");
  EXPECT_EQ(gpu.code, 1) << gpu.output;
  EXPECT_NE(gpu.output.find("run on the CPU only"), std::string::npos) << gpu.output;

  auto bad =
      run(compile + " " + fixture("qwen3_moe") + " -o " + d + "/q.ktplan --adapter-unmerged");
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--adapter-unmerged needs --adapter DIR"), std::string::npos)
      << bad.output;
  auto mode = run(compile + " " + fixture("qwen3_moe") + " -o " + d + "/q.ktplan --adapter " +
                  adapter + " --adapter-mode lazy");
  EXPECT_EQ(mode.code, 2) << mode.output;
  EXPECT_NE(mode.output.find("merged or unmerged"), std::string::npos) << mode.output;
}

TEST(PeftFusedLayout, ExpertMajorBMatchesPeftsColumnOrder) {
  // PEFT's fused-expert B [out, E·r] holds expert e's column j at j·E + e; the runtime keeps
  // [E, out, r]. Odd sizes, random values, against the definition element by element.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto [E, out, r] : {std::tuple{1, 5, 3}, std::tuple{3, 7, 2}, std::tuple{5, 1, 4}}) {
    std::vector<float> peft(size_t(out * E * r)), got(peft.size());
    for (float& v : peft)
      v = u(rng);
    peftBToExpertMajor(peft.data(), E, out, r, got.data());
    for (int e = 0; e < E; ++e)
      for (int o = 0; o < out; ++o)
        for (int j = 0; j < r; ++j)
          ASSERT_EQ(got[size_t((e * out + o) * r + j)], peft[size_t(o * E * r + j * E + e)])
              << "E=" << E << " out=" << out << " r=" << r;
  }
}

TEST(PeftConfigReader, RsLoraAndFanInFanOutFollowPeft) {
  const std::string path = testing::TempDir() + "/rslora.json";
  std::ofstream(path) << R"({"r": 16, "lora_alpha": 8, "use_rslora": true, "fan_in_fan_out": true,
                            "target_modules": ["q_proj"]})";
  hf::PeftConfig c = hf::readPeftConfig(path);
  EXPECT_TRUE(c.useRslora);
  EXPECT_DOUBLE_EQ(hf::peftScale(c, 8, 16), 2.0); // alpha / sqrt(r)
  c.useRslora = false;
  EXPECT_DOUBLE_EQ(hf::peftScale(c, 8, 16), 0.5);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("fan_in_fan_out"), std::string::npos);
}

} // namespace
