#include "runtime/support/Topology.h"

#include <cpuid.h>
#include <cstdlib>
#include <fstream>
#include <hwloc.h>
#include <mutex>
#include <thread>

namespace kt {

namespace {

void detectIsa(Topology& t) {
  __builtin_cpu_init();
  t.avx2 = __builtin_cpu_supports("avx2");
  t.avx512f = __builtin_cpu_supports("avx512f");
  unsigned a, b, c, d;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
    t.avx512bf16 = (a >> 5) & 1;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    t.avx512vnni = (c >> 11) & 1;
    t.amxBf16 = (d >> 22) & 1;
    t.amxInt8 = (d >> 25) & 1;
  }
}

std::string cpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos)
        return line.substr(colon + 2);
    }
  return "unknown CPU";
}

Topology readTopology() {
  Topology t;
  t.cpuModel = cpuModelName();
  detectIsa(t);
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
    t.cores = t.threads = int(std::thread::hardware_concurrency());
    NumaNode only;
    only.cores = t.cores;
    only.threads = t.threads;
    t.numa.push_back(only);
    return t;
  }
  t.packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
  t.cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
  t.threads = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  if (hwloc_obj_t l2 = hwloc_get_obj_by_type(topo, HWLOC_OBJ_L2CACHE, 0))
    t.l2Bytes = l2->attr->cache.size;
  if (hwloc_obj_t l3 = hwloc_get_obj_by_type(topo, HWLOC_OBJ_L3CACHE, 0))
    t.l3Bytes = l3->attr->cache.size;
  int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < nodes; ++i) {
    hwloc_obj_t n = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, unsigned(i));
    NumaNode node;
    node.index = int(n->os_index);
    node.memoryBytes = n->attr ? n->attr->numanode.local_memory : 0;
    node.cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, n->cpuset, HWLOC_OBJ_CORE);
    node.threads = hwloc_get_nbobjs_inside_cpuset_by_type(topo, n->cpuset, HWLOC_OBJ_PU);
    unsigned cpu;
    hwloc_bitmap_foreach_begin(cpu, n->cpuset) node.cpus.push_back(int(cpu));
    hwloc_bitmap_foreach_end();
    t.numa.push_back(node);
  }
  if (t.numa.empty())
    t.numa.push_back({0, t.cores, t.threads, 0, {}, false});
  hwloc_topology_destroy(topo);
  return t;
}

// KT_FAKE_NUMA_NODES=N: N nodes over the machine's CPUs (node i: CPUs [i*P/N, (i+1)*P/N)).
void applyFakeNodes(Topology& t) {
  const char* e = std::getenv("KT_FAKE_NUMA_NODES");
  if (!e || !*e)
    return;
  const int n = std::atoi(e);
  std::vector<int> cpus;
  for (const NumaNode& node : t.numa)
    cpus.insert(cpus.end(), node.cpus.begin(), node.cpus.end());
  if (cpus.empty())
    for (int i = 0; i < std::max(1, t.threads); ++i)
      cpus.push_back(i);
  if (n < 1 || size_t(n) > cpus.size())
    return; // ignored: cannot give every fake node a CPU
  std::vector<NumaNode> nodes;
  for (int i = 0; i < n; ++i) {
    NumaNode node;
    node.index = i;
    node.cpus.assign(cpus.begin() + long(cpus.size() * size_t(i) / size_t(n)),
                     cpus.begin() + long(cpus.size() * size_t(i + 1) / size_t(n)));
    node.threads = node.cores = int(node.cpus.size());
    node.fake = true;
    nodes.push_back(node);
  }
  t.numa = nodes;
}

// hwloc handle kept for memory binding (created on first use).
hwloc_topology_t bindingTopology() {
  static hwloc_topology_t topo = [] {
    hwloc_topology_t h = nullptr;
    if (hwloc_topology_init(&h) != 0 || hwloc_topology_load(h) != 0)
      return hwloc_topology_t(nullptr);
    return h;
  }();
  return topo;
}

} // namespace

const Topology& machineTopology() {
  static const Topology t = [] {
    Topology r = readTopology();
    applyFakeNodes(r);
    return r;
  }();
  return t;
}

bool bindMemoryToNode(const void* addr, size_t bytes, int node) {
  const Topology& t = machineTopology();
  if (t.numa.size() < 2 || node < 0 || size_t(node) >= t.numa.size() || t.numa[size_t(node)].fake ||
      bytes == 0)
    return false;
  hwloc_topology_t topo = bindingTopology();
  if (!topo)
    return false;
  hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(topo, unsigned(t.numa[size_t(node)].index));
  if (!obj)
    return false;
  // Whole pages only: the range's first and last pages may hold a neighbour's bytes, which then
  // follow this node (harmless).
  const uintptr_t page = 4096, a = reinterpret_cast<uintptr_t>(addr) & ~(page - 1);
  const size_t len = (reinterpret_cast<uintptr_t>(addr) + bytes - a + page - 1) & ~(page - 1);
  return hwloc_set_area_membind(topo, reinterpret_cast<const void*>(a), len, obj->nodeset,
                                HWLOC_MEMBIND_BIND,
                                HWLOC_MEMBIND_MIGRATE | HWLOC_MEMBIND_BYNODESET) == 0;
}

} // namespace kt
