#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// The reader checks every field and offset against the file before anything uses them.
#include "runtime/support/DType.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kt {

class MappedFile;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0; // absolute byte offset in the file
  uint64_t size = 0;   // bytes
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

// The header of one .safetensors file. Throws kt::Error naming the file (and tensor) at fault when
// the header is truncated, not JSON, or describes data outside the file.
class SafetensorsFile {
public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  uint64_t fileSize() const { return fileSize_; }
  // The mapped bytes of a tensor (the file is mapped on first use).
  const uint8_t* data(const TensorInfo& t) const;

private:
  std::string path_;
  uint64_t fileSize_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  mutable std::unique_ptr<MappedFile> map_;
};

// Parses a safetensors dtype string ("F32", "BF16", "F16", "I32", "I8", "U8").
bool parseSafetensorsDType(const std::string& s, DType* out);
// The safetensors name of a dtype; nullptr for one the format cannot hold (I4).
const char* safetensorsDTypeName(DType t);

// Writes f32/i32 tensors to a .safetensors file (used for `kt-rt score --out`).
struct OutTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};
void writeSafetensors(const std::string& path, const std::vector<OutTensor>& tensors);

} // namespace kt
