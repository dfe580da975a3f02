#include "tools/kt-synth/WeightInit.h"

#include <cmath>

namespace kt::synth {

using hf::TensorKind;

InitRule initRule(const hf::CheckpointTensor& t) {
  // The last dimension is the one a projection sums over ([out, in] as torch stores Linear).
  const float fanIn = t.shape.empty() ? 1.0f : float(t.shape.back());
  switch (t.kind) {
  case TensorKind::Embedding:
    return {0.0f, 1.0f};
  case TensorKind::Linear:
  case TensorKind::Router:
  case TensorKind::Gate:
    return {0.0f, 1.0f / std::sqrt(fanIn)};
  case TensorKind::Norm:
    return {1.0f, 0.1f};
  case TensorKind::Bias:
    return {0.0f, 0.02f};
  case TensorKind::CorrectionBias:
    return {0.0f, 0.01f};
  }
  return {0.0f, 1.0f};
}

} // namespace kt::synth
