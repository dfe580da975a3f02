#pragma once
// A fixed pool of worker threads with a blocking parallel-for. The caller's thread takes part, so a
// pool of N threads uses N cores.
//
// NUMA: a pool may be built over several nodes (makeNumaPool): its threads are grouped by node and
// pinned to that node's CPUs, and parallelForNodes gives each node its own task range, which that
// node's threads take first before helping (stealing from) the other nodes. On one node (or with
// --numa off) it is the plain pool, with no special case in the callers.
//
// Workers spin for a short while after a job before sleeping: a decode step issues ~100 short
// parallel loops per token, and a futex wake-up per loop cost more than the loops on a VM.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kt {

class ThreadPool {
public:
  explicit ThreadPool(int numThreads);
  // Threads grouped by node: node i gets cpusPerNode[i].size() threads (the caller's thread is the
  // first of node 0); with `pin`, thread j of node i is bound to cpusPerNode[i][j].
  ThreadPool(const std::vector<std::vector<int>>& cpusPerNode, bool pin);
  ~ThreadPool();
  int size() const { return int(workers_.size()) + 1; }
  int nodes() const { return int(threadsOfNode_.size()); }
  int threadsOfNode(int node) const { return threadsOfNode_[size_t(node)]; }

  // Splits [0, n) into chunks of at least `grain` and runs fn(begin, end) on all threads.
  void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
  // Tasks [start[i], start[i] + counts[i]) belong to node i (start = prefix sums of counts). Each
  // thread runs its own node's tasks first, one at a time, then helps the other nodes.
  // counts.size() must equal nodes().
  void parallelForNodes(const std::vector<int64_t>& counts,
                        const std::function<void(int64_t, int64_t)>& fn);

private:
  struct Range {
    std::atomic<int64_t> next{0};
    int64_t end = 0, chunk = 1;
  };
  void start(int nodes);
  void workerLoop(int tid, int node, int cpu);
  void runChunks(int node);
  void dispatch(const std::function<void(int64_t, int64_t)>& fn);

  std::vector<std::thread> workers_;
  std::vector<int> threadsOfNode_;
  std::unique_ptr<Range[]> ranges_; // one per node (parallelFor uses ranges_[0] only)
  int activeRanges_ = 1;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0}; // workers still in the current job
  int sleeping_ = 0;            // guarded by mu_
  std::atomic<bool> stop_{false};
};

// Number of hardware threads, at least 1.
int hardwareThreads();

// --numa: "auto" (every NUMA node of the machine), "off" (one unpinned pool), or a node count N
// (the first N nodes). `threads` <= 0: all hardware threads of the chosen nodes; otherwise spread
// over the nodes in proportion to their CPUs. Throws kt::Error on a bad --numa value.
std::unique_ptr<ThreadPool> makeThreadPool(int threads, const std::string& numa);

} // namespace kt
