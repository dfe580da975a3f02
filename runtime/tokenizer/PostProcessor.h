// Post-processors add the special tokens of a single sequence when encode(addSpecial=true).
// Supported "type"s: TemplateProcessing, ByteLevel (offsets only, so ids pass through), Sequence,
// BertProcessing, RobertaProcessing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/Json.h"

namespace kt::tok {

class PostProcessor {
public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;
  // The first special token the processor puts in front of a sequence (the BOS), or -1.
  virtual int32_t leadingSpecial() const { return -1; }
};

// `j` is tokenizer.json's "post_processor" value; returns nullptr for null. Throws ParseError.
std::unique_ptr<PostProcessor> parsePostProcessor(const json& j, const std::string& path);

} // namespace kt::tok
