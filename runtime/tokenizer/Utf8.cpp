#include "runtime/tokenizer/Utf8.h"

namespace kt::tok::utf8 {

size_t validSeqAt(std::string_view s, size_t i, size_t* validPrefix) {
  const size_t n = s.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = at(0);
  size_t need;
  // Range allowed for the second byte; it excludes overlong forms and surrogates (Unicode 3.9).
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else {
    if (validPrefix)
      *validPrefix = 1;
    return 0;
  }
  size_t k = 1;
  for (; k < need; ++k) {
    if (i + k >= n)
      break;
    unsigned char b = at(k);
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h)
      break;
  }
  if (k == need)
    return need;
  if (validPrefix)
    *validPrefix = k;
  return 0;
}

bool isValid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = validSeqAt(s, i, nullptr);
    if (len == 0)
      return false;
    i += len;
  }
  return true;
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    size_t bad = 0;
    size_t len = validSeqAt(s, i, &bad);
    if (len) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.append(kReplacementUtf8);
      i += bad;
    }
  }
  return out;
}

size_t incompleteTail(std::string_view s) {
  // A sequence is at most 4 bytes, so only the last 3 bytes can be an unfinished one.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t start = n - back;
    unsigned char c = static_cast<unsigned char>(s[start]);
    if (c < 0x80)
      return 0;
    if (c >= 0xC0) {
      size_t prefix = 0;
      size_t len = validSeqAt(s, start, &prefix);
      // Truncated-but-valid: every byte up to the end belongs to the unfinished sequence.
      if (len == 0 && prefix == back)
        return back;
      return 0;
    }
  }
  return 0;
}

bool isWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool isPythonSpace(char32_t c) {
  // Python adds the ASCII information separators 0x1C..0x1F to White_Space.
  return isWhitespace(c) || (c >= 0x1C && c <= 0x1F);
}

} // namespace kt::tok::utf8
