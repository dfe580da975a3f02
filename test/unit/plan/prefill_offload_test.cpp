// Prefill offload in the plan (MoeAttrs.prefill_offload_min_tokens / _device): kt-compile
// --prefill-offload writes the partitioner's decision on the prefill entry's MoE steps (decode
// steps never stream), and PlanReader refuses a damaged threshold or device with an error naming
// the step. The plans are compiled from the fixtures' Mixtral as hybrid plans (routed experts
// pinned to the CPU, everything else on gpu:0), the configuration the CUDA parity test streams.
#include "compiler/pipeline/Pipeline.h"
#include "compiler/plan/PlanWriter.h"
#include "frontends/hf/HfModel.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Error.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

using namespace kt;
using namespace kt::plan;

namespace {

const std::string kModel = std::string(KT_FIXTURES_DIR) + "/hf/mixtral";

bool haveFixture() {
  return std::ifstream(kModel + "/config.json").good();
}

// The hybrid plan of the CUDA parity test's "offload" variants, compiled with `offload`.
PlanT hybridPlan(const std::string& offload, const std::string& gpuMem = "") {
  hf::ModelDesc desc = hf::describeModel(kModel);
  compiler::CompileOptions opt;
  opt.device = "gpu:0";
  opt.hwProfile = std::string(KT_EXAMPLES_DIR) + "/hw/xeon-2s-rtx4090.json";
  opt.placementOverrides = {".=gpu:0", "\\.experts=cpu:numa0"};
  opt.prefillOffload = offload;
  opt.gpuMem = gpuMem;
  PlanT p;
  compiler::CompileStats stats;
  EXPECT_TRUE(compiler::compileModel(desc, opt, &p, &stats)) << offload;
  return p;
}

std::vector<const MoeAttrsT*> moeAttrs(const PlanT& p, const std::string& entry) {
  std::vector<const MoeAttrsT*> out;
  for (const auto& ep : p.entry_points)
    if (ep->name == entry)
      for (const auto& s : ep->steps)
        if (s->op == OpKind::Moe)
          out.push_back(s->attrs.AsMoeAttrs());
  return out;
}

std::string loadError(const PlanT& p) {
  try {
    LoadedPlan::fromBytes(compiler::serializePlan(p), "offload.ktplan");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The first prefill MoE step of `p`, damaged by `damage`.
std::string damaged(const std::function<void(MoeAttrsT&, PlanT&)>& damage) {
  PlanT p = hybridPlan("always");
  for (auto& ep : p.entry_points)
    if (ep->name == "prefill")
      for (auto& s : ep->steps)
        if (s->op == OpKind::Moe) {
          damage(*s->attrs.AsMoeAttrs(), p);
          return loadError(p);
        }
  ADD_FAILURE() << "no prefill MoE step";
  return "";
}

int16_t deviceIndex(const PlanT& p, const std::string& name) {
  for (size_t i = 0; i < p.devices.size(); ++i)
    if (p.devices[i]->name == name)
      return int16_t(i);
  return -1;
}

} // namespace

TEST(PrefillOffloadPlan, AlwaysStreamsEveryPrefillMoeStepToTheGpu) {
  if (!haveFixture())
    GTEST_SKIP() << "no fixture at " << kModel;
  PlanT p = hybridPlan("always");
  const int16_t gpu = deviceIndex(p, "gpu:0");
  ASSERT_GE(gpu, 0);
  const auto prefill = moeAttrs(p, "prefill");
  ASSERT_EQ(prefill.size(), 3u); // mixtral fixture: 3 MoE layers
  for (const MoeAttrsT* a : prefill) {
    EXPECT_EQ(a->prefill_offload_min_tokens, 1); // always: from the first token
    EXPECT_EQ(a->prefill_offload_device, gpu);
  }
  const auto decode = moeAttrs(p, "decode");
  ASSERT_EQ(decode.size(), 3u);
  for (const MoeAttrsT* a : decode) { // decode keeps the CPU experts
    EXPECT_EQ(a->prefill_offload_min_tokens, 0);
    EXPECT_EQ(a->prefill_offload_device, -1);
  }
  EXPECT_EQ(loadError(p), ""); // and PlanReader accepts it
}

TEST(PrefillOffloadPlan, NeverWritesNoFields) {
  if (!haveFixture())
    GTEST_SKIP() << "no fixture at " << kModel;
  PlanT p = hybridPlan("never");
  for (const char* entry : {"prefill", "decode"})
    for (const MoeAttrsT* a : moeAttrs(p, entry)) {
      EXPECT_EQ(a->prefill_offload_min_tokens, 0) << entry;
      EXPECT_EQ(a->prefill_offload_device, -1) << entry;
    }
}

// auto: a threshold from the cost model (one crossing per layer, or none when streaming never
// pays off); whatever it is, it is >= 1 on the GPU, and the plan loads.
TEST(PrefillOffloadPlan, AutoWritesAThresholdOrNothing) {
  if (!haveFixture())
    GTEST_SKIP() << "no fixture at " << kModel;
  PlanT p = hybridPlan("auto");
  const int16_t gpu = deviceIndex(p, "gpu:0");
  for (const MoeAttrsT* a : moeAttrs(p, "prefill")) {
    EXPECT_GE(a->prefill_offload_min_tokens, 0);
    EXPECT_EQ(a->prefill_offload_device, a->prefill_offload_min_tokens > 0 ? gpu : -1);
  }
  EXPECT_EQ(loadError(p), "");
}

TEST(PrefillOffloadPlan, BadFieldsAreRefusedNamingTheStep) {
  if (!haveFixture())
    GTEST_SKIP() << "no fixture at " << kModel;
  auto expectError = [](const std::string& err, const std::string& want) {
    EXPECT_NE(err.find(want), std::string::npos) << "error: '" << err << "', wanted '" << want;
    EXPECT_NE(err.find("layers.0.moe"), std::string::npos) << err;   // names the step
    EXPECT_NE(err.find("offload.ktplan"), std::string::npos) << err; // and the file
  };
  expectError(damaged([](MoeAttrsT& a, PlanT&) { a.prefill_offload_min_tokens = -5; }),
              "prefill_offload_min_tokens is -5");
  expectError(damaged([](MoeAttrsT& a, PlanT&) { a.prefill_offload_device = 99; }),
              "prefill_offload_device 99 out of range");
  expectError(damaged([](MoeAttrsT& a, PlanT&) { a.prefill_offload_device = -1; }),
              "prefill_offload_device -1 out of range");
  expectError(damaged([](MoeAttrsT& a, PlanT& p) {
                a.prefill_offload_device = deviceIndex(p, "cpu:numa0");
              }),
              "is not a GPU");
  expectError(damaged([](MoeAttrsT& a, PlanT&) { a.prefill_offload_min_tokens = 0; }),
              "both set, or neither");
  // A second GPU that the step does not run on.
  expectError(damaged([](MoeAttrsT& a, PlanT& p) {
                auto d = std::make_unique<DeviceT>();
                d->kind = DeviceKind::GPU;
                d->index = 1;
                d->name = "gpu:1";
                p.devices.push_back(std::move(d));
                a.prefill_offload_device = int32_t(p.devices.size() - 1);
              }),
              "is not the device the step runs on");
}
