// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE: bytes that are
// printable Latin-1 map to themselves, the other 68 map to U+0100.. in byte order. The vocabulary
// of Qwen, Llama 3 and DeepSeek is written in this alphabet ("Ġ" is the space byte).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kt::tok::bytelevel {

struct Tables {
  std::array<std::string, 256> byteToUtf8; // byte -> UTF-8 of its stand-in character
  std::array<int16_t, 512> charToByte;     // stand-in code point (< 512) -> byte, or -1
  Tables() {
    charToByte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      byteToUtf8[b] = s;
      charToByte[cp] = static_cast<int16_t>(b);
    }
  }
};

inline const Tables& tables() {
  static const Tables t;
  return t;
}

// Maps every byte of `text` to its stand-in character.
inline std::string encode(std::string_view text) {
  const Tables& t = tables();
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text)
    out += t.byteToUtf8[c];
  return out;
}

} // namespace kt::tok::bytelevel
