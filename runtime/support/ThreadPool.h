#pragma once
// A fixed pool of worker threads with a blocking parallel-for. The caller's thread takes part, so a
// pool of N threads uses N cores. (NUMA-aware per-node pools come with the fast CPU kernels.)
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kt {

class ThreadPool {
public:
  explicit ThreadPool(int numThreads);
  ~ThreadPool();
  int size() const { return int(workers_.size()) + 1; }

  // Splits [0, n) into chunks of at least `grain` and runs fn(begin, end) on all threads.
  void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

private:
  void workerLoop();
  void runChunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0, chunk_ = 0, next_ = 0;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// Number of hardware threads, at least 1.
int hardwareThreads();

} // namespace kt
