#include "runtime/tokenizer/AddedTokens.h"

#include <algorithm>

#include "runtime/tokenizer/Regex.h"
#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

// Start of the character that ends just before `end`.
size_t prevCharStart(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80)
    --i;
  return i;
}

} // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns,
                                     std::vector<const AddedToken*> tokens)
    : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < patterns.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty())
      continue;
    int node = 0;
    for (unsigned char c : p) {
      int nx = child(node, c);
      if (nx < 0) {
        nx = static_cast<int>(nodes_.size());
        nodes_.emplace_back();
        auto& ch = nodes_[node].children;
        ch.insert(std::upper_bound(ch.begin(), ch.end(), std::make_pair(c, -1)), {c, nx});
      }
      node = nx;
    }
    // Two tokens with the same text: the first listed wins, as the trie would keep it.
    if (nodes_[node].terminal < 0)
      nodes_[node].terminal = static_cast<int>(t);
    firstByte_[static_cast<unsigned char>(p[0])] = true;
  }
  // Rust regex's \w, used by HF to decide whether a single_word token touches a word.
  std::string err;
  wordChar_ = Regex::compile("\\w", &err);
}

AddedTokenMatcher::~AddedTokenMatcher() = default;

int AddedTokenMatcher::child(int node, unsigned char c) const {
  const auto& ch = nodes_[node].children;
  auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, -1));
  return (it != ch.end() && it->first == c) ? it->second : -1;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  out.clear();
  const size_t n = text.size();
  size_t startOffset = 0; // end of the last emitted segment
  size_t i = 0;
  auto isWordChar = [&](size_t at) {
    size_t len = utf8::seqLen(static_cast<unsigned char>(text[at]));
    return wordChar_ && wordChar_->fullMatch(text.substr(at, len));
  };
  while (i < n) {
    if (!firstByte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int node = 0, best = -1;
    size_t bestEnd = 0;
    for (size_t j = i; j < n; ++j) {
      node = child(node, static_cast<unsigned char>(text[j]));
      if (node < 0)
        break;
      if (nodes_[node].terminal >= 0) {
        best = nodes_[node].terminal;
        bestEnd = j + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = *tokens_[best];
    size_t start = i, stop = bestEnd;
    i = bestEnd;
    if (tok.singleWord) {
      bool wordBefore = start > 0 && isWordChar(prevCharStart(text, start));
      bool wordAfter = stop < n && isWordChar(stop);
      if (wordBefore || wordAfter)
        continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > startOffset) {
        size_t p = prevCharStart(text, s);
        size_t k = p;
        if (!utf8::isWhitespace(utf8::next(text, k)))
          break;
        s = p;
      }
      start = s;
    }
    if (tok.rstrip) {
      while (stop < n) {
        size_t k = stop;
        if (!utf8::isWhitespace(utf8::next(text, k)))
          break;
        stop = k;
      }
      // Like HF (whose match iterator has already moved on), the search resumes at the end of
      // the token itself, so a token may start inside the whitespace this one swallowed.
    }
    if (startOffset < start)
      out.push_back({startOffset, start, -1});
    out.push_back({start, stop, tok.id});
    startOffset = stop;
  }
  if (startOffset < n)
    out.push_back({startOffset, n, -1});
}

} // namespace kt::tok
