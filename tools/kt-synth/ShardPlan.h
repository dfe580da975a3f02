#pragma once
// Splits a checkpoint into files the way Hugging Face's save_pretrained does: tensors in
// state_dict order fill a shard until the next one would pass the limit; a tensor larger than
// the limit gets a shard of its own. One shard is written as model.safetensors, several as
// model-0000i-of-0000N.safetensors plus model.safetensors.index.json.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kt::synth {

struct Shard {
  std::string file;            // file name inside the output folder
  std::vector<size_t> tensors; // indices into the caller's list, in state_dict order
  uint64_t dataBytes = 0;
};

std::vector<Shard> planShards(const std::vector<uint64_t>& tensorBytes, uint64_t maxShardBytes);

// model.safetensors.index.json: total data size (plus `metadata`) and, for every tensor, the
// shard holding it.
std::string shardIndexJson(const std::vector<Shard>& shards, const std::vector<std::string>& names,
                           const std::map<std::string, std::string>& metadata);

// "4GiB", "5GB", "500MB", "64KiB", "1.5GiB", "1000" (bytes); false when malformed or zero.
bool parseByteSize(const std::string& text, uint64_t* out);

// 1234567890 -> "1.23 GB" (decimal units, as disk sizes are usually quoted).
std::string humanBytes(uint64_t bytes);

} // namespace kt::synth
