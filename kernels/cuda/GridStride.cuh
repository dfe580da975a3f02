#pragma once
// Launch shape of the element-wise kernels: kThreads per block, grid-stride loops over n elements
// with at most 65535 * 4 blocks (each thread then handles several elements).
#include <cstdint>

namespace kt::cuda {

constexpr int kThreads = 256;

inline unsigned blocksFor(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

} // namespace kt::cuda
