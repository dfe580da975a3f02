// A compiled PCRE2 pattern used for pre-tokenizer splits and Replace normalizers/decoders. HF's
// patterns rely on Unicode properties (\p{L}, \p{N}), case-insensitive groups and lookaheads, so
// the pattern is compiled with PCRE2_UTF | PCRE2_UCP (and JIT-compiled when the library has it).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kt::tok {

class Regex {
public:
  // Returns nullptr and sets *error when the pattern does not compile.
  static std::unique_ptr<Regex> compile(const std::string& pattern, std::string* error);
  // A pattern that matches `literal` exactly (HF's {"String": ...} patterns).
  static std::unique_ptr<Regex> literal(const std::string& literal, std::string* error);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  using Span = std::pair<size_t, size_t>; // [begin, end) byte offsets
  // The next match at or after *pos; advances *pos past it (by one character more after an empty
  // match). Returns false when there is none. `subject` must be valid UTF-8 (it is not re-checked,
  // which keeps repeated matching linear).
  bool findNext(std::string_view subject, size_t* pos, Span* match) const;
  // All non-overlapping matches, left to right.
  void findAll(std::string_view subject, std::vector<Span>& out) const;
  // True when the whole subject matches (anchored at both ends).
  bool fullMatch(std::string_view subject) const;

  // The pattern with \s, \S, \w, \W spelled out as the Unicode classes Oniguruma (HF's engine)
  // gives them. compile() applies it; exposed for tests.
  static std::string rustCompatible(const std::string& pattern);

private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace kt::tok
