// The CUDA backend's paged KV pool (runtime/exec/cuda/GpuKvPool) on its own: page blocks laid out
// per layer, the device page table's rows (downloaded and checked against the allocator's pages),
// growth by segments that moves no page in use, restarts, the refusal past the limit (naming the
// limit, the sequences and the free pages, taking nothing), a released slot that continues, and
// the table moving when more slots are used. Skips without a GPU.
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cuda/GpuKvPool.h"
#include "runtime/support/Error.h"
#include "test/unit/cuda/CudaTestUtil.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

using namespace kt;
using kt::cudaops::GpuKvPool;

namespace {

Batch batchOf(const std::vector<SequenceChunk>& chunks) {
  Batch b;
  int64_t start = 0;
  for (SequenceChunk c : chunks) {
    c.start = start;
    start += c.len;
    b.chunks.push_back(c);
    for (int64_t i = 0; i < c.len; ++i) {
      b.ids.push_back(0);
      b.positions.push_back(int32_t(c.pos0 + i));
    }
  }
  return b;
}

std::vector<uint64_t> tableRow(const GpuKvPool& pool, int slot, int64_t entries) {
  std::vector<uint64_t> row(static_cast<size_t>(entries));
  std::string err;
  EXPECT_TRUE(cuda::synchronize(&err)) << err;
  EXPECT_TRUE(cuda::toHost(row.data(), pool.pages(slot).pages, row.size() * 8, &err)) << err;
  return row;
}

// The slot's table entries are distinct page addresses, one per page it holds, 0 past them.
void expectRow(const GpuKvPool& pool, int slot, int64_t width) {
  const std::vector<uint64_t> row = tableRow(pool, slot, width);
  const size_t held = pool.allocator().pages(slot).size();
  std::set<uint64_t> seen;
  for (size_t i = 0; i < held; ++i) {
    EXPECT_NE(row[i], 0u) << "slot " << slot << " entry " << i;
    EXPECT_EQ(row[i] % 4, 0u);
    seen.insert(row[i]);
  }
  EXPECT_EQ(seen.size(), held) << "slot " << slot << ": a page twice";
}

TEST(CudaKvPool, PagesTableGrowthAndLimits) {
  KT_REQUIRE_GPU();
  setenv("KT_KV_GROWTH_TOKENS", "4", 1); // grow by one page at least (4 positions)
  GpuKvPool pool({{3, 5, 2}, {0, 8, 8}}, 100, 4, "gpu:test");
  unsetenv("KT_KV_GROWTH_TOKENS");
  EXPECT_EQ(pool.offsets(0), std::make_pair(int64_t(0), int64_t(32)));  // 4 rows of 8, then 4 of 8
  EXPECT_EQ(pool.offsets(3), std::make_pair(int64_t(64), int64_t(84))); // 4 of 5, then 4 of 2
  EXPECT_EQ(pool.pageBytes(), uint64_t(4 * (16 + 7) * 4));
  EXPECT_THROW(pool.offsets(1), Error);
  EXPECT_EQ(pool.maxPositions(), 100);
  const auto big = [] { return GpuKvPool::Limit{1ull << 30, "the test's budget", "Test remedy."}; };

  // Prefill of two sequences (slots 0 and 2): 3 + 1 pages, the table created.
  EXPECT_TRUE(pool.prepare(batchOf({{0, 0, 10, 0}, {2, 0, 3, 0}}), big));
  EXPECT_EQ(pool.allocator().inUse(), 4);
  EXPECT_EQ(pool.allocator().capacity(), 4);
  expectRow(pool, 0, 25);
  expectRow(pool, 2, 25);
  const std::vector<uint64_t> slot0 = tableRow(pool, 0, 3);
  // Decode inside the pages held: nothing changes.
  EXPECT_FALSE(pool.prepare(batchOf({{0, 0, 1, 10}, {2, 0, 1, 3}}), big));
  EXPECT_EQ(pool.allocator().capacity(), 4);
  // Slot 0 crosses into a 4th page: the pool grows by a segment (doubling) and moves nothing.
  EXPECT_FALSE(pool.prepare(batchOf({{0, 0, 1, 12}}), big));
  EXPECT_EQ(pool.allocator().capacity(), 8);
  EXPECT_EQ(tableRow(pool, 0, 3), slot0) << "a page in use moved";
  expectRow(pool, 0, 25);
  EXPECT_NE(pool.report().find("8 pages of 4 positions: 5 in use, peak 5"), std::string::npos)
      << pool.report();

  // Past the limit: refused, nothing taken.
  const uint64_t two = 2 * pool.pageBytes();
  const auto tight = [two] { return GpuKvPool::Limit{two, "the test's budget", "Test remedy."}; };
  try {
    pool.prepare(batchOf({{1, 0, 100, 0}}), tight);
    FAIL() << "reserved past the limit";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const char* part : {"gpu:test", "KV cache is full", "slot 1 to 100", "needs 22 more page",
                             "3 free of 8", "the test's budget", "room for 2 more", "Test remedy."})
      EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  EXPECT_EQ(pool.allocator().inUse(), 5);
  EXPECT_TRUE(pool.allocator().pages(1).empty());

  // A restart (chunk at 0) returns the slot's pages; release() (KvCache::reset) too.
  EXPECT_FALSE(pool.prepare(batchOf({{0, 0, 2, 0}}), big));
  EXPECT_EQ(pool.allocator().pages(0).size(), 1u);
  pool.release(2);
  EXPECT_EQ(pool.allocator().inUse(), 1);
  try {
    pool.prepare(batchOf({{2, 0, 1, 3}}), big);
    FAIL() << "a released slot continued";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("continues at position 3"), std::string::npos) << e.what();
  }
  // Slot 9: the table (4 rows) moves; every slot's row is uploaded again.
  const std::vector<uint64_t> before = tableRow(pool, 0, 1);
  EXPECT_TRUE(pool.prepare(batchOf({{9, 0, 5, 0}, {0, 0, 1, 2}}), big));
  EXPECT_EQ(tableRow(pool, 0, 1), before);
  expectRow(pool, 9, 25);
  expectRow(pool, 0, 25);
  try { // past the model's positions (the table's width)
    pool.prepare(batchOf({{5, 0, 101, 0}}), big);
    FAIL() << "reserved past the table";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("past the KV page table's 100 positions"),
              std::string::npos)
        << e.what();
  }
}

} // namespace
