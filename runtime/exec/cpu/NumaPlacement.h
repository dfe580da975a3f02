#pragma once
// Which NUMA node owns which routed expert, and binding the experts' weight pages to their node.
// The expert set of each MoE layer is split into contiguous blocks, one per node (no replication:
// each expert's bytes live once, on the node whose threads multiply by them). Shared experts and
// every other weight stay where the OS put them; their row blocks are spread over all nodes.
#include <cstdint>

namespace kt {

class LoadedPlan;
class WeightStore;

// Node of expert e of numExperts on a pool of `nodes` nodes.
inline int expertNode(int64_t e, int64_t numExperts, int nodes) {
  return nodes <= 1 || numExperts <= 0 ? 0 : int(e * nodes / numExperts);
}

// Binds every routed expert's weight segments (gate/up/down of each MoE step) to its node.
// Returns the bytes bound (0 on one node, with fake nodes, or where the OS refuses).
uint64_t bindExpertsToNodes(const LoadedPlan& plan, const WeightStore& weights, int nodes);

} // namespace kt
