#pragma once
// Counter-based random numbers: value i of a stream is a pure function of (key, i), so a tensor's
// bytes do not depend on the order tensors are written in, on chunk sizes, or on threads.
#include <cstddef>
#include <cstdint>
#include <string>

namespace kt::synth {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The key of one tensor's stream: FNV-1a of its name, mixed with the seed.
inline uint64_t streamKey(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : name)
    h = (h ^ ch) * 0x100000001b3ull;
  return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

// 64 random bits number `counter` of stream `key` (SplitMix64 evaluated at an arbitrary step).
inline uint64_t randomBits(uint64_t key, uint64_t counter) {
  return mix64(key + (counter + 1) * 0x9e3779b97f4a7c15ull);
}

// Normals i0 .. i0+n-1 of stream `key`, scaled and shifted: out[k] = mean + std * z[i0+k].
// Normals 2p and 2p+1 come from draw p by Box-Muller (24 bits each for radius and angle: plenty
// for weights stored in 16 bits). log, sin and cos are polynomials in plain IEEE arithmetic, not
// libm: the loops vectorize, and the bytes are the same on every machine and libm.
void fillNormal(uint64_t key, uint64_t i0, size_t n, float mean, float std, float* out);

} // namespace kt::synth
