// Pre-tokenizers cut normalized text into the "words" the model encodes independently.
// Supported "type"s: Sequence, Split (String/Regex pattern, all five behaviors, invert), ByteLevel,
// Digits, Metaspace, Whitespace, WhitespaceSplit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/Json.h"

namespace kt::tok {

struct Piece {
  std::string text;
  // True when the piece begins at offset 0 of the original input: Metaspace's "first" prepend
  // scheme only adds "▁" there.
  bool atStart = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; empty pieces are dropped, as HF does.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

// `j` is tokenizer.json's "pre_tokenizer" value; returns nullptr for null. Throws ParseError.
std::unique_ptr<PreTokenizer> parsePreTokenizer(const json& j, const std::string& path);

}  // namespace kt::tok
