// UTF-8 helpers shared by the tokenizer stages. Everything here works on bytes in std::string and
// never throws: malformed input is repaired (U+FFFD) the same way Rust's String::from_utf8_lossy
// does, because the reference implementation (HF tokenizers) is written in Rust and its decoders
// produce exactly that repair.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kt::tok::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;
inline constexpr const char* kReplacementUtf8 = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `cp` (assumed a valid scalar value).
inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string encode(char32_t cp) {
  std::string s;
  append(s, cp);
  return s;
}

// Length of the sequence a lead byte announces (1 for ASCII and for bytes that cannot start a
// sequence, so callers that trust their input always make progress).
inline size_t seqLen(unsigned char lead) {
  if (lead < 0xC0)
    return 1;
  if (lead < 0xE0)
    return 2;
  if (lead < 0xF0)
    return 3;
  return 4;
}

// Decodes the character at s[i] of a string already known to be valid UTF-8 and advances i.
inline char32_t next(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  char32_t cp;
  if (c < 0x80) {
    cp = c;
    i += 1;
  } else if (c < 0xE0) {
    cp = ((c & 0x1F) << 6) | (b(1) & 0x3F);
    i += 2;
  } else if (c < 0xF0) {
    cp = ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    i += 3;
  } else {
    cp = ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    i += 4;
  }
  return cp;
}

// Length of the valid UTF-8 sequence starting at s[i]; 0 when it is invalid or truncated. When it
// is invalid, *validPrefix receives how many bytes form the longest prefix of some valid sequence
// (at least 1): Rust replaces exactly that "maximal subpart" with one U+FFFD.
size_t validSeqAt(std::string_view s, size_t i, size_t* validPrefix);

bool isValid(std::string_view s);

// from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string lossy(std::string_view bytes);

// Number of trailing bytes of `s` that form an incomplete (but so far valid) sequence, i.e. bytes
// that could still become a character once more bytes arrive. 0 when `s` ends on a boundary.
size_t incompleteTail(std::string_view s);

// Rust's char::is_whitespace (Unicode White_Space), used where HF strips spaces around added
// tokens.
bool isWhitespace(char32_t cp);

// Python's str.isspace(), used by the chat templates' `trim` / `strip` filters.
bool isPythonSpace(char32_t cp);

} // namespace kt::tok::utf8
