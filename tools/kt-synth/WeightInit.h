#pragma once
// How kt-synth draws each kind of tensor, chosen so a model of any depth stays numerically sane:
// hidden states stay O(1), attention and routing are neither uniform nor saturated, and greedy
// decoding produces varied tokens rather than NaN/inf or one repeated id.
#include "frontends/hf/HfTensors.h"

namespace kt::synth {

// Every tensor is mean + std * N(0, 1), elementwise.
struct InitRule {
  float mean = 0.0f;
  float std = 1.0f;
};

//  embedding        N(0, 1)              rows of RMS 1, like a trained table after its norm
//  linear [out,in]  N(0, 1/sqrt(in))     preserves RMS: an O(1) input gives an O(1) output, so the
//                                        residual grows only like sqrt(layers); lm_head logits
//                                        have std ~1 (varied argmax, no overflow)
//  norm             1 + 0.1 N(0, 1)      near identity, but not exactly (catches a missed scale)
//  bias             0.02 N(0, 1)         small next to the O(1) projection output
//  router [E,H]     N(0, 1/sqrt(H))      logits ~N(0, 1): each token prefers different experts,
//                                        with softmax/sigmoid weights far from one-hot
//  correction bias  0.01 N(0, 1)         nudges, rarely flips, the noaux_tc choice
//  gate [1,H]       N(0, 1/sqrt(H))      sigmoid(N(0, 1)): shared expert half on, on average
InitRule initRule(const hf::CheckpointTensor& t);

} // namespace kt::synth
