#include "runtime/tokenizer/PreTokenizer.h"

#include <algorithm>

#include "runtime/tokenizer/ByteLevel.h"
#include "runtime/tokenizer/Pattern.h"
#include "runtime/tokenizer/Regex.h"

namespace kt::tok {
namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parseBehavior(const json& j, const std::string& path) {
  std::string s = asString(j, path);
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  throw ParseError(path, "unknown split behavior '" + s + "'");
}

struct Seg {
  size_t begin, end;
  bool flag;  // "is a match" on input, "is removed" on output
};

// HF's NormalizedString::split: the matches and the gaps between them cover the text; the behavior
// decides what is kept and what is glued to a neighbour.
void splitPiece(const Piece& piece, const std::vector<Regex::Span>& matches, bool invert,
                Behavior behavior, std::vector<Piece>& out) {
  const std::string& text = piece.text;
  std::vector<Seg> segs;
  segs.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) segs.push_back({prev, b, false});
    segs.push_back({b, e, true});
    prev = e;
  }
  if (prev != text.size() || segs.empty()) segs.push_back({prev, text.size(), false});
  if (invert)
    for (Seg& s : segs) s.flag = !s.flag;

  std::vector<Seg> res;
  res.reserve(segs.size());
  bool prevMatch = false;
  switch (behavior) {
    case Behavior::Isolated:
      for (const Seg& s : segs) res.push_back({s.begin, s.end, false});
      break;
    case Behavior::Removed:
      res = segs;
      break;
    case Behavior::Contiguous:
      for (const Seg& s : segs) {
        if (s.flag == prevMatch && !res.empty())
          res.back().end = s.end;
        else
          res.push_back({s.begin, s.end, false});
        prevMatch = s.flag;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (const Seg& s : segs) {
        if (s.flag && !prevMatch && !res.empty())
          res.back().end = s.end;
        else
          res.push_back({s.begin, s.end, false});
        prevMatch = s.flag;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->flag && !prevMatch && !res.empty())
          res.back().begin = it->begin;
        else
          res.push_back({it->begin, it->end, false});
        prevMatch = it->flag;
      }
      std::reverse(res.begin(), res.end());
      break;
  }
  for (const Seg& s : res) {
    if (s.flag || s.end == s.begin) continue;
    out.push_back({text.substr(s.begin, s.end - s.begin), piece.atStart && s.begin == 0});
  }
}

// A pre-tokenizer that is one regex split (Split, Digits, Whitespace, ...).
class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, Behavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    std::vector<Regex::Span> matches;
    for (const Piece& p : pieces) {
      re_->findAll(p.text, matches);
      splitPiece(p, matches, invert_, behavior_, out);
    }
    pieces.swap(out);
  }

 private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

std::unique_ptr<Regex> mustCompile(const std::string& pattern) {
  std::string err;
  auto re = Regex::compile(pattern, &err);
  if (!re) throw ParseError("", "internal pattern: " + err);
  return re;
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
      : addPrefixSpace_(addPrefixSpace) {
    // GPT-2's split, as HF hard-codes it for use_regex=true.
    if (useRegex)
      gpt2_ = mustCompile(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
  }
  void apply(std::vector<Piece>& pieces) const override {
    if (addPrefixSpace_) {
      for (Piece& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
    }
    if (gpt2_) {
      std::vector<Piece> out;
      std::vector<Regex::Span> matches;
      for (const Piece& p : pieces) {
        gpt2_->findAll(p.text, matches);
        splitPiece(p, matches, false, Behavior::Isolated, out);
      }
      pieces.swap(out);
    }
    for (Piece& p : pieces) p.text = bytelevel::encode(p.text);
  }

 private:
  bool addPrefixSpace_;
  std::unique_ptr<Regex> gpt2_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {
    std::string err;
    repRe_ = Regex::literal(rep_, &err);
  }
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    std::vector<Regex::Span> matches;
    for (Piece& p : pieces) {
      std::string s;
      s.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ')
          s += rep_;
        else
          s.push_back(c);
      }
      bool startsWithRep = s.compare(0, rep_.size(), rep_) == 0;
      if (!startsWithRep && (scheme_ == PrependScheme::Always ||
                             (scheme_ == PrependScheme::First && p.atStart)))
        s.insert(0, rep_);
      p.text.swap(s);
      if (split_) {
        repRe_->findAll(p.text, matches);
        splitPiece(p, matches, false, Behavior::MergedWithNext, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
  std::unique_ptr<Regex> repRe_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> parsePreTokenizer(const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = typeOf(j, path);
  if (type == "Sequence") {
    const json& list = member(j, "pretokenizers", path);
    std::string lp = joinPath(path, "pretokenizers");
    if (!list.is_array()) throw ParseError(lp, "expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto p = parsePreTokenizer(list[i], indexPath(lp, i))) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    auto re = parsePattern(member(j, "pattern", path), joinPath(path, "pattern"));
    Behavior b = parseBehavior(member(j, "behavior", path), joinPath(path, "behavior"));
    return std::make_unique<SplitPreTokenizer>(std::move(re), b,
                                               optBool(j, "invert", false, path));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(optBool(j, "add_prefix_space", true, path),
                                                   optBool(j, "use_regex", true, path));
  }
  if (type == "Digits") {
    bool individual = optBool(j, "individual_digits", false, path);
    // char::is_numeric is the N category; runs of it form one piece unless digits are individual.
    return std::make_unique<SplitPreTokenizer>(mustCompile(individual ? "\\p{N}" : "\\p{N}+"),
                                               Behavior::Isolated, false);
  }
  if (type == "Metaspace") {
    std::string rep = optString(j, "replacement", "\xE2\x96\x81", path);
    PrependScheme scheme = PrependScheme::Always;
    if (const json* ps = optMember(j, "prepend_scheme")) {
      std::string s = asString(*ps, joinPath(path, "prepend_scheme"));
      if (s == "always")
        scheme = PrependScheme::Always;
      else if (s == "first")
        scheme = PrependScheme::First;
      else if (s == "never")
        scheme = PrependScheme::Never;
      else
        throw ParseError(joinPath(path, "prepend_scheme"), "unknown scheme '" + s + "'");
    } else if (!optBool(j, "add_prefix_space", true, path)) {
      scheme = PrependScheme::Never;  // legacy files say add_prefix_space instead
    }
    return std::make_unique<MetaspacePreTokenizer>(rep, scheme, optBool(j, "split", true, path));
  }
  // Regex::compile gives \w and \s their Unicode (Oniguruma/Rust) meaning.
  if (type == "Whitespace") {
    return std::make_unique<SplitPreTokenizer>(mustCompile("\\w+|[^\\w\\s]+"), Behavior::Removed,
                                               true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>(mustCompile("\\s+"), Behavior::Removed, false);
  }
  throw ParseError(joinPath(path, "type"), "unsupported pre_tokenizer '" + type + "'");
}

}  // namespace kt::tok
