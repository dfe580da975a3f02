#include "runtime/plan/OpSignature.h"

namespace kt::plan {

namespace {
const char* const kNone[] = {nullptr};
const char* const kEmbedding[] = {"table"};
const char* const kRmsNorm[] = {"weight"};
const char* const kLinear[] = {"weight", "bias"};
const char* const kAttention[] = {"q_proj", "k_proj", "v_proj", "o_proj", "q_bias",
                                  "k_bias", "v_bias", "q_norm", "k_norm"};
const char* const kMla[] = {"q_proj",    "q_a_proj",  "q_a_norm",  "q_b_proj",
                            "kv_a_proj", "kv_a_norm", "kv_b_proj", "o_proj"};
const char* const kMoe[] = {
    "router",      "correction_bias",   "gate", "up", "down", "shared_gate", "shared_up",
    "shared_down", "shared_expert_gate"};
const char* const kMlp[] = {"gate", "up", "down"};
const char* const kLmHead[] = {"weight"};

constexpr uint32_t bits(std::initializer_list<int> s) {
  uint32_t m = 0;
  for (int i : s)
    m |= 1u << i;
  return m;
}

using namespace slots;
const OpSignature kSignatures[] = {
    {"embedding", 1, 1, 1, 1, bits({0}), OpAttrs::NONE, kEmbedding},
    {"rms_norm", 1, 1, 1, 1, bits({0}), OpAttrs::RmsNormAttrs, kRmsNorm},
    {"linear", 1, 1, 1, 2, bits({0}), OpAttrs::NONE, kLinear},
    {"rope", 2, 1, 1, 0, 0, OpAttrs::RopeAttrs, kNone},
    {"attention", 2, 1, 1, AttentionCount, bits({Q, K, V, O}), OpAttrs::AttentionAttrs, kAttention},
    // q_proj or the q_a/q_b pair: checked by the validator, not by the mask.
    {"mla_attention", 2, 1, 1, MlaCount, bits({KvAProj, KvANorm, KvBProj, MlaO}), OpAttrs::MlaAttrs,
     kMla},
    {"moe", 1, 1, 1, MoeCount, bits({Router, Gate, Up, Down}), OpAttrs::MoeAttrs, kMoe},
    {"mlp", 1, 1, 1, MlpCount, bits({MlpGate, MlpUp, MlpDown}), OpAttrs::MlpAttrs, kMlp},
    {"swiglu", 2, 1, 1, 0, 0, OpAttrs::NONE, kNone},
    {"add", 2, 1, 1, 0, 0, OpAttrs::NONE, kNone},
    {"lm_head", 1, 1, 1, 1, bits({0}), OpAttrs::NONE, kLmHead},
    {"tap", 1, 1, 1, 0, 0, OpAttrs::TapAttrs, kNone},
    // Training (plan.fbs): backward ops repeat their forward op's weight slots and attrs.
    {"cross_entropy_loss", 2, 2, 2, 1, bits({0}), OpAttrs::NONE, kLmHead},
    {"rms_norm_grad", 2, 1, 1, 1, bits({0}), OpAttrs::RmsNormAttrs, kRmsNorm},
    {"linear_grad", 2, 1, 0, 2, bits({0}), OpAttrs::NONE, kLinear},
    {"attention_grad", 3, 1, 0, AttentionCount, bits({Q, K, V, O}), OpAttrs::AttentionAttrs,
     kAttention},
    {"mla_attention_grad", 3, 1, 0, MlaCount, bits({KvAProj, KvANorm, KvBProj, MlaO}),
     OpAttrs::MlaAttrs, kMla},
    {"moe_grad", 2, 1, 0, MoeCount, bits({Router, Gate, Up, Down}), OpAttrs::MoeAttrs, kMoe},
    {"mlp_grad", 2, 1, 0, MlpCount, bits({MlpGate, MlpUp, MlpDown}), OpAttrs::MlpAttrs, kMlp},
    {"adamw", 0, 0, 0, 0, 0, OpAttrs::AdamWAttrs, kNone},
};
} // namespace

const OpSignature* opSignature(OpKind kind) {
  auto i = static_cast<size_t>(kind);
  if (i >= sizeof(kSignatures) / sizeof(kSignatures[0]))
    return nullptr;
  return &kSignatures[i];
}

} // namespace kt::plan
