#pragma once
// A read-only memory map of a whole file. Weights are used in place from the page cache: nothing
// is read twice and resident memory follows what the model actually touches.
#include <cstddef>
#include <cstdint>
#include <string>

namespace kt {

class MappedFile {
public:
  // Throws kt::Error naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; throws kt::Error naming the path on failure.
std::string readTextFile(const std::string& path);

} // namespace kt
