// HF's pattern objects ({"String": "..."} or {"Regex": "..."}), shared by the Split pre-tokenizer,
// the Replace normalizer and the Replace decoder.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/Json.h"
#include "runtime/tokenizer/Regex.h"

namespace kt::tok {

inline std::unique_ptr<Regex> parsePattern(const json& j, const std::string& path) {
  std::string err;
  std::unique_ptr<Regex> re;
  if (const json* s = optMember(j, "String")) {
    re = Regex::literal(asString(*s, joinPath(path, "String")), &err);
    if (!re)
      throw ParseError(joinPath(path, "String"), err);
  } else if (const json* r = optMember(j, "Regex")) {
    re = Regex::compile(asString(*r, joinPath(path, "Regex")), &err);
    if (!re)
      throw ParseError(joinPath(path, "Regex"), err);
  } else {
    throw ParseError(path, "expected an object with \"String\" or \"Regex\"");
  }
  return re;
}

// Replaces every match of `re` in `text` with `content`.
inline void replaceAll(const Regex& re, const std::string& content, std::string& text) {
  std::vector<Regex::Span> spans;
  re.findAll(text, spans);
  if (spans.empty())
    return;
  std::string out;
  out.reserve(text.size() + spans.size() * content.size());
  size_t prev = 0;
  for (const auto& [b, e] : spans) {
    out.append(text, prev, b - prev);
    out += content;
    prev = e;
  }
  out.append(text, prev, std::string::npos);
  text.swap(out);
}

} // namespace kt::tok
