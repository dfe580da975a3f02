// Normalizers: the first stage of encoding, applied to each stretch of text between added tokens.
// Supported "type"s: Sequence, NFC, NFD, Prepend, Replace (String or Regex pattern), Strip.
#pragma once

#include <memory>
#include <string>

#include "runtime/tokenizer/Json.h"

namespace kt::tok {

class Normalizer {
public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// `j` is tokenizer.json's "normalizer" value; returns nullptr for null. Throws ParseError.
std::unique_ptr<Normalizer> parseNormalizer(const json& j, const std::string& path);

} // namespace kt::tok
