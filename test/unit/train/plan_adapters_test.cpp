// The plan validator's checks of LoRA adapters (Plan.adapters, Step.adapters): a plan whose
// adapters do not fit its weights or steps is refused at load with an error naming the culprit.
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Crc32.h"

#include <gtest/gtest.h>

#include <functional>

namespace kt::plan {
namespace {

std::unique_ptr<WeightT> weight(const std::string& name, std::vector<int64_t> shape) {
  auto w = std::make_unique<WeightT>();
  w->name = name;
  w->dtype = DType::F32;
  w->shape = shape;
  uint64_t n = 4;
  for (int64_t d : shape)
    n *= uint64_t(d);
  w->segments.push_back(Segment(0, 0, n));
  return w;
}

std::unique_ptr<AdapterTargetT> target(uint32_t w, int64_t off, int64_t rows) {
  auto t = std::make_unique<AdapterTargetT>();
  t->weight = w;
  t->row_offset = off;
  t->rows = rows;
  return t;
}

// One linear step on q [3, 5] with a Linear adapter (r 2).
PlanT basePlan() {
  PlanT p;
  p.version = kPlanVersion;
  p.model = std::make_unique<ModelInfoT>();
  p.model->vocab_size = 8;
  p.model->hidden_size = 5;
  p.model->max_position = 16;
  auto dev = std::make_unique<DeviceT>();
  dev->name = "cpu:numa0";
  p.devices.push_back(std::move(dev));
  auto f = std::make_unique<WeightFileT>();
  f->path = "w.safetensors";
  f->size = 1 << 16;
  p.weight_files.push_back(std::move(f));
  p.weights.push_back(weight("q.weight", {3, 5}));
  p.weights.push_back(weight("experts.gate", {2, 4, 5}));
  for (const char* n : {"ids", "positions", "x", "y"}) {
    auto b = std::make_unique<BufferT>();
    b->name = n;
    b->dtype = DType::F32;
    b->shape = {-1, 5};
    p.buffers.push_back(std::move(b));
  }
  auto a = std::make_unique<AdapterT>();
  a->name = "base_model.model.q_proj";
  a->r = 2;
  a->alpha = 4;
  a->in_features = 5;
  a->out_features = 3;
  a->targets.push_back(target(0, 0, 3));
  p.adapters.push_back(std::move(a));
  auto ep = std::make_unique<EntryPointT>();
  ep->name = "train_step";
  ep->inputs = {0, 1};
  ep->outputs = {3};
  auto s = std::make_unique<StepT>();
  s->op = OpKind::Linear;
  s->name = "layers.0.q";
  s->inputs = {2};
  s->outputs = {3};
  s->weights = {0, -1};
  s->adapters = {0, -1};
  ep->steps.push_back(std::move(s));
  p.entry_points.push_back(std::move(ep));
  return p;
}

// As kt-compile writes plans: size-prefixed FlatBuffer, then the CRC-32 of everything before it.
std::vector<uint8_t> serialize(const PlanT& p) {
  flatbuffers::FlatBufferBuilder fb;
  FinishSizePrefixedPlanBuffer(fb, Plan::Pack(fb, &p));
  std::vector<uint8_t> bytes(fb.GetBufferPointer(), fb.GetBufferPointer() + fb.GetSize());
  const uint32_t crc = crc32(bytes.data(), bytes.size());
  for (int i = 0; i < 4; ++i)
    bytes.push_back(uint8_t(crc >> (8 * i)));
  return bytes;
}

void expectRejected(const std::function<void(PlanT&)>& damage, const std::string& needle) {
  PlanT p = basePlan();
  damage(p);
  try {
    LoadedPlan::fromBytes(serialize(p), "t.ktplan");
    ADD_FAILURE() << "accepted; expected '" << needle << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(PlanAdapters, ValidPlanLoads) {
  LoadedPlan p = LoadedPlan::fromBytes(serialize(basePlan()), "t.ktplan");
  ASSERT_EQ(p.root().adapters()->size(), 1u);
}

TEST(PlanAdapters, BadAdaptersAreRefusedWithTheirName) {
  expectRejected([](PlanT& p) { p.adapters[0]->r = 0; },
                 "adapter 0 (base_model.model.q_proj) has rank 0");
  expectRejected([](PlanT& p) { p.adapters[0]->alpha = 0; }, "alpha");
  expectRejected([](PlanT& p) { p.adapters[0]->targets[0]->weight = 9; },
                 "target 0 refers to weight 9 of 2");
  expectRejected([](PlanT& p) { p.adapters[0]->in_features = 4; }, "has 5 input features");
  expectRejected(
      [](PlanT& p) {
        p.adapters[0]->out_features = 4;
        p.adapters[0]->targets[0]->rows = 4;
      },
      "do not fit weight q.weight (3 rows)");
  expectRejected([](PlanT& p) { p.adapters[0]->out_features = 6; }, "cover 3 of its 6");
  expectRejected([](PlanT& p) { p.adapters[0]->targets.clear(); }, "has no targets");
  expectRejected([](PlanT& p) { p.adapters[0]->init_a = 1; }, "init_a weight has 40 values");
  expectRejected(
      [](PlanT& p) {
        p.adapters[0]->layout = AdapterLayout::ExpertsFused;
        p.adapters[0]->num_experts = 2;
      },
      "is not a stack of 2 expert matrices");
}

TEST(PlanAdapters, BadStepAdaptersAreRefusedWithTheStep) {
  auto step = [](PlanT& p) -> StepT& { return *p.entry_points[0]->steps[0]; };
  expectRejected([&](PlanT& p) { step(p).adapters = {0}; }, "lists 1 adapters for 2 weight slots");
  expectRejected(
      [&](PlanT& p) {
        step(p).adapters = {3, -1};
      },
      "(layers.0.q): slot weight refers to adapter 3 of 1");
  expectRejected(
      [&](PlanT& p) {
        step(p).weights = {1, -1};
      },
      "slot weight (weight 1) is not a target of adapter base_model.model.q_proj");
}

} // namespace
} // namespace kt::plan
