#pragma once
// A read-only memory map of a whole file. Weights are used in place from the page cache: nothing
// is read twice and resident memory follows what the model actually touches.
#include "runtime/io/HugeBuffer.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kt {

class MappedFile {
public:
  // How the bytes are held. Mapped: the page cache, mapped in place. HugePages: read once into
  // anonymous memory advised for transparent huge pages (the file's cached pages dropped as they
  // are copied), for data streamed at random offsets in small pieces: the packed sidecar's
  // expert matrices decode 2-4x faster from 2 MiB pages than through 4 KiB page-cache mappings
  // (a Qwen3-shaped int8 MoE layer on the dev VM: 8.2-15.1 -> 3.5 ms a token over 4 layers).
  // HugePages falls back to Mapped when transparent huge pages are off, KT_WEIGHTS_MMAP=1 is set,
  // or the file exceeds 80% of the memory available now.
  enum class Residency { Mapped, HugePages };
  // Throws kt::Error naming the path when the file cannot be opened, mapped or read.
  explicit MappedFile(const std::string& path, Residency residency = Residency::Mapped);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  Residency residency() const { return residency_; }

  // Whether the kernel will back madvise(MADV_HUGEPAGE) memory with huge pages (transparent huge
  // pages not "never"); KT_WEIGHTS_MMAP=1 keeps every file mapped.
  static bool hugePagesAvailable();

private:
  void readIntoHugePages(int fd);

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  Residency residency_ = Residency::Mapped;
  HugeBuffer copy_; // the bytes when residency_ is HugePages
};

// Reads a whole (small) file into a string; throws kt::Error naming the path on failure.
std::string readTextFile(const std::string& path);

} // namespace kt
