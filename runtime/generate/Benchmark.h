#pragma once
// Prefill and decode speed of a loaded plan: random prompts, greedy generation, best of a few
// repetitions. `kt-rt bench` prints it; `kt-tune` measures its candidate placements with it, so
// predicted and measured numbers come from one definition of tok/s.
#include "runtime/exec/Model.h"
#include "runtime/generate/Generator.h"

#include <cstdint>

namespace kt {

struct BenchOptions {
  int promptLen = 128, genLen = 32, batch = 1, reps = 2;
  bool profileLastRep = false; // collect per-op times (Executor::profile) during the last rep
  bool profileByLayer = false; // ... with each decoder layer apart (Executor::setProfiling)
  uint32_t seed = 7;           // of the random prompt ids
};

struct BenchResult {
  // Best prefill rep and best decode rep (each may come from a different rep).
  GenerateResult best;
  double cpuShare = 0; // of the best decode rep: CPU seconds / (wall seconds x threads)
  // Of the best decode rep, hybrid plans only: how long the GPU waited for the CPU's experts.
  DeviceBackend::Overlap overlap;
};

// Touches every page of every weight once, so that timings measure the kernels rather than
// first-touch page faults (random routing reaches a new expert's pages for many tokens). Returns
// the bytes touched.
double prefaultWeights(const Model& model);

// Runs `reps` generations of opts.genLen tokens after opts.batch random prompts of opts.promptLen
// tokens. Throws kt::Error when the lengths are not positive or exceed the model's positions.
BenchResult benchGenerate(Model& model, const BenchOptions& opts);

} // namespace kt
