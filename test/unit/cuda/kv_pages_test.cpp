// The paged KV cache's page bookkeeping (runtime/exec/KvPages.h), which the CUDA backend's pool
// (runtime/exec/cuda/GpuKvPool) hands out: plain C++, runs in every build. Growth page by page,
// pages returned on a restart or a rewind, the refusal when the pool is full (naming the slot,
// the positions and the free pages, and taking nothing), and several slots interleaved at random
// against a simple model of which positions each slot holds. And how the backend that owns the
// pages learns of a slot's end: KvCache's listener (reset, destruction; a copy tells nobody).
#include "runtime/exec/KvCache.h"
#include "runtime/exec/KvPages.h"
#include "runtime/support/Error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

using kt::KvCache;
using kt::KvPageAllocator;

namespace {

// Every page is held by at most one slot or free, exactly once.
void expectConsistent(const KvPageAllocator& a) {
  std::multiset<int32_t> seen;
  for (int s = 0; s < a.slots(); ++s)
    for (int32_t p : a.pages(s))
      seen.insert(p);
  EXPECT_EQ(int64_t(seen.size()), a.inUse());
  EXPECT_EQ(std::set<int32_t>(seen.begin(), seen.end()).size(), seen.size()) << "a page twice";
  for (int32_t p : seen) {
    EXPECT_GE(p, 0);
    EXPECT_LT(p, a.capacity());
  }
}

TEST(KvPages, GrowsPageByPage) {
  KvPageAllocator a(16);
  a.addPages(4);
  EXPECT_EQ(a.freePages(), 4);
  a.reserve(0, 1);
  EXPECT_EQ(a.pages(0).size(), 1u);
  EXPECT_EQ(a.heldTokens(0), 16);
  a.reserve(0, 16); // still one page
  EXPECT_EQ(a.pages(0).size(), 1u);
  a.reserve(0, 17); // the 17th position opens a second page
  EXPECT_EQ(a.pages(0).size(), 2u);
  EXPECT_EQ(a.shortfall(0, 64), 2);
  EXPECT_EQ(a.shortfall(0, 65), 3);
  a.reserve(0, 48);
  EXPECT_EQ(a.pages(0), (std::vector<int32_t>{0, 1, 2})); // lowest pages first
  EXPECT_EQ(a.inUse(), 3);
  EXPECT_EQ(a.peakInUse(), 3);
  a.reserve(0, 10); // never shrinks here
  EXPECT_EQ(a.pages(0).size(), 3u);
  expectConsistent(a);
}

TEST(KvPages, RestartAndRewindReturnPages) {
  KvPageAllocator a(4);
  a.addPages(8);
  a.reserve(2, 13); // 4 pages
  a.reserve(0, 5);  // 2 pages
  EXPECT_EQ(a.inUse(), 6);
  a.truncate(2, 6); // rewound to 6 positions: 2 pages kept
  EXPECT_EQ(a.pages(2).size(), 2u);
  EXPECT_EQ(a.inUse(), 4);
  a.release(2);
  EXPECT_TRUE(a.pages(2).empty());
  EXPECT_EQ(a.inUse(), 2);
  EXPECT_EQ(a.peakInUse(), 6);
  a.release(7); // a slot never seen: nothing to do
  a.release(-1);
  // A restarted slot gets pages again (the ones just returned are reused).
  a.reserve(2, 8);
  EXPECT_EQ(a.pages(2).size(), 2u);
  expectConsistent(a);
}

TEST(KvPages, FullPoolRefusesAndTakesNothing) {
  KvPageAllocator a(16);
  a.addPages(3);
  a.reserve(0, 32);
  try {
    a.reserve(1, 33); // 3 pages, 1 free
    FAIL() << "reserved past the pool";
  } catch (const kt::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("slot 1"), std::string::npos) << m;
    EXPECT_NE(m.find("33 positions"), std::string::npos) << m;
    EXPECT_NE(m.find("only 1 of 3 are free"), std::string::npos) << m;
  }
  EXPECT_TRUE(a.pages(1).empty()) << "a refused reservation took pages";
  EXPECT_EQ(a.freePages(), 1);
  a.addPages(2); // the pool grew: now it fits
  a.reserve(1, 33);
  EXPECT_EQ(a.pages(1).size(), 3u);
  EXPECT_EQ(a.freePages(), 0);
  EXPECT_THROW(a.reserve(-2, 1), kt::Error);
  EXPECT_THROW(KvPageAllocator(0), kt::Error);
  EXPECT_THROW(a.addPages(-1), kt::Error);
  expectConsistent(a);
}

TEST(KvPages, SlotsInterleavedAtRandom) {
  std::mt19937 rng(7);
  for (int64_t P : {1, 3, 16, 64}) {
    KvPageAllocator a(P);
    a.addPages(5);
    std::vector<int64_t> len(6, 0); // positions each slot should hold
    for (int step = 0; step < 3000; ++step) {
      const int s = int(rng() % len.size());
      const int what = int(rng() % 10);
      if (what == 0) {
        len[size_t(s)] = 0;
        a.release(s);
      } else if (what == 1) {
        len[size_t(s)] = int64_t(rng() % (len[size_t(s)] + 1));
        a.truncate(s, len[size_t(s)]);
      } else {
        const int64_t want = len[size_t(s)] + 1 + int64_t(rng() % 9);
        if (a.shortfall(s, want) > a.freePages())
          a.addPages(a.shortfall(s, want) - a.freePages() + int64_t(rng() % 3));
        a.reserve(s, want);
        len[size_t(s)] = want;
      }
      for (size_t i = 0; i < len.size(); ++i)
        ASSERT_EQ(int64_t(a.pages(int(i)).size()), a.pagesFor(len[i]))
            << "P " << P << " step " << step << " slot " << i;
    }
    expectConsistent(a);
    int64_t inUse = 0;
    for (int64_t l : len)
      inUse += a.pagesFor(l);
    EXPECT_EQ(a.inUse(), inUse);
    EXPECT_GE(a.peakInUse(), a.inUse());
    EXPECT_LE(a.peakInUse(), a.capacity());
  }
}

// KvCache tells its listener when a slot's positions are dropped: reset(slot) that slot,
// destruction every slot; a copy has no listener; a listener that is gone is not called.
struct Recorder : kt::KvSlotListener {
  std::vector<int> released;
  void slotReleased(int slot) override { released.push_back(slot); }
};

std::vector<uint8_t> onePlanLayer() {
  kt::plan::PlanT p;
  auto gqa = std::make_unique<kt::plan::KvLayerT>();
  gqa->layer = 0;
  gqa->kind = kt::plan::KvKind::Gqa;
  gqa->num_kv_heads = 1;
  gqa->k_dim = 4;
  gqa->v_dim = 4;
  p.kv_layers.push_back(std::move(gqa));
  flatbuffers::FlatBufferBuilder b;
  b.Finish(kt::plan::Plan::Pack(b, &p));
  return std::vector<uint8_t>(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
}

TEST(KvPages, KvCacheTellsItsListenerOfReleasedSlots) {
  const std::vector<uint8_t> bytes = onePlanLayer();
  const kt::plan::Plan& plan = *kt::plan::GetPlan(bytes.data());
  auto rec = std::make_shared<Recorder>();
  {
    KvCache kv(plan, 3);
    kv.listen(rec);
    kv.setLength(1, 5);
    kv.setLength(1, 2); // a rewind is not a release (the backend trims at the next run)
    EXPECT_TRUE(rec->released.empty());
    kv.reset(1);
    EXPECT_EQ(rec->released, std::vector<int>{1});
    EXPECT_EQ(kv.length(1), 0);
    {
      KvCache copy(kv); // tells nobody when it goes
      EXPECT_EQ(copy.numSlots(), 3);
    }
    EXPECT_EQ(rec->released, std::vector<int>{1});
  }
  EXPECT_EQ(rec->released, (std::vector<int>{1, 0, 1, 2})) << "destruction releases every slot";
  // A listener that is gone is not called.
  KvCache kv(plan, 2);
  {
    auto gone = std::make_shared<Recorder>();
    kv.listen(gone);
  }
  kv.reset(0);
  kv.listen(nullptr);
  kv.reset(1);
}

} // namespace
