#pragma once
// Writes one .safetensors file without holding its tensors: the header is written first (every
// shape is known up front), then the caller appends each tensor's bytes in header order. The
// file is written as NAME.partial and renamed when complete, so an interrupted run never leaves
// something that looks like a valid checkpoint.
#include "runtime/support/DType.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kt::synth {

struct StreamTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t bytes() const;
};

using Metadata = std::map<std::string, std::string>;

// The header bytes (8-byte length + JSON padded with spaces to a multiple of 8, as the
// safetensors library writes it), tensors laid out back to back in the given order.
// `metadata` goes to "__metadata__" beside {"format": "pt"}.
std::string safetensorsHeader(const std::vector<StreamTensor>& tensors, const Metadata& metadata);

// Header + data size of the file `tensors` make.
uint64_t safetensorsFileSize(const std::vector<StreamTensor>& tensors, const Metadata& metadata);

class SafetensorsStreamWriter {
public:
  // Creates PATH.partial and writes the header. Throws kt::Error naming the file.
  SafetensorsStreamWriter(const std::string& path, const std::vector<StreamTensor>& tensors,
                          const Metadata& metadata);
  // Removes PATH.partial unless finish() succeeded.
  ~SafetensorsStreamWriter();
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // The next bytes of the data section. Throws on a short write (e.g. disk full).
  void append(const void* data, size_t n);
  // The next n bytes of the data section left as a hole (reads as zeros, takes no disk): for
  // --layout-only checkpoints.
  void skip(uint64_t n);
  // Checks that every byte the header promised was written, then renames to PATH.
  void finish();

  const std::string& path() const { return path_; }

private:
  void writeAll(const void* data, size_t n);

  std::string path_, partial_;
  int fd_ = -1;
  uint64_t expected_ = 0, written_ = 0;
  bool done_ = false;
};

} // namespace kt::synth
