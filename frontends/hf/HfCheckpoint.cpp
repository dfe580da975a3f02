#include "frontends/hf/HfCheckpoint.h"

#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace kt::hf {

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

static bool exists(const std::string& path) {
  return std::ifstream(path).good();
}

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (exists(index)) {
    nlohmann::json j = nlohmann::json::parse(readTextFile(index), nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(index + ": malformed JSON");
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index + ": field 'weight_map' is missing");
    std::map<std::string, int> shardIndex;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw Error(index + ": weight_map['" + it.key() + "'] must be a file name");
      std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos)
        throw Error(index + ": shard '" + shard + "' must be a plain file name");
      auto [pos, inserted] = shardIndex.emplace(shard, int(files_.size()));
      if (inserted)
        files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + shard));
      if (!files_[size_t(pos->second)]->find(it.key()))
        throw Error(index + ": tensor '" + it.key() + "' is mapped to '" + shard +
                    "' but that file does not contain it");
      where_[it.key()] = pos->second;
    }
  } else if (exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& [name, info] : files_[0]->tensors())
      where_[name] = 0;
  } else {
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
}

HfCheckpoint::~HfCheckpoint() = default;

bool HfCheckpoint::has(const std::string& name) const {
  return where_.count(name) != 0;
}

TensorRef HfCheckpoint::require(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = where_.find(name);
  if (it == where_.end())
    throw Error(dir_ + ": missing tensor '" + name + "' (expected shape " + shapeString(shape) +
                ")");
  const SafetensorsFile& f = *files_[size_t(it->second)];
  const TensorInfo* t = f.find(name);
  if (t->shape != shape)
    throw Error(f.path() + ": tensor '" + name + "' has shape " + shapeString(t->shape) +
                " but the config implies " + shapeString(shape));
  if (t->dtype != DType::F32 && t->dtype != DType::BF16 && t->dtype != DType::F16)
    throw Error(f.path() + ": tensor '" + name + "' has dtype " + dtypeName(t->dtype) +
                " (expected f32, bf16 or f16)");
  return {t, it->second};
}

} // namespace kt::hf
