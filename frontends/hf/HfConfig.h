#pragma once
// A Hugging Face config.json, normalized across the supported families (llama, mixtral, qwen2_moe,
// qwen3_moe, deepseek_v2, deepseek_v3) into one description of the architecture. Parsing is plain
// C++ (it throws kt::Error naming config.json and the field at fault).
#include <cstdint>
#include <string>
#include <vector>

namespace kt::hf {

struct RopeConfig {
  std::string type = "default"; // default | linear | yarn | llama3
  int dim = 0;                  // rotated dimensions per head
  double theta = 10000.0;
  double factor = 1.0;
  int64_t originalMaxPosition = 0;
  double betaFast = 32.0, betaSlow = 1.0;
  double mscale = 0.0, mscaleAllDim = 0.0;
  double attentionFactor = 1.0; // YaRN: multiplies cos/sin
  double lowFreqFactor = 1.0, highFreqFactor = 4.0;
  bool interleaved = false;
};

struct MoeConfig {
  int numExperts = 0;
  int expertsPerToken = 0;
  int64_t intermediate = 0;       // per routed expert
  int64_t sharedIntermediate = 0; // 0: no shared expert
  bool sharedExpertGate = false;  // Qwen2-MoE's sigmoid gate on the shared expert
  std::string scoring = "softmax";
  std::string topkMethod = "greedy";
  int nGroup = 1, topkGroup = 1;
  bool normTopkProb = false;
  double routedScalingFactor = 1.0;
  bool correctionBias = false; // DeepSeek-V3 e_score_correction_bias
};

struct MlaConfig {
  int qLoraRank = 0; // 0: plain q_proj
  int kvLoraRank = 0;
  int qkNopeHeadDim = 0, qkRopeHeadDim = 0, vHeadDim = 0;
};

struct ModelConfig {
  std::string arch; // model_type
  std::string path; // config.json it came from
  int64_t vocabSize = 0, hiddenSize = 0, intermediateSize = 0, maxPosition = 0;
  int numLayers = 0, numHeads = 0, numKvHeads = 0, headDim = 0;
  double rmsNormEps = 1e-6;
  bool tieEmbeddings = false;
  bool attentionBias = false; // q/k/v biases (Qwen2)
  bool qkNorm = false;        // per-head RMSNorm of q and k (Qwen3)
  bool mla = false;
  MlaConfig mlaConfig;
  MoeConfig moe;
  RopeConfig rope;
  double softmaxScale = 0.0; // attention score scale, YaRN mscale included
  std::vector<bool> layerIsMoe;
  int bosId = -1;
  std::vector<int> eosIds;
};

// Parses `dir`/config.json. Unknown architectures and missing/invalid fields are errors.
ModelConfig parseConfig(const std::string& dir);
ModelConfig parseConfigText(const std::string& text, const std::string& origin);

// The architectures this importer understands, for error messages and --help.
const std::vector<std::string>& supportedArchitectures();

} // namespace kt::hf
