#include "runtime/tokenizer/Decoder.h"

#include "runtime/tokenizer/ByteLevel.h"
#include "runtime/tokenizer/Pattern.h"
#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

// Byte-level tokens back to bytes. A token containing a character outside the 256 stand-ins (an
// added token such as "<｜User｜>") contributes its own UTF-8 bytes. Invalid UTF-8 in the joined
// bytes is repaired once, over the whole text, so characters split across tokens survive.
class ByteLevelDecoder : public Decoder {
public:
  void decodeChain(std::vector<std::string>& tokens) const override {
    const auto& t = bytelevel::tables();
    std::string bytes;
    for (const std::string& tok : tokens) {
      size_t mark = bytes.size();
      bool mapped = true;
      size_t i = 0;
      while (i < tok.size()) {
        char32_t cp = utf8::next(tok, i);
        int b = cp < 512 ? t.charToByte[cp] : -1;
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes += tok;
      }
    }
    tokens.assign(1, utf8::lossy(bytes));
  }
};

class SequenceDecoder : public Decoder {
public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_)
      p->decodeChain(tokens);
  }

private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ReplaceDecoder : public Decoder {
public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void decodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens)
      replaceAll(*re_, content_, t);
  }

private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// "<0xNN>" tokens become raw bytes. A run of them that is valid UTF-8 becomes that text; otherwise
// every byte of the run becomes U+FFFD (HF's rule, not from_utf8_lossy's).
class ByteFallbackDecoder : public Decoder {
public:
  static int parseByteToken(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>')
      return -1;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9')
        return c - '0';
      if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
      if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
      return -1;
    };
    int hi = hex(t[3]), lo = hex(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
  }
  void decodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string run;
    auto flush = [&]() {
      if (run.empty())
        return;
      if (utf8::isValid(run)) {
        out.push_back(run);
      } else {
        for (size_t k = 0; k < run.size(); ++k)
          out.emplace_back(utf8::kReplacementUtf8);
      }
      run.clear();
    };
    for (std::string& t : tokens) {
      int b = parseByteToken(t);
      if (b >= 0) {
        run.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
public:
  void decodeChain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens)
      all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decodeChain(std::vector<std::string>& tokens) const override {
    const size_t w = content_.size();
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && e - b >= w && t.compare(b, w, content_) == 0; ++k)
        b += w;
      for (size_t k = 0; k < stop_ && e - b >= w && t.compare(e - w, w, content_) == 0; ++k)
        e -= w;
      t = t.substr(b, e - b);
    }
  }

private:
  std::string content_;
  size_t start_, stop_;
};

// Metaspace: "▁" becomes a space, except in the first token where HF drops it entirely (unless
// the prepend scheme is "never").
class MetaspaceDecoder : public Decoder {
public:
  MetaspaceDecoder(std::string rep, bool dropInFirst)
      : rep_(std::move(rep)), dropInFirst_(dropInFirst) {}
  void decodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      std::string out;
      out.reserve(t.size());
      size_t p = 0;
      while (p < t.size()) {
        if (t.compare(p, rep_.size(), rep_) == 0) {
          if (!(i == 0 && dropInFirst_))
            out.push_back(' ');
          p += rep_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      t.swap(out);
    }
  }

private:
  std::string rep_;
  bool dropInFirst_;
};

} // namespace

std::unique_ptr<Decoder> parseDecoder(const json& j, const std::string& path) {
  if (j.is_null())
    return nullptr;
  std::string type = typeOf(j, path);
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelDecoder>();
  if (type == "Sequence") {
    const json& list = member(j, "decoders", path);
    std::string lp = joinPath(path, "decoders");
    if (!list.is_array())
      throw ParseError(lp, "expected an array");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto d = parseDecoder(list[i], indexPath(lp, i)))
        parts.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "Replace") {
    auto re = parsePattern(member(j, "pattern", path), joinPath(path, "pattern"));
    return std::make_unique<ReplaceDecoder>(
        std::move(re), asString(member(j, "content", path), joinPath(path, "content")));
  }
  if (type == "ByteFallback")
    return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse")
    return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = asString(member(j, "content", path), joinPath(path, "content"));
    long long start = asInt(member(j, "start", path), joinPath(path, "start"));
    long long stop = asInt(member(j, "stop", path), joinPath(path, "stop"));
    if (start < 0 || stop < 0)
      throw ParseError(path, "negative strip count");
    return std::make_unique<StripDecoder>(content, static_cast<size_t>(start),
                                          static_cast<size_t>(stop));
  }
  if (type == "Metaspace") {
    std::string rep = optString(j, "replacement", "\xE2\x96\x81", path);
    bool drop = true;
    if (const json* ps = optMember(j, "prepend_scheme"))
      drop = asString(*ps, joinPath(path, "prepend_scheme")) != "never";
    else
      drop = optBool(j, "add_prefix_space", true, path);
    return std::make_unique<MetaspaceDecoder>(rep, drop);
  }
  throw ParseError(joinPath(path, "type"), "unsupported decoder '" + type + "'");
}

} // namespace kt::tok
