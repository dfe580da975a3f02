#pragma once
// Anonymous memory for large read-mostly arrays that the kernels stream every token (weights
// copied out of a file, matrices derived from them at plan load): 2 MiB aligned and advised
// MADV_HUGEPAGE, so that with transparent huge pages in `madvise` mode (Debian's default) a
// streamed matrix costs one TLB entry per 2 MiB instead of one per 4 KiB. A decode step reads
// hundreds of MB of such memory; on a VM (nested paging) the 4 KiB walks cost up to a third of
// the GEMV's time on bf16 MLA head matrices.
#include <cstddef>
#include <cstdint>

namespace kt {

class HugeBuffer {
public:
  HugeBuffer() = default;
  // Zero-filled; throws kt::Error naming `what` when the memory cannot be had.
  HugeBuffer(size_t bytes, const char* what);
  ~HugeBuffer();
  HugeBuffer(HugeBuffer&& o) noexcept;
  HugeBuffer& operator=(HugeBuffer&& o) noexcept;
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Makes the buffer read-only (a stray write then faults instead of corrupting weights).
  void protectReadOnly();

private:
  void release();
  void* base_ = nullptr; // the mapping (data_ rounded up to 2 MiB inside it)
  size_t mapped_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

} // namespace kt
