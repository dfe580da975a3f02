// Added tokens (special tokens like "<|im_start|>" and extra vocabulary like "<think>") are cut out
// of the text before the model sees it. Like HF, two matchers exist: one for tokens with
// normalized=false, run on the raw text, and one for normalized=true tokens, run on each normalized
// stretch. Matching is leftmost-longest; single_word, lstrip and rstrip are honoured.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kt::tok {

class Regex;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool singleWord = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

class AddedTokenMatcher {
public:
  // `patterns[i]` is the text to look for (the content, normalized for the normalized matcher);
  // `tokens[i]` its token.
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<const AddedToken*> tokens);
  ~AddedTokenMatcher();

  struct Segment {
    size_t begin, end;
    int32_t id; // -1 for ordinary text
  };
  // Splits `text` into ordinary stretches and added tokens, covering all of it.
  void split(std::string_view text, std::vector<Segment>& out) const;
  bool empty() const { return nodes_.size() <= 1; }

private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children; // sorted by byte
    int terminal = -1;                                   // index into tokens_
  };
  int child(int node, unsigned char c) const;
  std::vector<Node> nodes_;
  std::vector<const AddedToken*> tokens_;
  bool firstByte_[256] = {};
  std::unique_ptr<Regex> wordChar_;
};

} // namespace kt::tok
