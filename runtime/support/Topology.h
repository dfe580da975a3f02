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
const Topology& machineTopology();

} // namespace kt
