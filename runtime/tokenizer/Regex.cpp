#include "runtime/tokenizer/Regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

// Per-thread scratch: match data (one ovector pair is all we read) and a JIT stack big enough for
// the lookaheads over long whitespace runs. Shared by every pattern, so a Tokenizer stays usable
// from several threads at once without locking.
struct ThreadScratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* ctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadScratch() {
    md = pcre2_match_data_create(1, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (ctx && stack)
      pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~ThreadScratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
  }
};

ThreadScratch& scratch() {
  thread_local ThreadScratch s;
  return s;
}

// Members of Unicode White_Space and of the Unicode "word" property, written as class items.
constexpr const char* kWhiteSpaceItems =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";
constexpr const char* kWordItems = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";

} // namespace

std::string Regex::rustCompatible(const std::string& p) {
  // HF compiles its patterns with Oniguruma, where \s is White_Space and \w the Unicode word
  // property. PCRE2's UCP versions differ at the edges (PCRE2's \s has U+180E, its \w lacks
  // combining marks), so both are spelled out. Negated forms inside a class cannot be expanded and
  // keep PCRE2's meaning; no tokenizer.json seen in practice uses them.
  std::string out;
  out.reserve(p.size() * 2);
  bool inClass = false;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      if (e == 'Q') { // \Q...\E is literal text
        size_t end = p.find("\\E", i + 2);
        size_t stop = end == std::string::npos ? p.size() : end + 2;
        out.append(p, i, stop - i);
        i = stop;
        continue;
      }
      const char* items = (e == 's' || e == 'S')   ? kWhiteSpaceItems
                          : (e == 'w' || e == 'W') ? kWordItems
                                                   : nullptr;
      bool negated = e == 'S' || e == 'W';
      if (items && inClass && !negated) {
        out += items;
      } else if (items && !inClass) {
        out += negated ? "[^" : "[";
        out += items;
        out += "]";
      } else {
        out.append(p, i, 2);
      }
      i += 2;
      continue;
    }
    if (!inClass && c == '[') {
      inClass = true;
      out.push_back(c);
      ++i;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i < p.size() && p[i] == '^')
        out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']')
        out.push_back(p[i++]);
      continue;
    }
    if (inClass && c == '[' && i + 1 < p.size() && p[i + 1] == ':') { // [:alpha:]
      size_t end = p.find(":]", i + 2);
      if (end != std::string::npos) {
        out.append(p, i, end + 2 - i);
        i = end + 2;
        continue;
      }
    }
    if (inClass && c == ']')
      inClass = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool isLiteral = false;
  std::string literal;
  ~Impl() { pcre2_code_free(code); }
};

Regex::~Regex() = default;

std::unique_ptr<Regex> Regex::compile(const std::string& pattern, std::string* error) {
  int errcode = 0;
  PCRE2_SIZE erroff = 0;
  const std::string rewritten = rustCompatible(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                   PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(errcode, buf, sizeof(buf));
    if (error)
      *error = "regex /" + pattern + "/ does not compile at offset " + std::to_string(erroff) +
               ": " + reinterpret_cast<const char*>(buf);
    return nullptr;
  }
  // JIT is an optimisation only: without it (unsupported platform) the interpreter is used.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::unique_ptr<Regex> re(new Regex());
  re->impl_ = std::make_unique<Impl>();
  re->impl_->code = code;
  return re;
}

std::unique_ptr<Regex> Regex::literal(const std::string& literal, std::string* error) {
  if (literal.empty()) {
    if (error)
      *error = "empty string pattern";
    return nullptr;
  }
  std::unique_ptr<Regex> re(new Regex());
  re->impl_ = std::make_unique<Impl>();
  re->impl_->isLiteral = true;
  re->impl_->literal = literal;
  return re;
}

bool Regex::findNext(std::string_view subject, size_t* pos, Span* match) const {
  if (*pos > subject.size())
    return false;
  size_t b, e;
  if (impl_->isLiteral) {
    b = subject.find(impl_->literal, *pos);
    if (b == std::string_view::npos) {
      *pos = subject.size() + 1;
      return false;
    }
    e = b + impl_->literal.size();
  } else {
    ThreadScratch& ts = scratch();
    int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                         *pos, PCRE2_NO_UTF_CHECK, ts.md, ts.ctx);
    // rc == 0 only means the ovector was too small for the capture groups; group 0 is still set.
    if (rc < 0) {
      *pos = subject.size() + 1;
      return false;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ts.md);
    b = ov[0];
    e = ov[1];
  }
  *match = {b, e};
  if (e > b)
    *pos = e;
  else
    *pos = e < subject.size() ? e + utf8::seqLen(static_cast<unsigned char>(subject[e]))
                              : subject.size() + 1;
  return true;
}

void Regex::findAll(std::string_view subject, std::vector<Span>& out) const {
  out.clear();
  size_t pos = 0;
  Span m;
  while (findNext(subject, &pos, &m))
    out.push_back(m);
}

bool Regex::fullMatch(std::string_view subject) const {
  if (impl_->isLiteral)
    return subject == impl_->literal;
  ThreadScratch& ts = scratch();
  int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                       PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED | PCRE2_ENDANCHORED, ts.md, ts.ctx);
  return rc >= 0;
}

} // namespace kt::tok
