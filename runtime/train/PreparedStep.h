#pragma once
// What one train_step step needs, resolved once by TrainExecutor: weight views, adapters and the
// op's parameters, in kernels/cpu/grad's terms. The GPU side (runtime/train/cuda) reads the same
// record and maps its host weights and adapters to GPU memory.
#include "kernels/cpu/grad/Grad.h"
#include "runtime/schema/plan_generated.h"

#include <string>
#include <vector>

namespace kt::train {

struct PreparedStep {
  const plan::Step* step = nullptr;
  std::string name;
  bool onGpu = false;         // the plan places it on a GPU (and it is not an MoE step)
  cpu::MatrixView w;          // embedding table, norm weight, lm_head
  double eps = 0;             // rms_norm
  cpu::grad::Projection proj; // linear
  cpu::grad::AttentionParams attnP;
  cpu::grad::AttentionWeights attnW;
  cpu::grad::MlaParams mlaP;
  cpu::grad::MlaWeights mlaW;
  cpu::MoeRoutingParams moeP;
  cpu::grad::MoeWeights moeW;
  std::vector<cpu::grad::MlpWeights> experts;
  cpu::grad::MlpWeights mlp, shared;
};

// The forward op kind of a backward kind (rms_norm_grad -> rms_norm, ...); others map to
// themselves.
plan::OpKind forwardKind(plan::OpKind k);

} // namespace kt::train
