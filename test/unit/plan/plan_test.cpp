// The plan format: what the compiler side writes, the runtime side reads back identically; damaged
// plans (flipped bytes, truncation, dangling indices) are rejected with kt::Error, never a crash.
#include "compiler/plan/PlanWriter.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Crc32.h"
#include "runtime/support/Error.h"

#include <gtest/gtest.h>
#include <random>

using namespace kt;
using namespace kt::plan;

namespace {

std::unique_ptr<WeightT> makeWeight(const std::string& name, std::vector<int64_t> shape,
                                    uint64_t offset, uint16_t dev) {
  auto w = std::make_unique<WeightT>();
  w->name = name;
  w->dtype = DType::F32;
  w->shape = shape;
  uint64_t n = 4;
  for (int64_t d : shape)
    n *= uint64_t(d);
  w->segments.push_back(Segment(0, offset, n));
  w->device = dev;
  return w;
}

// A small but complete plan: embedding -> rms_norm -> attention -> moe -> lm_head.
PlanT samplePlan() {
  compiler::PlanBuilder b;
  PlanT& p = b.plan();
  p.model = std::make_unique<ModelInfoT>();
  p.model->arch = "deepseek_v2";
  p.model->vocab_size = 32;
  p.model->hidden_size = 8;
  p.model->num_layers = 1;
  p.model->max_position = 64;
  p.model->eos_ids = {2};
  p.tokenizer = std::make_unique<TokenizerBlobT>();
  p.tokenizer->tokenizer_json = "{\"model\": {}}";
  uint16_t cpu = b.device("cpu:numa0");
  uint16_t gpu = b.device("gpu:0");
  b.weightFile("/models/x/model.safetensors", 1 << 20);
  uint32_t emb = b.weight(makeWeight("model.embed_tokens.weight", {32, 8}, 100, cpu));
  uint32_t norm = b.weight(makeWeight("model.norm.weight", {8}, 2000, gpu));
  auto kv = std::make_unique<KvLayerT>();
  kv->layer = 0;
  kv->kind = KvKind::Gqa;
  kv->num_kv_heads = 2;
  kv->k_dim = 4;
  kv->v_dim = 4;
  p.kv_layers.push_back(std::move(kv));
  uint32_t ids = b.buffer("ids", DType::I32, {-1}, cpu, BufferKind::Input);
  uint32_t pos = b.buffer("positions", DType::I32, {-1}, cpu, BufferKind::Input);
  uint32_t x = b.buffer("x", DType::F32, {-1, 8}, cpu);
  uint32_t y = b.buffer("y", DType::F32, {-1, 8}, gpu);
  uint32_t logits = b.buffer("logits", DType::F32, {-1, 32}, cpu, BufferKind::Output);
  EntryPointT& ep = b.entryPoint("prefill");
  ep.inputs = {ids, pos};
  ep.outputs = {logits};
  ep.num_events = 1;
  auto s0 = std::make_unique<StepT>();
  s0->op = OpKind::Embedding;
  s0->name = "embed";
  s0->inputs = {ids};
  s0->outputs = {x};
  s0->weights = {int32_t(emb)};
  s0->signal_event = 0;
  ep.steps.push_back(std::move(s0));
  auto s1 = std::make_unique<StepT>();
  s1->op = OpKind::RmsNorm;
  s1->name = "norm";
  s1->device = gpu;
  s1->stream = 1;
  s1->wait_events = {0};
  s1->inputs = {x};
  s1->outputs = {y};
  s1->weights = {int32_t(norm)};
  RmsNormAttrsT a;
  a.eps = 1e-6;
  s1->attrs.Set(a);
  ep.steps.push_back(std::move(s1));
  auto s2 = std::make_unique<StepT>();
  s2->op = OpKind::LmHead;
  s2->name = "lm_head";
  s2->inputs = {y};
  s2->outputs = {logits};
  s2->weights = {int32_t(emb)};
  ep.steps.push_back(std::move(s2));
  return std::move(b.plan());
}

} // namespace

TEST(Plan, WrittenPlanReadsBackIdentically) {
  PlanT original = samplePlan();
  std::vector<uint8_t> bytes = compiler::serializePlan(original);
  LoadedPlan loaded = LoadedPlan::fromBytes(bytes, "memory");
  PlanT roundTrip;
  loaded.root().UnPackTo(&roundTrip);
  EXPECT_TRUE(roundTrip == original);
  EXPECT_EQ(loaded.root().version(), kPlanVersion);
  ASSERT_NE(loaded.entryPoint("prefill"), nullptr);
  EXPECT_EQ(loaded.entryPoint("prefill")->steps()->size(), 3u);
  EXPECT_EQ(loaded.entryPoint("missing"), nullptr);
}

TEST(Plan, FileRoundTrip) {
  PlanT original = samplePlan();
  std::string path = testing::TempDir() + "/sample.ktplan";
  compiler::writePlanFile(original, path);
  LoadedPlan loaded = LoadedPlan::fromFile(path);
  PlanT back;
  loaded.root().UnPackTo(&back);
  EXPECT_TRUE(back == original);
}

static std::string loadError(const std::vector<uint8_t>& bytes) {
  try {
    LoadedPlan::fromBytes(bytes, "bad.ktplan");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Plan, RejectsNonPlans) {
  EXPECT_NE(loadError({}).find("not a KT plan"), std::string::npos);
  EXPECT_NE(loadError({1, 2, 3, 4, 5, 6, 7, 8, 9}).find("not a KT plan"), std::string::npos);
}

TEST(Plan, RejectsEveryTruncation) {
  std::vector<uint8_t> bytes = compiler::serializePlan(samplePlan());
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(len));
    EXPECT_FALSE(loadError(cut).empty()) << "truncated to " << len << " bytes was accepted";
  }
}

TEST(Plan, EveryFlippedByteIsRejected) {
  std::vector<uint8_t> bytes = compiler::serializePlan(samplePlan());
  std::mt19937 rng(1234);
  for (int t = 0; t < 5000; ++t) {
    std::vector<uint8_t> bad = bytes;
    int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f)
      bad[rng() % bad.size()] ^= uint8_t(1 + rng() % 255);
    EXPECT_FALSE(loadError(bad).empty()) << "trial " << t;
  }
}

// Damage that also fixes up the checksum (a buggy writer, a hostile file): the FlatBuffers verifier
// and the validator must catch every structural problem; whatever they accept must be safe to use.
TEST(Plan, StructuralCorruptionNeverCrashes) {
  std::vector<uint8_t> bytes = compiler::serializePlan(samplePlan());
  std::mt19937 rng(99);
  int rejected = 0;
  const int trials = 20000;
  for (int t = 0; t < trials; ++t) {
    std::vector<uint8_t> bad = bytes;
    int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f)
      bad[4 + rng() % (bad.size() - 8)] ^= uint8_t(1 + rng() % 255);
    uint32_t crc = crc32(bad.data(), bad.size() - 4);
    for (int i = 0; i < 4; ++i)
      bad[bad.size() - 4 + size_t(i)] = uint8_t(crc >> (8 * i));
    try {
      LoadedPlan p = LoadedPlan::fromBytes(bad, "fuzz");
      // Accepted: a byte inside a string or a float changed. Every index is still in range (the
      // validator's promise); touch them all so sanitizers would see a mistake.
      for (const EntryPoint* ep : *p.root().entry_points())
        for (const Step* s : *ep->steps())
          for (uint32_t b : *s->inputs())
            EXPECT_LT(b, p.root().buffers()->size());
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, trials / 10);
}

static std::string semanticError(const std::function<void(PlanT&)>& damage) {
  PlanT p = samplePlan();
  damage(p);
  return loadError(compiler::serializePlan(p));
}

TEST(Plan, RejectsDanglingReferences) {
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[1]->inputs = {99};
            }).find("input buffer 99 out of range"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[0]->weights = {7};
            }).find("refers to weight 7"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.weights[0]->segments[0] = Segment(5, 0, 1024);
            }).find("weight file 5"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) { p.weights[0]->device = 9; }).find("device 9"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) { p.weights[1]->shape = {9}; }).find("need 36 bytes"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[1]->wait_events = {3};
            }).find("wait event 3"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[1]->attrs.Reset();
            }).find("attribute table"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[0]->op = OpKind(200);
            }).find("unknown op kind"),
            std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) { p.version = 99; }).find("version 99"), std::string::npos);
  EXPECT_NE(semanticError([](PlanT& p) {
              p.entry_points[0]->steps[2]->weights = {-1};
            }).find("required weight"),
            std::string::npos);
}

TEST(Plan, PlacementStrings) {
  DeviceKind k;
  int i;
  EXPECT_TRUE(compiler::parsePlacement("gpu:3", &k, &i));
  EXPECT_EQ(k, DeviceKind::GPU);
  EXPECT_EQ(i, 3);
  EXPECT_TRUE(compiler::parsePlacement("cpu:numa1", &k, &i));
  EXPECT_EQ(k, DeviceKind::CPU);
  EXPECT_TRUE(compiler::parsePlacement("disk", &k, &i));
  EXPECT_FALSE(compiler::parsePlacement("gpu:", &k, &i));
  EXPECT_FALSE(compiler::parsePlacement("tpu:0", &k, &i));
  EXPECT_FALSE(compiler::parsePlacement("cpu:0", &k, &i));
}
