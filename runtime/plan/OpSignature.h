#pragma once
// What each plan op takes: number of inputs/outputs, its weight slots (and which are required), and
// the attribute table it must carry. One table shared by the compiler's plan emitter and the
// runtime's plan validator, so the two cannot disagree.
#include "runtime/schema/plan_generated.h"

#include <cstdint>

namespace kt::plan {

struct OpSignature {
  const char* name;
  int numInputs;
  int numOutputs;
  int minOutputs; // backward ops may drop dx (no gradient flows further down)
  int numWeightSlots;
  uint32_t requiredWeights; // bit i set: slot i must be present
  OpAttrs attrs;            // OpAttrs::NONE when the op takes no attributes
  const char* const* slotNames;
};

namespace slots {
// Attention (GQA/MHA)
enum Attention { Q = 0, K, V, O, QBias, KBias, VBias, QNorm, KNorm, AttentionCount };
// MLA
enum Mla { QProj = 0, QAProj, QANorm, QBProj, KvAProj, KvANorm, KvBProj, MlaO, MlaCount };
// MoE
enum Moe {
  Router = 0,
  CorrectionBias,
  Gate,
  Up,
  Down,
  SharedGate,
  SharedUp,
  SharedDown,
  SharedExpertGate,
  MoeCount
};
// Dense SwiGLU MLP
enum Mlp { MlpGate = 0, MlpUp, MlpDown, MlpCount };
} // namespace slots

// Returns nullptr for an op kind this runtime does not know (a newer or corrupted plan).
const OpSignature* opSignature(OpKind kind);

} // namespace kt::plan
