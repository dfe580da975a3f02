// NUMA worker groups: the node-grouped parallel loop covers every task once with any node count,
// and a model run on a faked 2-node topology (KT_FAKE_NUMA_NODES=2: this machine's CPUs split in
// two groups, routed experts split between them) gives logits bit-identical to one node.
#include "runtime/io/Safetensors.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

using namespace kt;
using kt::testing_util::run;

namespace {

TEST(NumaPool, NodeRangesCoverEveryTaskOnce) {
  for (int nodes : {1, 2, 3}) {
    std::vector<std::vector<int>> cpus(static_cast<size_t>(nodes));
    for (int i = 0; i < nodes; ++i)
      cpus[size_t(i)].assign(size_t(1 + i % 2), -1); // 1 or 2 unpinned threads per node
    ThreadPool pool(cpus, false);
    ASSERT_EQ(pool.nodes(), nodes);
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<int64_t> counts;
      int64_t total = 0;
      for (int i = 0; i < nodes; ++i) {
        counts.push_back((trial * 7 + i * 13) % 11); // some nodes have no tasks
        total += counts.back();
      }
      std::vector<std::atomic<int>> hits(static_cast<size_t>(total));
      pool.parallelForNodes(counts, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < total; ++i)
        ASSERT_EQ(hits[size_t(i)].load(), 1) << "nodes " << nodes << " task " << i;
    }
    // Plain loops still work on a grouped pool, many times in a row (spin/sleep hand-over).
    for (int rep = 0; rep < 200; ++rep) {
      std::atomic<int64_t> sum{0};
      pool.parallelFor(1000, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          sum += i;
      });
      ASSERT_EQ(sum.load(), 999 * 1000 / 2);
    }
  }
}

TEST(NumaPool, WrongRangeCountIsAnError) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.parallelForNodes({1, 2}, [](int64_t, int64_t) {}), std::exception);
}

TEST(NumaPool, BadNumaFlagIsAnError) {
  EXPECT_THROW(makeThreadPool(1, "two"), std::exception);
  EXPECT_THROW(makeThreadPool(1, "0"), std::exception);
  EXPECT_THROW(makeThreadPool(1, "4096"), std::exception);
  EXPECT_EQ(makeThreadPool(3, "off")->size(), 3);
  EXPECT_EQ(makeThreadPool(1, "auto")->size(), 1);
  EXPECT_EQ(makeThreadPool(1, "auto")->nodes(), 1); // fewer threads than nodes: fewer groups
}

std::vector<float> logits(const std::string& out) {
  SafetensorsFile f(out);
  const TensorInfo* t = f.find("logits");
  if (!t)
    return {};
  std::vector<float> v(size_t(t->numel()));
  std::memcpy(v.data(), f.data(*t), v.size() * 4);
  return v;
}

// DeepSeek-V2 fixture (MLA + routed and shared experts), packed int4 and unpacked: 2 fake nodes
// (experts split between the two CPU groups, threads pinned) against --numa off.
TEST(NumaPool, TwoFakeNodesGiveIdenticalLogits) {
  if (std::thread::hardware_concurrency() < 2)
    GTEST_SKIP() << "needs 2 hardware threads to fake 2 nodes";
  const std::string bin = KT_BINARY_DIR, model = std::string(KT_FIXTURES_DIR) + "/hf/deepseek_v2";
  const std::string compile = bin + "/tools/kt-compile/kt-compile", rt = bin + "/tools/kt-rt/kt-rt";
  if (!std::filesystem::exists(compile) || !std::filesystem::exists(model))
    GTEST_SKIP() << "needs kt-compile and the deepseek_v2 fixture";
  const std::string d = kt::testing_util::tempDir("kt_numa_", "dsv2");
  for (std::string quant : {"", " --cpu-quant int4"}) {
    auto c = run(compile + " " + model + " -o " + d + "/p.ktplan" + quant);
    ASSERT_EQ(c.code, 0) << c.output;
    const std::string ids = " --ids 1,5,9,33,2,17,4,8,100,7 --threads 2";
    auto one = run(rt + " score " + d + "/p.ktplan" + ids + " --numa off --out " + d + "/one.st");
    ASSERT_EQ(one.code, 0) << one.output;
    auto two = run("KT_FAKE_NUMA_NODES=2 " + rt + " score " + d + "/p.ktplan" + ids +
                   " --numa auto --out " + d + "/two.st");
    ASSERT_EQ(two.code, 0) << two.output;
    std::vector<float> a = logits(d + "/one.st"), b = logits(d + "/two.st");
    ASSERT_FALSE(a.empty());
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "logits differ" << quant;
    // Asking for more nodes than the (fake) machine has is refused with the count.
    auto three = run("KT_FAKE_NUMA_NODES=2 " + rt + " score " + d + "/p.ktplan" + ids +
                     " --numa 3 --out " + d + "/x.st");
    EXPECT_NE(three.code, 0);
    EXPECT_NE(three.output.find("2 NUMA node(s)"), std::string::npos) << three.output;
  }
}

} // namespace
