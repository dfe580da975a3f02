#include "runtime/tokenizer/Normalizer.h"

#include <vector>

#include "runtime/tokenizer/Pattern.h"
#include "runtime/tokenizer/Unicode.h"
#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

class SequenceNormalizer : public Normalizer {
public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_)
      p->normalize(text);
  }

private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class NfcNormalizer : public Normalizer {
public:
  void normalize(std::string& text) const override {
    if (!unicode::isNfcQuick(text))
      text = unicode::nfc(text);
  }
};

class NfdNormalizer : public Normalizer {
public:
  void normalize(std::string& text) const override { text = unicode::nfd(text); }
};

// SentencePiece-style "▁" prefix. HF only prepends to non-empty text, which is why an added token
// at the very start of the input gets no "▁" before it.
class PrependNormalizer : public Normalizer {
public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty())
      text.insert(0, prefix_);
  }

private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
public:
  ReplaceNormalizer(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { replaceAll(*re_, content_, text); }

private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class StripNormalizer : public Normalizer {
public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t b = 0, e = text.size();
    if (left_) {
      while (b < e) {
        size_t i = b;
        if (!utf8::isWhitespace(utf8::next(text, i)))
          break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
          --start;
        size_t i = start;
        if (!utf8::isWhitespace(utf8::next(text, i)))
          break;
        e = start;
      }
    }
    text = text.substr(b, e - b);
  }

private:
  bool left_, right_;
};

} // namespace

std::unique_ptr<Normalizer> parseNormalizer(const json& j, const std::string& path) {
  if (j.is_null())
    return nullptr;
  std::string type = typeOf(j, path);
  if (type == "Sequence") {
    const json& list = member(j, "normalizers", path);
    std::string lp = joinPath(path, "normalizers");
    if (!list.is_array())
      throw ParseError(lp, "expected an array");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto n = parseNormalizer(list[i], indexPath(lp, i)))
        parts.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC")
    return std::make_unique<NfcNormalizer>();
  if (type == "NFD")
    return std::make_unique<NfdNormalizer>();
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(
        asString(member(j, "prepend", path), joinPath(path, "prepend")));
  }
  if (type == "Replace") {
    auto re = parsePattern(member(j, "pattern", path), joinPath(path, "pattern"));
    return std::make_unique<ReplaceNormalizer>(
        std::move(re), asString(member(j, "content", path), joinPath(path, "content")));
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(optBool(j, "strip_left", true, path),
                                             optBool(j, "strip_right", true, path));
  }
  throw ParseError(joinPath(path, "type"), "unsupported normalizer '" + type + "'");
}

} // namespace kt::tok
