// `kt-rt pack` against kt-compile: the sidecar it rebuilds from a plan's recorded sources is
// byte-identical to the one kt-compile wrote (int4 and int8, stacked-expert MoE fixtures), plans
// compiled with --pack-later are byte-identical to normal ones, the rebuilt plan's logits equal
// the original's, and a missing or changed checkpoint, an existing sidecar or a damaged
// Weight.source give clear errors and leave no partial sidecar behind.
#include "compiler/plan/PlanWriter.h"
#include "runtime/io/Safetensors.h"
#include "runtime/plan/PlanReader.h"

#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace fs = std::filesystem;
using namespace kt;

namespace {

using testing_util::expectError;
using testing_util::kCompile;
using testing_util::kFixtures;
using testing_util::kRt;
using testing_util::Result;
using testing_util::run;

std::string tempDir(const std::string& name) {
  return testing_util::tempDir("kt_pack_", name);
}

std::string readBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A private copy of a fixture's config and weights (the test may move or damage them).
std::string copyModel(const std::string& arch, const std::string& name) {
  std::string d = tempDir(name);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(kFixtures + "/" + arch + "/" + f, d + "/" + f);
  return d;
}

// Logits of two short sequences through the plan, as the raw bytes kt-rt score writes.
std::string scoreBytes(const std::string& plan, const std::string& out) {
  Result r = run(kRt + " score " + plan + " --ids 1,5,9,14,3 --ids 7,2 --out " + out);
  EXPECT_EQ(r.code, 0) << r.output;
  return readBytes(out);
}

struct Case {
  const char* arch;
  const char* quant;
};

class PackRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(PackRoundTrip, RebuiltSidecarIsByteIdentical) {
  const Case c = GetParam();
  const std::string d = tempDir(std::string(c.arch) + "_" + c.quant);
  const std::string model = kFixtures + "/" + c.arch, plan = d + "/q.ktplan";
  const std::string quant = std::string(" --cpu-quant ") + c.quant;
  Result r = run(kCompile + " " + model + " -o " + plan + quant);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string original = readBytes(plan + ".weights");
  ASSERT_GT(original.size(), 100000u);
  const std::string logits = scoreBytes(plan, d + "/before.safetensors");
  ASSERT_FALSE(logits.empty());

  // Every packed weight records its checkpoint source.
  LoadedPlan lp = LoadedPlan::fromFile(plan);
  int packed = 0;
  for (const plan::Weight* w : *lp.root().weights())
    if (w->layout() == plan::Layout::Packed) {
      ++packed;
      ASSERT_TRUE(w->source() && w->source()->size() > 0) << w->name()->str();
    }
  EXPECT_GT(packed, 10);

  // Delete the sidecar, rebuild it, compare.
  fs::remove(plan + ".weights");
  r = run(kRt + " pack " + plan + " --threads 3");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("MiB/s, 3 threads"), std::string::npos) << r.output;
  EXPECT_TRUE(readBytes(plan + ".weights") == original) << "rebuilt sidecar differs";
  EXPECT_FALSE(fs::exists(plan + ".weights.tmp"));
  EXPECT_TRUE(scoreBytes(plan, d + "/after.safetensors") == logits) << "logits changed";

  // An existing sidecar is kept unless --force.
  expectError(run(kRt + " pack " + plan), {plan + ".weights' already exists", "--force"});
  r = run(kRt + " pack " + plan + " --force --threads 1 -q");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(readBytes(plan + ".weights") == original);

  // --pack-later writes the same plan and no sidecar (nor reads the weights); pack builds it.
  // (Same file name in another folder: the plan names its sidecar after itself.)
  fs::create_directories(d + "/later");
  const std::string later = d + "/later/q.ktplan";
  r = run(kCompile + " " + model + " -o " + later + quant + " --pack-later");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("not written: build it with `kt-rt pack`"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(later + ".weights"));
  EXPECT_TRUE(readBytes(later) == readBytes(plan)) << "--pack-later changed the plan";
  // Until packed, running it names the missing sidecar.
  expectError(run(kRt + " generate " + later + " --ids 1,2 -n 1"), {"later/q.ktplan.weights"});
  r = run(kRt + " pack " + later);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(readBytes(later + ".weights") == original);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PackRoundTrip,
                         ::testing::Values(Case{"deepseek_v2", "int4"}, Case{"deepseek_v2", "int8"},
                                           Case{"qwen3_moe", "int4"}, Case{"mixtral", "int8"}),
                         [](const auto& info) {
                           return std::string(info.param.arch) + "_" + info.param.quant;
                         });

TEST(PackErrors, MissingOrChangedCheckpoint) {
  const std::string d = copyModel("deepseek_v2", "ckpt");
  const std::string plan = d + "/q.ktplan", ckpt = d + "/model.safetensors";
  ASSERT_EQ(run(kCompile + " " + d + " -o " + plan + " --cpu-quant int4 --pack-later").code, 0);
  // Missing: the error names the checkpoint file the plan needs.
  fs::rename(ckpt, d + "/moved.safetensors");
  expectError(run(kRt + " pack " + plan),
              {"checkpoint file '", "_ckpt/model.safetensors'", "cannot be read"});
  // Changed (one byte longer): refused by size before anything is packed.
  fs::copy_file(d + "/moved.safetensors", ckpt);
  const auto size = fs::file_size(ckpt);
  std::ofstream(ckpt, std::ios::app | std::ios::binary) << 'x';
  expectError(run(kRt + " pack " + plan),
              {"_ckpt/model.safetensors' has " + std::to_string(size + 1) + " bytes",
               "compiled against " + std::to_string(size)});
  // Truncated: the same.
  fs::resize_file(ckpt, size - 100);
  expectError(run(kRt + " pack " + plan), {"has " + std::to_string(size - 100) + " bytes"});
  EXPECT_FALSE(fs::exists(plan + ".weights"));
  EXPECT_FALSE(fs::exists(plan + ".weights.tmp"));
  // Restored: packs.
  fs::resize_file(ckpt, size);
  fs::copy_file(d + "/moved.safetensors", ckpt, fs::copy_options::overwrite_existing);
  Result r = run(kRt + " pack " + plan);
  EXPECT_EQ(r.code, 0) << r.output;
}

TEST(PackErrors, PlansWithoutPackedWeightsOrSources) {
  const std::string d = tempDir("nosource");
  const std::string plain = d + "/plain.ktplan", q = d + "/q.ktplan";
  ASSERT_EQ(run(kCompile + " " + kFixtures + "/llama -o " + plain).code, 0);
  expectError(run(kRt + " pack " + plain), {"plain.ktplan", "has no packed weights"});
  expectError(run(kRt + " pack"), {"usage: kt-rt pack PLAN"});
  expectError(run(kRt + " pack " + d + "/nothing.ktplan"), {"nothing.ktplan"});

  // A plan of an older kt-compile (packed weights without Weight.source) is refused by name.
  ASSERT_EQ(run(kCompile + " " + kFixtures + "/llama -o " + q + " --cpu-quant int8").code, 0);
  std::unique_ptr<plan::PlanT> p(LoadedPlan::fromFile(q).root().UnPack());
  std::string firstPacked;
  for (auto& w : p->weights)
    if (w->layout == plan::Layout::Packed) {
      if (firstPacked.empty())
        firstPacked = w->name;
      w->source.clear();
    }
  ASSERT_FALSE(firstPacked.empty());
  compiler::writePlanFile(*p, d + "/old.ktplan");
  expectError(run(kRt + " pack " + d + "/old.ktplan"),
              {"packed weight '" + firstPacked + "' records no source segments", "recompile"});
}

// The PlanReader checks Weight.source when present: file index, bounds, byte count, layout.
TEST(PackErrors, ReaderValidatesSources) {
  const std::string d = tempDir("validate");
  const std::string q = d + "/q.ktplan";
  ASSERT_EQ(run(kCompile + " " + kFixtures + "/llama -o " + q + " --cpu-quant int8").code, 0);
  auto damaged = [&](const std::function<void(plan::PlanT&, plan::WeightT&)>& edit) {
    std::unique_ptr<plan::PlanT> p(LoadedPlan::fromFile(q).root().UnPack());
    for (auto& w : p->weights)
      if (w->layout == plan::Layout::Packed) {
        edit(*p, *w);
        break;
      }
    const std::string path = d + "/bad.ktplan";
    compiler::writePlanFile(*p, path);
    return run(kRt + " inspect " + path);
  };
  expectError(damaged([](plan::PlanT& p, plan::WeightT& w) {
                w.source[0] = plan::Segment(uint32_t(p.weight_files.size()) + 3,
                                            w.source[0].offset(), w.source[0].size());
              }),
              {"bad.ktplan: invalid plan", "source segment 0 refers to weight file"});
  expectError(damaged([](plan::PlanT& p, plan::WeightT& w) {
                const uint64_t fileSize = p.weight_files[w.source[0].file()]->size;
                w.source[0] = plan::Segment(w.source[0].file(), fileSize - 10, w.source[0].size());
              }),
              {"source segment 0", "lies outside the"});
  expectError(damaged([](plan::PlanT&, plan::WeightT& w) {
                w.source[0] =
                    plan::Segment(w.source[0].file(), w.source[0].offset(), w.source[0].size() - 2);
              }),
              {"source segments hold"});
  expectError(damaged([](plan::PlanT&, plan::WeightT& w) {
                w.source[0] = plan::Segment(w.segments[0].file(), 0, w.source[0].size());
              }),
              {"in the weight's own sidecar"});
  expectError(damaged([](plan::PlanT&, plan::WeightT& w) { w.source.push_back(w.source[0]); }),
              {"2 source segments for 1 matrices"});
  // An intact round trip through the object API still loads.
  EXPECT_EQ(damaged([](plan::PlanT&, plan::WeightT&) {}).code, 0);
}

} // namespace
