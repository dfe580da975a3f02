#include "runtime/support/Topology.h"

#include <cpuid.h>
#include <fstream>
#include <hwloc.h>
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
    t.numa.push_back({0, t.cores, t.threads, 0});
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
    t.numa.push_back(node);
  }
  if (t.numa.empty())
    t.numa.push_back({0, t.cores, t.threads, 0});
  hwloc_topology_destroy(topo);
  return t;
}

} // namespace

const Topology& machineTopology() {
  static const Topology t = readTopology();
  return t;
}

} // namespace kt
