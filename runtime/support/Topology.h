#pragma once
// The machine as hwloc sees it: NUMA nodes with their cores and memory, caches, and the SIMD
// extensions the CPU offers (for kernel dispatch and the hardware profile).
#include <cstdint>
#include <string>
#include <vector>

namespace kt {

struct NumaNode {
  int index = 0;
  int cores = 0;
  int threads = 0;
  uint64_t memoryBytes = 0;
  std::vector<int> cpus; // OS indexes of its hardware threads (for pinning)
  bool fake = false;     // made by KT_FAKE_NUMA_NODES: no memory of its own to bind to
};

struct Topology {
  std::string cpuModel;
  int packages = 0, cores = 0, threads = 0;
  uint64_t l2Bytes = 0, l3Bytes = 0; // per cache instance
  std::vector<NumaNode> numa;
  bool avx2 = false, avx512f = false, avx512bf16 = false, avx512vnni = false, amxBf16 = false,
       amxInt8 = false;
};

// Reads the topology once; falls back to one node with hardware_concurrency() cores if hwloc fails.
// KT_FAKE_NUMA_NODES=N (testing): the machine's hardware threads split into N nodes of consecutive
// CPUs, all sharing the real memory (binding to them is a no-op).
const Topology& machineTopology();

// Binds the pages of [addr, addr + bytes) to NUMA node `node` of machineTopology() (moving pages
// already there), so the threads of that node read them locally. Returns false when nothing was
// done: one node, a fake node, or the OS refused (the data stays where it is; still correct).
bool bindMemoryToNode(const void* addr, size_t bytes, int node);

} // namespace kt
