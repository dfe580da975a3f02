// Chat templates without a Jinja engine: the template text from tokenizer_config.json is only used
// to recognise the family (and a few variant switches inside it); rendering is hand-written C++
// that reproduces what that template renders for plain system/user/assistant(/tool) messages.
//
// Families: "chatml" (Qwen2/2.5/3, incl. Qwen3's <think> handling of past assistant turns),
// "llama3" (3.0 and the 3.1+ header with "Cutting Knowledge Date"), "deepseek" (V3, and R1's
// stripping of reasoning from past turns), "mistral" ([INST] ... [/INST]), and "none": a plain
// "User: ...\n\nAssistant:" transcript for models without a (recognised) template.
#pragma once

#include <string>
#include <vector>

#include "runtime/tokenizer/Tokenizer.h"

namespace kt::tok {

class ChatTemplate {
public:
  // `source` is the Jinja text ("" when the tokenizer has none); bos/eos are the token strings
  // the template refers to as bos_token / eos_token.
  static ChatTemplate detect(const std::string& source, const std::string& bos,
                             const std::string& eos);
  ChatTemplate() = default;

  const std::string& family() const { return family_; }
  bool recognised() const { return family_ != "none"; }
  std::string render(const std::vector<ChatMessage>& messages, bool addGenerationPrompt) const;

private:
  std::string renderChatml(const std::vector<ChatMessage>& m, bool gen) const;
  std::string renderLlama3(const std::vector<ChatMessage>& m, bool gen) const;
  std::string renderDeepseek(const std::vector<ChatMessage>& m, bool gen) const;
  std::string renderMistral(const std::vector<ChatMessage>& m) const;
  static std::string renderPlain(const std::vector<ChatMessage>& m, bool gen);

  std::string family_ = "none";
  std::string bos_, eos_;
  // chatml
  bool qwen3Thinking_ = false; // Qwen3: <think> blocks on assistant turns after the last query
  std::string defaultSystem_;  // Qwen2/2.5 insert one when the chat has no system message
  // llama3
  bool genPromptGuarded_ = true; // false: the template appends the assistant header always
  bool llama31Header_ = false;   // 3.1+: system block with "Cutting Knowledge Date"
  std::string dateString_;
  // deepseek
  bool stripThinking_ = false; // R1: drop "...</think>" from past assistant turns
  bool genThink_ = false;      // R1: generation prompt opens "<think>\n"
};

} // namespace kt::tok
