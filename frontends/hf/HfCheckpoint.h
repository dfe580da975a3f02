#pragma once
// The tensors of a Hugging Face checkpoint: one model.safetensors, or shards listed by
// model.safetensors.index.json. Only headers are read; the bytes stay in the files.
#include "runtime/io/Safetensors.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kt::hf {

struct TensorRef {
  const TensorInfo* info = nullptr;
  int file = 0; // index into HfCheckpoint::files()
};

class HfCheckpoint {
public:
  // Throws kt::Error naming the file when neither layout is present or an index/header is invalid.
  explicit HfCheckpoint(const std::string& dir);
  ~HfCheckpoint();

  // The tensor `name` with exactly `shape`; an error names the tensor, the file and both shapes.
  TensorRef require(const std::string& name, const std::vector<int64_t>& shape) const;
  bool has(const std::string& name) const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& dir() const { return dir_; }

private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, int> where_; // tensor name -> file index
};

std::string shapeString(const std::vector<int64_t>& shape);

} // namespace kt::hf
