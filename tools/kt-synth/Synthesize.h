#pragma once
// kt-synth's work: a config.json in, a Hugging Face checkpoint of random weights out, streamed so
// memory stays a few MB whatever the model's size.
#include "frontends/hf/HfTensors.h"
#include "runtime/support/DType.h"
#include "tools/kt-synth/ShardPlan.h"

#include <string>
#include <utility>
#include <vector>

namespace kt::synth {

struct SynthOptions {
  std::string configPath, outDir;
  DType dtype = DType::BF16;
  uint64_t seed = 0;
  int layers = 0;                                             // 0: as the config says
  uint64_t shardBytes = 4ull << 30;                           // save_pretrained-style shard limit
  std::vector<std::pair<std::string, std::string>> overrides; // --set KEY=VALUE, applied first
  bool dryRun = false;
  // Headers only, data left as holes (sparse files reading as zeros): the real checkpoint's
  // names, shapes, offsets and file sizes without its bytes, so that kt-compile can plan a model
  // larger than this disk (the plan records file sizes; kt-rt pack/run need the real data).
  bool layoutOnly = false;
  bool listTensors = false;
  bool progress = true;
};

// What will be written, computed from the config alone.
struct SynthPlan {
  std::string configText;         // the config.json to write (overrides applied)
  std::vector<std::string> notes; // changes made to the config, for the log
  hf::ModelConfig config;
  std::vector<hf::CheckpointTensor> tensors; // HF state_dict order
  std::vector<Shard> shards;
  uint64_t parameters = 0, dataBytes = 0, fileBytes = 0;
};

// Reads and rewrites the config, lists the tensors and splits them into shards. Throws kt::Error
// naming the config file (or the flag) at fault.
SynthPlan planSynthesis(const SynthOptions& opt);

// Writes OUT_DIR/config.json, the shard files and (if sharded) the index. Throws kt::Error
// naming the file at fault; a failed run leaves no complete-looking checkpoint behind.
void writeCheckpoint(const SynthPlan& plan, const SynthOptions& opt);

} // namespace kt::synth
