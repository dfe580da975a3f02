#pragma once
// CRC-32 (IEEE 802.3 polynomial, as zlib): guards plan files against flipped bytes that the
// FlatBuffers verifier cannot see (a changed float or character is still a well-formed buffer).
#include <cstddef>
#include <cstdint>

namespace kt {

inline uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static const auto table = [] {
    struct T {
      uint32_t v[256];
    } t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t.v[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i)
    crc = table.v[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

} // namespace kt
