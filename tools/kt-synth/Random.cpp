#include "tools/kt-synth/Random.h"

namespace kt::synth {

void fillNormal(uint64_t key, uint64_t i0, size_t n, float mean, float std, float* out) {
  size_t k = 0;
  uint64_t i = i0;
  float z0, z1;
  if (n > 0 && (i & 1)) { // an odd start takes the second normal of its pair
    normalPair(key, i >> 1, &z0, &z1);
    out[k++] = mean + std * z1;
    ++i;
  }
  for (; k + 1 < n; k += 2, i += 2) {
    normalPair(key, i >> 1, &z0, &z1);
    out[k] = mean + std * z0;
    out[k + 1] = mean + std * z1;
  }
  if (k < n) {
    normalPair(key, i >> 1, &z0, &z1);
    out[k] = mean + std * z0;
  }
}

} // namespace kt::synth
