// Decoders turn the token strings of an id sequence back into text. Like HF, each decoder maps a
// list of token strings to a new list (decode_chain); the results are concatenated at the end.
// Supported "type"s: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/Json.h"

namespace kt::tok {

class Decoder {
public:
  virtual ~Decoder() = default;
  virtual void decodeChain(std::vector<std::string>& tokens) const = 0;
};

// `j` is tokenizer.json's "decoder" value; returns nullptr for null. Throws ParseError.
std::unique_ptr<Decoder> parseDecoder(const json& j, const std::string& path);

} // namespace kt::tok
