#include "runtime/exec/cpu/NumaPlacement.h"

#include "runtime/exec/WeightStore.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Topology.h"

#include <set>

namespace kt {

uint64_t bindExpertsToNodes(const LoadedPlan& plan, const WeightStore& weights, int nodes) {
  if (nodes <= 1)
    return 0;
  uint64_t bound = 0;
  std::set<int32_t> done; // a weight shared by prefill and decode steps is bound once
  for (const plan::EntryPoint* ep : *plan.root().entry_points())
    for (const plan::Step* s : *ep->steps()) {
      if (s->op() != plan::OpKind::Moe || !s->weights())
        continue;
      const int64_t E = s->attrs_as_MoeAttrs()->num_experts();
      for (int slot : {plan::slots::Gate, plan::slots::Up, plan::slots::Down}) {
        const int32_t id = s->weights()->Get(uint32_t(slot));
        if (id < 0 || !done.insert(id).second)
          continue;
        auto ranges = weights.byteRanges(id);
        if (int64_t(ranges.size()) == E) { // one segment per expert
          for (int64_t e = 0; e < E; ++e)
            if (bindMemoryToNode(ranges[size_t(e)].first, ranges[size_t(e)].second,
                                 expertNode(e, E, nodes)))
              bound += ranges[size_t(e)].second;
        } else if (ranges.size() == 1) { // one [E, ...] block: experts are equal slices
          const size_t per = ranges[0].second / size_t(E);
          for (int64_t e = 0; e < E; ++e)
            if (bindMemoryToNode(ranges[0].first + size_t(e) * per, per, expertNode(e, E, nodes)))
              bound += per;
        }
      }
    }
  return bound;
}

} // namespace kt
