// kt::tok — a Hugging Face tokenizer.json implementation (BPE models: byte-level BPE as in Qwen,
// Llama 3 and DeepSeek, and SentencePiece-style BPE with byte fallback as in Mistral/Llama 2),
// with chat-template rendering for the common model families. No Python, no exceptions across the
// API: failures are reported through error strings.
//
// Encoding follows HF tokenizers exactly: added tokens are cut out first (leftmost-longest,
// honouring lstrip/rstrip/single_word/normalized), the rest goes through normalizer,
// pre-tokenizer and the BPE model, and encode(text, true) applies the post-processor (BOS).
// Input that is not valid UTF-8 is repaired (U+FFFD) before encoding.
//
// All const methods are safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kt::tok {

struct ChatMessage {
  std::string role; // "system", "user", "assistant" or "tool"
  std::string content;
};

class Tokenizer {
public:
  // Parses tokenizer.json text and (optionally empty) tokenizer_config.json text. On failure
  // returns nullptr and sets *error (when non-null) to a message naming the file and the field at
  // fault, e.g. "tokenizer.json: model.merges[12]: expected a string or pair".
  static std::unique_ptr<Tokenizer> fromJson(const std::string& tokenizerJson,
                                             const std::string& tokenizerConfigJson,
                                             std::string* error);
  // Reads the files and calls fromJson. tokenizerConfigPath may be "". When the config has no
  // chat_template but a chat_template.jinja sits next to tokenizer.json, that one is used.
  static std::unique_ptr<Tokenizer> fromFiles(const std::string& tokenizerJsonPath,
                                              const std::string& tokenizerConfigPath,
                                              std::string* error);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // addSpecial applies tokenizer.json's post-processor (e.g. the BOS of Mistral's template).
  std::vector<int32_t> encode(std::string_view text, bool addSpecial) const;

  // Like HF's decode: ids that name no token (negative or >= vocabSize() or holes in the vocab)
  // are skipped silently; skipSpecial drops special added tokens. Use decodeChecked to be told.
  std::string decode(const std::vector<int32_t>& ids, bool skipSpecial) const;
  // As decode, but returns false and sets *error (naming the first bad id and its position)
  // when an id names no token; *out is then left unchanged.
  bool decodeChecked(const std::vector<int32_t>& ids, bool skipSpecial, std::string* out,
                     std::string* error) const;

  // From tokenizer_config.json's bos_token / eos_token; without a config, BOS falls back to the
  // post-processor's leading special token. -1 when none.
  int32_t bosId() const;
  int32_t eosId() const;
  // Ids that should end generation: eosId() plus the chat family's end-of-turn tokens
  // ("<|im_end|>", "<|eot_id|>", ...) that exist in the vocabulary.
  std::vector<int32_t> stopIds() const;

  // One past the largest id of the model vocabulary and the added tokens.
  size_t vocabSize() const;
  std::string tokenText(int32_t id) const;       // raw vocab string; "" for an unknown id
  int32_t tokenId(std::string_view token) const; // -1 when the exact string is not a token
  bool isSpecial(int32_t id) const;

  // True when tokenizer_config.json had a chat template of a recognised family.
  bool hasChatTemplate() const;
  // "chatml", "llama3", "deepseek", "mistral" or "none".
  std::string chatFamily() const;
  // Reproduces the model's template for these messages; family "none" gives a plain transcript
  // ("System text\n\nUser: ...\n\nAssistant:").
  std::string renderChat(const std::vector<ChatMessage>& messages, bool addGenerationPrompt) const;
  // renderChat + encode, with special tokens added only where the template does not write them
  // itself (i.e. only for family "none"), as transformers' apply_chat_template does.
  std::vector<int32_t> encodeChat(const std::vector<ChatMessage>& messages,
                                  bool addGenerationPrompt) const;

private:
  friend class StreamDecoder;
  Tokenizer();
  std::string decodeRange(const int32_t* ids, size_t n, bool skipSpecial) const;
  bool isKnownId(int32_t id) const;
  // A "<0xNN>" token of a byte-fallback model: runs of these decode together.
  bool isByteFallbackToken(int32_t id) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for generation: push ids one at a time and get back only text that is
// final — never half a UTF-8 character, never an unfinished run of <0xNN> byte-fallback tokens,
// and SentencePiece's leading-space stripping applied exactly as the full decode applies it. The
// concatenation of all push() results and flush() equals tokenizer.decode(allIds, skipSpecial).
// The Tokenizer must outlive the decoder.
class StreamDecoder {
public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skipSpecial = false);
  std::string push(int32_t id);
  // Ends the text: returns whatever was held back (e.g. a truncated character, as U+FFFD) and
  // resets the decoder, so the next push starts a new text.
  std::string flush();

private:
  bool isHeldByte(int32_t id) const;
  bool isSkipped(int32_t id) const;
  void compact();
  const Tokenizer& tok_;
  bool skipSpecial_;
  std::vector<int32_t> ids_; // context window: decode(ids_) is the text seen so far (or its tail)
  size_t emitted_ = 0;       // bytes of decode(ids_) already returned
};

} // namespace kt::tok
