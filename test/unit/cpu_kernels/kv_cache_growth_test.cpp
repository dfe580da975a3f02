// The KV cache grows geometrically while decoding token by token: each layer's arrays move (are
// copied) O(log n) times over n steps, never once per step (which made CPU decode slow down with
// the context length: every step copied every layer's whole cache), and the rows written so far
// survive every move.
#include "runtime/exec/KvCache.h"

#include <gtest/gtest.h>

#include <vector>

using namespace kt;

namespace {

// A plan with one MLA layer (latent 512, rope key 64) and one GQA layer (2 heads x 16), nothing
// else: all KvCache reads.
std::vector<uint8_t> cachePlan() {
  plan::PlanT p;
  auto mla = std::make_unique<plan::KvLayerT>();
  mla->layer = 0;
  mla->kind = plan::KvKind::Mla;
  mla->k_dim = 512;
  mla->v_dim = 64;
  p.kv_layers.push_back(std::move(mla));
  auto gqa = std::make_unique<plan::KvLayerT>();
  gqa->layer = 1;
  gqa->kind = plan::KvKind::Gqa;
  gqa->num_kv_heads = 2;
  gqa->k_dim = 16;
  gqa->v_dim = 16;
  p.kv_layers.push_back(std::move(gqa));
  flatbuffers::FlatBufferBuilder b;
  b.Finish(plan::Plan::Pack(b, &p));
  return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

} // namespace

TEST(KvCacheGrowth, TokenByTokenMovesLogarithmicallyAndKeepsRows) {
  const std::vector<uint8_t> bytes = cachePlan();
  KvCache kv(*plan::GetPlan(bytes.data()), 1);
  const int64_t steps = 2000;
  for (int layer : {0, 1}) {
    const int64_t row = kv.kRow(layer);
    int moves = 0;
    const float* last = nullptr;
    for (int64_t t = 0; t < steps; ++t) {
      float* k = kv.k(0, layer, t + 1);
      if (k != last && last)
        ++moves;
      last = k;
      for (int64_t i = 0; i < row; ++i)
        k[t * row + i] = float(t) + 0.001f * float(i);
    }
    // Doubling from one row: at most ceil(log2(2000)) = 11 moves; once per step would be 1999.
    EXPECT_LE(moves, 12) << "layer " << layer;
    const float* k = kv.k(0, layer, steps);
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t i = 0; i < row; i += 7)
        ASSERT_EQ(k[t * row + i], float(t) + 0.001f * float(i)) << "layer " << layer << " t " << t;
  }
}
