#include "runtime/support/ThreadPool.h"

#include "runtime/support/Error.h"
#include "runtime/support/Topology.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace kt {

namespace {
// How long an idle worker polls for the next job before sleeping on the condition variable:
// 50 us, or KT_POOL_SPIN_US. A hybrid plan's CPU experts wait a GPU phase (~0.1-0.3 ms of eager
// launches a layer) between their parallel regions, longer than the default spin, so each layer
// may start with a wake-up of every worker; the variable lets that be measured (docs/cost-model.md,
// eighth device run: ~0.19 ms a layer of the hybrids' decode is not in the model).
std::chrono::microseconds spinTime() {
  static const std::chrono::microseconds spin = [] {
    const char* v = std::getenv("KT_POOL_SPIN_US");
    const long us = v ? std::strtol(v, nullptr, 10) : 50;
    return std::chrono::microseconds(std::clamp(us, 0L, 1000000L));
  }();
  return spin;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

void pinToCpu(int cpu) {
#if defined(__linux__)
  if (cpu < 0)
    return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set); // best effort (cgroups may refuse)
#else
  (void)cpu;
#endif
}
} // namespace

int hardwareThreads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int numThreads) {
  threadsOfNode_ = {std::max(1, numThreads)};
  start(1);
  for (int i = 1; i < threadsOfNode_[0]; ++i)
    workers_.emplace_back([this, i] { workerLoop(i, 0, -1); });
}

ThreadPool::ThreadPool(const std::vector<std::vector<int>>& cpusPerNode, bool pin) {
  for (const auto& cpus : cpusPerNode)
    threadsOfNode_.push_back(std::max<int>(1, int(cpus.size())));
  if (threadsOfNode_.empty())
    threadsOfNode_ = {1};
  start(nodes());
  if (pin && !cpusPerNode.empty() && !cpusPerNode[0].empty())
    pinToCpu(cpusPerNode[0][0]); // the caller's thread
  int tid = 1;
  for (int node = 0; node < nodes(); ++node)
    for (int j = node == 0 ? 1 : 0; j < threadsOfNode_[size_t(node)]; ++j, ++tid) {
      const int cpu = pin && size_t(j) < cpusPerNode[size_t(node)].size()
                          ? cpusPerNode[size_t(node)][size_t(j)]
                          : -1;
      workers_.emplace_back([this, tid, node, cpu] { workerLoop(tid, node, cpu); });
    }
}

void ThreadPool::start(int nodes) {
  ranges_ = std::make_unique<Range[]>(size_t(nodes));
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_)
    t.join();
}

// Own node's range first, then the others in order (work stealing at chunk granularity).
void ThreadPool::runChunks(int node) {
  for (int i = 0; i < activeRanges_; ++i) {
    Range& r = ranges_[size_t((node + i) % activeRanges_)];
    for (;;) {
      const int64_t begin = r.next.fetch_add(r.chunk, std::memory_order_relaxed);
      if (begin >= r.end)
        break;
      (*job_)(begin, std::min(r.end, begin + r.chunk));
    }
  }
}

void ThreadPool::workerLoop(int tid, int node, int cpu) {
  (void)tid;
  pinToCpu(cpu);
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      const auto until = std::chrono::steady_clock::now() + spinTime();
      for (int spins = 0; (g = generation_.load(std::memory_order_acquire)) == seen; ++spins) {
        if (stop_.load(std::memory_order_relaxed))
          return;
        cpuRelax();
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until)
          break;
      }
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleeping_;
      wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      --sleeping_;
      if (stop_)
        return;
      g = generation_.load();
    }
    seen = g;
    runChunks(node);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_all();
    }
  }
}

// Publishes the ranges already set up in ranges_[0..activeRanges_), runs the caller's share and
// waits for every worker to leave the job.
void ThreadPool::dispatch(const std::function<void(int64_t, int64_t)>& fn) {
  job_ = &fn;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
    wake = sleeping_ > 0;
  }
  if (wake)
    wake_.notify_all();
  runChunks(0);
  const auto until = std::chrono::steady_clock::now() + spinTime();
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    cpuRelax();
    if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [&] { return pending_.load() == 0; });
      break;
    }
  }
  job_ = nullptr;
}

void ThreadPool::parallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0)
    return;
  const int64_t threads = size();
  if (threads == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balances uneven rows without much contention.
  ranges_[0].chunk = std::max<int64_t>(grain, (n + threads * 4 - 1) / (threads * 4));
  ranges_[0].end = n;
  ranges_[0].next.store(0, std::memory_order_relaxed);
  activeRanges_ = 1;
  dispatch(fn);
}

void ThreadPool::parallelForNodes(const std::vector<int64_t>& counts,
                                  const std::function<void(int64_t, int64_t)>& fn) {
  if (int(counts.size()) != nodes())
    throw Error("parallelForNodes: " + std::to_string(counts.size()) + " task ranges for " +
                std::to_string(nodes()) + " nodes");
  int64_t total = 0;
  for (int64_t c : counts)
    total += c;
  if (total <= 0)
    return;
  if (size() == 1) {
    fn(0, total);
    return;
  }
  int64_t begin = 0;
  for (int i = 0; i < nodes(); ++i) {
    ranges_[size_t(i)].next.store(begin, std::memory_order_relaxed);
    ranges_[size_t(i)].end = begin + counts[size_t(i)];
    ranges_[size_t(i)].chunk = 1;
    begin += counts[size_t(i)];
  }
  activeRanges_ = nodes();
  dispatch(fn);
}

std::unique_ptr<ThreadPool> makeThreadPool(int threads, const std::string& numa) {
  const Topology& topo = machineTopology();
  int want;
  if (numa == "off")
    want = 0;
  else if (numa == "auto" || numa.empty())
    want = int(topo.numa.size());
  else {
    char* end = nullptr;
    long v = std::strtol(numa.c_str(), &end, 10);
    if (!end || *end || v < 1)
      throw Error("--numa must be auto, off or a node count >= 1, got '" + numa + "'");
    if (v > long(topo.numa.size()))
      throw Error("--numa " + numa + ": this machine has " + std::to_string(topo.numa.size()) +
                  " NUMA node(s)");
    want = int(v);
  }
  if (threads > 0 && threads < want) // every node group needs a thread of its own
    want = threads;
  if (want == 0)
    return std::make_unique<ThreadPool>(threads > 0 ? threads : hardwareThreads());
  // CPUs of the chosen nodes; `threads` spread over them in proportion to their CPU counts.
  std::vector<std::vector<int>> cpus;
  size_t all = 0;
  for (int i = 0; i < want; ++i) {
    cpus.push_back(topo.numa[size_t(i)].cpus);
    if (cpus.back().empty()) // hwloc gave no CPU list: unpinned threads
      cpus.back().assign(size_t(std::max(1, topo.numa[size_t(i)].threads)), -1);
    all += cpus.back().size();
  }
  if (threads > 0 && size_t(threads) < all) {
    std::vector<std::vector<int>> cut(cpus.size());
    int given = 0;
    for (size_t i = 0; i < cpus.size(); ++i) {
      size_t share = std::max<size_t>(1, (cpus[i].size() * size_t(threads) + all / 2) /
                                             all); // at least one per node
      if (i + 1 == cpus.size())
        share = size_t(std::max(1, threads - given));
      share = std::min(share, cpus[i].size());
      cut[i].assign(cpus[i].begin(), cpus[i].begin() + long(share));
      given += int(share);
    }
    cpus = cut;
  } else if (threads > 0 && size_t(threads) > all) {
    // More threads than CPUs: the extra ones go unpinned to node 0 (oversubscription is the
    // user's choice).
    for (size_t i = all; i < size_t(threads); ++i)
      cpus[0].push_back(-1);
  }
  // Pinning keeps a node's threads next to its memory; on one node it only takes the scheduler's
  // freedom away (on a shared VM a pinned thread can wait behind another process), so it is on
  // for multi-node pools. KT_PIN=1 / KT_PIN=0 force it either way.
  bool pin = cpus.size() > 1;
  if (const char* e = std::getenv("KT_PIN"); e && *e)
    pin = *e != '0';
  return std::make_unique<ThreadPool>(cpus, pin);
}

} // namespace kt
