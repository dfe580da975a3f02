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
  if (s == "Removed")
    return Behavior::Removed;
  if (s == "Isolated")
    return Behavior::Isolated;
  if (s == "MergedWithPrevious")
    return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext")
    return Behavior::MergedWithNext;
  if (s == "Contiguous")
    return Behavior::Contiguous;
  throw ParseError(path, "unknown split behavior '" + s + "'");
}

// HF's NormalizedString::split, streamed: the matches and the gaps between them cover the text, in
// order; the behavior decides which stretches are kept and which are glued to a neighbour. Groups
// are passed to `onGroup(begin, end)` as soon as they are complete (at most one is held back).
template <typename OnGroup> class Grouper {
public:
  Grouper(Behavior b, OnGroup& onGroup) : behavior_(b), onGroup_(onGroup) {}

  void add(size_t b, size_t e, bool match) {
    switch (behavior_) {
    case Behavior::Isolated:
      onGroup_(b, e);
      break;
    case Behavior::Removed:
      if (!match)
        onGroup_(b, e);
      break;
    case Behavior::Contiguous:
      if (held_ && match == prevMatch_) {
        end_ = e;
      } else {
        flush();
        hold(b, e);
      }
      break;
    case Behavior::MergedWithPrevious:
      // The first match after a gap joins that gap.
      if (held_ && match && !prevMatch_) {
        end_ = e;
      } else {
        flush();
        hold(b, e);
      }
      break;
    case Behavior::MergedWithNext:
      // A match joins the gap that follows it; only a pending match is ever held.
      if (held_) {
        if (!match) {
          onGroup_(begin_, e);
          held_ = false;
        } else {
          onGroup_(begin_, end_);
          hold(b, e);
        }
      } else if (match) {
        hold(b, e);
      } else {
        onGroup_(b, e);
      }
      break;
    }
    prevMatch_ = match;
  }
  void finish() { flush(); }

private:
  void hold(size_t b, size_t e) {
    held_ = true;
    begin_ = b;
    end_ = e;
  }
  void flush() {
    if (held_)
      onGroup_(begin_, end_);
    held_ = false;
  }
  Behavior behavior_;
  OnGroup& onGroup_;
  bool held_ = false, prevMatch_ = false;
  size_t begin_ = 0, end_ = 0;
};

// Feeds the matches of `re` in `text` and the gaps between them to `g`.
template <typename G>
void feedMatches(const Regex& re, const std::string& text, bool invert, G& g) {
  size_t pos = 0, prev = 0;
  Regex::Span m;
  while (re.findNext(text, &pos, &m)) {
    if (prev != m.first)
      g.add(prev, m.first, invert);
    g.add(m.first, m.second, !invert);
    prev = m.second;
  }
  if (prev != text.size())
    g.add(prev, text.size(), invert);
  g.finish();
}

// Emits the non-empty [b, e) stretches of `src` as pieces.
struct EmitSlices {
  const Piece& src;
  const PieceSink& emit;
  void operator()(size_t b, size_t e) const {
    if (e == b)
      return;
    Piece p{src.text.substr(b, e - b), src.atStart && b == 0};
    emit(p);
  }
};

// A pre-tokenizer that is one regex split (Split, Digits, Whitespace, ...).
class SplitPreTokenizer : public PreTokenizer {
public:
  SplitPreTokenizer(std::unique_ptr<Regex> re, Behavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void split(Piece& in, const PieceSink& emit) const override {
    EmitSlices slices{in, emit};
    Grouper<EmitSlices> g(behavior_, slices);
    feedMatches(*re_, in.text, invert_, g);
  }

private:
  std::unique_ptr<Regex> re_;
  Behavior behavior_;
  bool invert_;
};

std::unique_ptr<Regex> mustCompile(const std::string& pattern) {
  std::string err;
  auto re = Regex::compile(pattern, &err);
  if (!re)
    throw ParseError("", "internal pattern: " + err);
  return re;
}

class ByteLevelPreTokenizer : public PreTokenizer {
public:
  ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : addPrefixSpace_(addPrefixSpace) {
    // GPT-2's split, as HF hard-codes it for use_regex=true.
    if (useRegex)
      gpt2_ = mustCompile(
          "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
  }
  void split(Piece& in, const PieceSink& emit) const override {
    if (addPrefixSpace_ && (in.text.empty() || in.text[0] != ' '))
      in.text.insert(0, " ");
    auto mapped = [&](size_t b, size_t e) {
      if (e == b)
        return;
      Piece p{bytelevel::encode(std::string_view(in.text).substr(b, e - b)), in.atStart && b == 0};
      emit(p);
    };
    if (!gpt2_) {
      mapped(0, in.text.size());
      return;
    }
    Grouper<decltype(mapped)> g(Behavior::Isolated, mapped);
    feedMatches(*gpt2_, in.text, false, g);
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
  void split(Piece& in, const PieceSink& emit) const override {
    std::string s;
    s.reserve(in.text.size() + rep_.size());
    for (char c : in.text) {
      if (c == ' ')
        s += rep_;
      else
        s.push_back(c);
    }
    bool startsWithRep = s.compare(0, rep_.size(), rep_) == 0;
    if (!startsWithRep &&
        (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && in.atStart)))
      s.insert(0, rep_);
    in.text.swap(s);
    if (!split_) {
      if (!in.text.empty())
        emit(in);
      return;
    }
    EmitSlices slices{in, emit};
    Grouper<EmitSlices> g(Behavior::MergedWithNext, slices);
    feedMatches(*repRe_, in.text, false, g);
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
  void split(Piece& in, const PieceSink& emit) const override {
    std::vector<const PreTokenizer*> all;
    stages(all);
    runPreTokenizers(all, 0, in, emit);
  }
  void stages(std::vector<const PreTokenizer*>& out) const override {
    for (const auto& p : parts_)
      p->stages(out);
  }

private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

} // namespace

void runPreTokenizers(const std::vector<const PreTokenizer*>& stages, size_t k, Piece& piece,
                      const PieceSink& sink) {
  if (k == stages.size()) {
    sink(piece);
    return;
  }
  auto next = [&](Piece& p) { runPreTokenizers(stages, k + 1, p, sink); };
  stages[k]->split(piece, PieceSink(next));
}

std::unique_ptr<PreTokenizer> parsePreTokenizer(const json& j, const std::string& path) {
  if (j.is_null())
    return nullptr;
  std::string type = typeOf(j, path);
  if (type == "Sequence") {
    const json& list = member(j, "pretokenizers", path);
    std::string lp = joinPath(path, "pretokenizers");
    if (!list.is_array())
      throw ParseError(lp, "expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto p = parsePreTokenizer(list[i], indexPath(lp, i)))
        parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    auto re = parsePattern(member(j, "pattern", path), joinPath(path, "pattern"));
    Behavior b = parseBehavior(member(j, "behavior", path), joinPath(path, "behavior"));
    return std::make_unique<SplitPreTokenizer>(std::move(re), b, optBool(j, "invert", false, path));
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
      scheme = PrependScheme::Never; // legacy files say add_prefix_space instead
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

} // namespace kt::tok
