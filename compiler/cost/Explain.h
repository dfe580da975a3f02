#pragma once
// --explain: the partition and its predicted speed, as a table for people and as JSON for tools.
// Per layer and op group (attention, dense mlp, router + shared experts, routed experts with their
// split over devices): the device, the bytes held, the predicted time in one decode step and in one
// prefill of P tokens; then per device totals against its budget; then predicted tokens/second.
#include "compiler/cost/HardwareProfile.h"
#include "compiler/cost/ModelGraph.h"
#include "compiler/cost/Partitioner.h"

#include <string>

namespace kt::cost {

std::string explainText(const ModelGraph& g, const HardwareProfile& profile,
                        const PartitionOptions& options, const PartitionResult& result);

std::string explainJson(const ModelGraph& g, const HardwareProfile& profile,
                        const PartitionOptions& options, const PartitionResult& result);

} // namespace kt::cost
