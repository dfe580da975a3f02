#pragma once
// Inputs for the probe's timed kernels.
#include <cstdint>
#include <vector>

namespace kt::probe {

// Uniform values in [-0.1, 0.1) from a 32-bit LCG: the kernels' speed does not depend on the
// distribution, and generating normals for millions of weights would cost seconds.
inline std::vector<float> randomMatrix(int64_t elements, uint32_t seed) {
  std::vector<float> m(static_cast<size_t>(elements));
  uint32_t state = seed * 2654435761u + 1;
  for (float& v : m) {
    state = state * 1664525u + 1013904223u;
    v = (float(state >> 8) / float(1 << 24) - 0.5f) * 0.2f;
  }
  return m;
}

} // namespace kt::probe
