// Pre-tokenizers cut normalized text into the "words" the model encodes independently.
// Supported "type"s: Sequence, Split (String/Regex pattern, all five behaviors, invert), ByteLevel,
// Digits, Metaspace, Whitespace, WhitespaceSplit.
//
// Pieces stream through the stages depth-first (each piece a stage emits goes straight on to the
// next stage and then to the model), so a multi-megabyte input never becomes a list of a million
// strings.
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

// A non-owning callable taking Piece& (like a function_ref): no allocation per call, unlike
// std::function. The callable must outlive the sink.
class PieceSink {
public:
  template <typename F>
  PieceSink(F& f) // NOLINT: implicit on purpose, sinks are built from lambdas at call sites
      : ctx_(&f), fn_([](void* c, Piece& p) { (*static_cast<F*>(c))(p); }) {}
  void operator()(Piece& p) const { fn_(ctx_, p); }

private:
  void* ctx_;
  void (*fn_)(void*, Piece&);
};

class PreTokenizer {
public:
  virtual ~PreTokenizer() = default;
  // Splits one piece, passing each non-empty result to `emit` in order (HF drops empty splits).
  // `in` may be modified or moved from.
  virtual void split(Piece& in, const PieceSink& emit) const = 0;
  // The stages to run in order (a Sequence lists its parts).
  virtual void stages(std::vector<const PreTokenizer*>& out) const { out.push_back(this); }
};

// `j` is tokenizer.json's "pre_tokenizer" value; returns nullptr for null. Throws ParseError.
std::unique_ptr<PreTokenizer> parsePreTokenizer(const json& j, const std::string& path);

// Runs `piece` through stages[k..] and hands every final piece to `sink`.
void runPreTokenizers(const std::vector<const PreTokenizer*>& stages, size_t k, Piece& piece,
                      const PieceSink& sink);

} // namespace kt::tok
