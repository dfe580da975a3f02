#include "runtime/tokenizer/Unicode.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/tokenizer/Utf8.h"

namespace kt::tok::unicode {
namespace {

struct CccRange {
  char32_t first, last;
  uint8_t ccc;
};
struct DecompEntry {
  char32_t cp;
  uint32_t offset;
  uint8_t length;
};
struct CompEntry {
  uint64_t key; // (first << 21) | second
  char32_t composite;
};
struct QcRange {
  char32_t first, last;
};

#include "runtime/tokenizer/UnicodeTables.inc"

// Hangul syllables are composed/decomposed arithmetically (Unicode 3.12), not from tables.
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

// Nothing below U+0300 has a non-zero class or can be absorbed by a composite (so it is always
// NFC quick-check "Yes"); decompositions start earlier, at the Latin-1 letters.
constexpr char32_t kFirstInteresting = 0x300;
constexpr char32_t kFirstDecomposable = 0xC0;

bool inQcSet(char32_t cp) {
  if (cp < kFirstInteresting)
    return false;
  const QcRange* b = std::begin(kNfcQcRanges);
  const QcRange* e = std::end(kNfcQcRanges);
  const QcRange* it =
      std::lower_bound(b, e, cp, [](const QcRange& r, char32_t c) { return r.last < c; });
  return it != e && it->first <= cp;
}

void decomposeInto(char32_t cp, std::vector<char32_t>& out) {
  if (cp < kFirstDecomposable) {
    out.push_back(cp);
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    int s = static_cast<int>(cp - kSBase);
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount)
      out.push_back(kTBase + s % kTCount);
    return;
  }
  const DecompEntry* b = std::begin(kDecomp);
  const DecompEntry* e = std::end(kDecomp);
  const DecompEntry* it =
      std::lower_bound(b, e, cp, [](const DecompEntry& d, char32_t c) { return d.cp < c; });
  if (it != e && it->cp == cp) {
    out.insert(out.end(), kDecompPool + it->offset, kDecompPool + it->offset + it->length);
  } else {
    out.push_back(cp);
  }
}

// Canonical ordering: a stable sort of each run of non-starters by combining class.
void reorder(std::vector<char32_t>& cps) {
  size_t i = 0, n = cps.size();
  while (i < n) {
    if (combiningClass(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && combiningClass(cps[j]) != 0)
      ++j;
    if (j - i > 1) {
      std::stable_sort(cps.begin() + i, cps.begin() + j, [](char32_t a, char32_t b) {
        return combiningClass(a) < combiningClass(b);
      });
    }
    i = j;
  }
}

char32_t composePair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  uint64_t key = (static_cast<uint64_t>(a) << 21) | b;
  const CompEntry* bgn = std::begin(kComp);
  const CompEntry* e = std::end(kComp);
  const CompEntry* it =
      std::lower_bound(bgn, e, key, [](const CompEntry& c, uint64_t k) { return c.key < k; });
  return (it != e && it->key == key) ? it->composite : 0;
}

void compose(std::vector<char32_t>& cps) {
  size_t out = 0;
  long starter = -1;
  int lastClass = 0; // class of the last character kept after the starter
  for (size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    int cc = combiningClass(c);
    if (starter >= 0) {
      bool adjacent = out == static_cast<size_t>(starter) + 1;
      // With canonical order, c is blocked iff the last kept mark is a starter or ranks >= c.
      bool blocked = !adjacent && (lastClass == 0 || lastClass >= cc);
      if (!blocked) {
        if (char32_t comp = composePair(cps[starter], c)) {
          cps[starter] = comp;
          continue;
        }
      }
    }
    if (cc == 0)
      starter = static_cast<long>(out);
    lastClass = cc;
    cps[out++] = c;
  }
  cps.resize(out);
}

std::vector<char32_t> decomposeAll(std::string_view s) {
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  size_t i = 0;
  while (i < s.size())
    decomposeInto(utf8::next(s, i), cps);
  reorder(cps);
  return cps;
}

std::string toUtf8(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (char32_t c : cps)
    utf8::append(out, c);
  return out;
}

} // namespace

int combiningClass(char32_t cp) {
  if (cp < kFirstInteresting)
    return 0;
  const CccRange* b = std::begin(kCccRanges);
  const CccRange* e = std::end(kCccRanges);
  const CccRange* it =
      std::lower_bound(b, e, cp, [](const CccRange& r, char32_t c) { return r.last < c; });
  return (it != e && it->first <= cp) ? it->ccc : 0;
}

bool isNfcQuick(std::string_view s) {
  int lastClass = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      lastClass = 0;
      continue;
    }
    char32_t cp = utf8::next(s, i);
    if (inQcSet(cp))
      return false;
    int cc = combiningClass(cp);
    if (cc != 0 && lastClass > cc)
      return false;
    lastClass = cc;
  }
  return true;
}

std::string nfc(std::string_view s) {
  if (isNfcQuick(s))
    return std::string(s);
  std::vector<char32_t> cps = decomposeAll(s);
  compose(cps);
  return toUtf8(cps);
}

std::string nfd(std::string_view s) {
  return toUtf8(decomposeAll(s));
}

} // namespace kt::tok::unicode
