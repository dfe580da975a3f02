#include "runtime/io/HugeBuffer.h"

#include "runtime/support/Error.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <utility>

namespace kt {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}

HugeBuffer::HugeBuffer(size_t bytes, const char* what) : size_(bytes) {
  if (bytes == 0)
    return;
  // Small buffers would waste most of a huge page: plain pages, no alignment slack.
  const bool huge = bytes >= kHugePage;
  mapped_ = huge ? bytes + kHugePage : bytes;
  base_ = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw Error(std::string("cannot allocate ") + std::to_string(bytes) + " bytes for " + what +
                ": " + std::strerror(errno));
  }
  const uintptr_t b = reinterpret_cast<uintptr_t>(base_);
  data_ = reinterpret_cast<uint8_t*>(huge ? (b + kHugePage - 1) / kHugePage * kHugePage : b);
  if (huge)
    ::madvise(data_, bytes, MADV_HUGEPAGE); // advice only: 4 KiB pages still work
}

void HugeBuffer::protectReadOnly() {
  if (base_)
    ::mprotect(base_, mapped_, PROT_READ);
}

void HugeBuffer::release() {
  if (base_)
    ::munmap(base_, mapped_);
  base_ = nullptr;
  data_ = nullptr;
  mapped_ = size_ = 0;
}

HugeBuffer::~HugeBuffer() {
  release();
}

HugeBuffer::HugeBuffer(HugeBuffer&& o) noexcept {
  *this = std::move(o); // an empty buffer has nothing to release
}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
  if (this != &o) {
    release();
    base_ = o.base_;
    mapped_ = o.mapped_;
    data_ = o.data_;
    size_ = o.size_;
    o.base_ = nullptr;
    o.data_ = nullptr;
    o.mapped_ = o.size_ = 0;
  }
  return *this;
}

} // namespace kt
