#include "runtime/exec/cuda/ActivationMoves.h"

#include "kernels/cuda/Memory.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace kt {

size_t stagedMoveThreshold() {
  static const size_t from = [] {
    if (const char* v = std::getenv("KT_CUDA_PAGEABLE_MOVES"); v && std::strcmp(v, "1") == 0)
      return std::numeric_limits<size_t>::max();
    if (const char* v = std::getenv("KT_CUDA_STAGED_MOVE_BYTES"))
      return size_t(std::strtoull(v, nullptr, 10));
    return kStagedMoveBytes;
  }();
  return from;
}

void copyOnPool(ThreadPool* pool, void* dst, const void* src, size_t bytes) {
  if (!pool) {
    std::memcpy(dst, src, bytes);
    return;
  }
  constexpr int64_t kBlock = int64_t(256) << 10;
  const int64_t blocks = (int64_t(bytes) + kBlock - 1) / kBlock;
  pool->parallelFor(blocks, 1, [&](int64_t b0, int64_t b1) {
    const size_t begin = size_t(b0 * kBlock), end = std::min(bytes, size_t(b1 * kBlock));
    std::memcpy(static_cast<char*>(dst) + begin, static_cast<const char*>(src) + begin,
                end - begin);
  });
}

bool moveToDevice(void* dst, const void* src, size_t bytes, void* stage, ThreadPool* pool,
                  std::string* err) {
  if (!stage)
    return cuda::toDevice(dst, src, bytes, err);
  copyOnPool(pool, stage, src, bytes);
  return cuda::toDevice(dst, stage, bytes, err);
}

bool moveToHost(void* dst, const void* src, size_t bytes, void* stage, ThreadPool* pool,
                std::string* err) {
  if (!stage)
    return cuda::toHost(dst, src, bytes, err);
  if (!cuda::toHost(stage, src, bytes, err))
    return false;
  copyOnPool(pool, dst, stage, bytes);
  return true;
}

} // namespace kt
