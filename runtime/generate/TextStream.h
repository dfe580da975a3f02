#pragma once
// Generated ids to text as they come, cut at stop strings: what kt-rt run/chat print and what
// kt-rt serve streams. Text is handed to `emit` only once it is final — a tail that could still
// grow into a stop string is held back, and the stop string itself is never emitted.
#include "runtime/tokenizer/Tokenizer.h"

#include <functional>
#include <string>
#include <vector>

namespace kt {

class TextStream {
public:
  // The decoder is primed with the prompt so the reply is decoded in context (SentencePiece
  // strips the leading space of a text's first token, which the reply's first token is not).
  TextStream(const tok::Tokenizer& tok, const std::vector<int32_t>& prompt,
             std::vector<std::string> stops, std::function<void(const std::string&)> emit);

  // Returns false once a stop string was produced (generation should end).
  bool push(int32_t id);
  // The end of generation: emits what was held back.
  void finish();
  const std::string& text() const { return text_; } // everything emitted so far
  bool stopped() const { return stopped_; }         // a stop string ended the text

private:
  bool drain(bool all);
  void emit(const std::string& s);

  tok::StreamDecoder dec_;
  std::vector<std::string> stops_;
  std::function<void(const std::string&)> emit_;
  std::string pending_, text_;
  bool stopped_ = false;
};

} // namespace kt
