#pragma once
// The "route.<layer>" tap of a MoE step: the experts each token chose (i32 [T, K], row t = token
// t's top-k in the router's order). Both the CPU and the CUDA MoE ops report it when the caller
// asked for taps, so kt-tune can count expert activations without a second router.
#include "runtime/exec/OpContext.h"

#include <string>

namespace kt {

// The tap's name for a MoE step: its MoeAttrs.layer, or the step's layer for plans written before
// MoeAttrs had one.
inline std::string routeTapName(const plan::Step& step, const plan::MoeAttrs& a) {
  return "route." + std::to_string(a.layer() >= 0 ? a.layer() : step.layer());
}

// Sends `chosen` (host memory, T * K ids) to c.tapSink; does nothing (no copy) without a sink.
inline void tapRoutes(const OpContext& c, const plan::MoeAttrs& a, const int32_t* chosen, int64_t T,
                      int K) {
  if (!c.tapSink || !*c.tapSink)
    return;
  Activation ids;
  ids.rows = T;
  ids.cols = K;
  ids.i.assign(chosen, chosen + T * K);
  (*c.tapSink)(routeTapName(c.step, a), ids);
}

} // namespace kt
