// How much memory each NUMA node of the profile has: hwloc's per-node numbers, checked against the
// machine's total (/proc/meminfo MemTotal, else sysconf). On some VMs hwloc's NUMA node reports a
// fraction of the machine (the device VM: 8.5 GiB of 128 GiB), and the partitioner would then
// refuse plans that fit easily, so the total wins whenever hwloc's nodes add up to much less.
#include "runtime/probe/Probe.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace kt::probe {

namespace {
// hwloc's nodes must cover at least this fraction of MemTotal to be believed. MemTotal is the
// physical memory less what the kernel reserved at boot, a few percent; a smaller sum is a VM or
// firmware that reports less than the guest has.
constexpr double kBelievable = 0.75;

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(1ull << 30));
  return buf;
}
} // namespace

uint64_t machineMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:")
      return uint64_t(kib * 1024);
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

std::vector<uint64_t> decideNodeMemory(const std::vector<uint64_t>& hwlocBytes,
                                       uint64_t machineBytes, std::string* note) {
  std::vector<uint64_t> out = hwlocBytes;
  note->clear();
  if (out.empty() || machineBytes == 0)
    return out; // nothing to check against: keep what hwloc said (0 = unknown)
  const double total = double(machineBytes);
  double sum = 0;
  size_t unknown = 0;
  for (uint64_t b : out) {
    sum += double(b);
    unknown += b == 0;
  }
  if (unknown == out.size()) { // hwloc knows no node's memory: split the machine evenly
    for (uint64_t& b : out)
      b = uint64_t(total / double(out.size()));
    *note = "hwloc reports no NUMA node memory: MemTotal " + gib(total) + " split over " +
            std::to_string(out.size()) + " node(s)";
    return out;
  }
  if (unknown == 0 && sum >= kBelievable * total)
    return out; // consistent (a little under MemTotal, or over it by hwloc's rounding)
  if (out.size() == 1) {
    *note = "hwloc reports " + gib(sum) + " for the only NUMA node, MemTotal is " + gib(total) +
            ": using MemTotal";
    out[0] = machineBytes;
    return out;
  }
  // Several nodes that add up to much less than the machine, or some unknown: the known nodes
  // keep their proportions, scaled so that all of them share MemTotal (unknown ones get the mean).
  double known = sum / double(out.size() - unknown);
  double scaled = sum + known * double(unknown);
  for (uint64_t& b : out)
    b = uint64_t(double(b == 0 ? known : double(b)) * total / scaled);
  *note = "hwloc's " + std::to_string(hwlocBytes.size()) + " NUMA nodes report " + gib(sum) +
          (unknown ? " (" + std::to_string(unknown) + " unknown)" : std::string()) +
          ", MemTotal is " + gib(total) + ": nodes scaled to MemTotal";
  return out;
}

} // namespace kt::probe
