#include "runtime/io/MappedFile.h"

#include "runtime/support/Error.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kt {

bool MappedFile::hugePagesAvailable() {
  static const bool available = [] {
    if (const char* v = std::getenv("KT_WEIGHTS_MMAP"); v && std::strcmp(v, "1") == 0)
      return false;
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes;
    std::getline(in, modes);
    return !modes.empty() && modes.find("[never]") == std::string::npos;
  }();
  return available;
}

namespace {
// A copy must leave room: a file larger than 80% of what the kernel could hand out now
// (/proc/meminfo MemAvailable, which counts reclaimable page cache such as this file's own
// pages) stays mapped, where the kernel can evict its pages under pressure instead of the
// process being killed.
bool fitsInAvailableMemory(size_t bytes) {
  std::ifstream in("/proc/meminfo");
  std::string key;
  unsigned long long kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:")
      return double(bytes) < 0.8 * double(kb) * 1024.0;
    in.ignore(256, '\n');
  }
  return false; // unknown: keep the mapping
}
} // namespace

void MappedFile::readIntoHugePages(int fd) {
  copy_ = HugeBuffer(size_, ("'" + path_ + "' (KT_WEIGHTS_MMAP=1 maps it instead)").c_str());
  uint8_t* bytes = copy_.data();
  constexpr size_t kChunk = size_t(64) << 20;
  for (size_t off = 0; off < size_;) {
    const ssize_t k = ::pread(fd, bytes + off, std::min(kChunk, size_ - off), off_t(off));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      const int err = k < 0 ? errno : EIO;
      copy_ = HugeBuffer();
      throw Error("cannot read '" + path_ + "' at byte " + std::to_string(off) + ": " +
                  std::strerror(err));
    }
    // The copy is what the kernels read: the file's cached pages need not stay.
    ::posix_fadvise(fd, off_t(off), off_t(k), POSIX_FADV_DONTNEED);
    off += size_t(k);
  }
  copy_.protectReadOnly();
  data_ = bytes;
  residency_ = Residency::HugePages;
}

MappedFile::MappedFile(const std::string& path, Residency residency) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("'" + path + "' is not a regular file");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0 && residency == Residency::HugePages && hugePagesAvailable() &&
      fitsInAvailableMemory(size_)) {
    try {
      readIntoHugePages(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    return;
  }
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw Error("cannot map '" + path + "': " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd); // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_ && residency_ == Residency::Mapped)
    ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string readTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot open '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace kt
