#include "runtime/tokenizer/Tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "runtime/tokenizer/AddedTokens.h"
#include "runtime/tokenizer/Bpe.h"
#include "runtime/tokenizer/ChatTemplate.h"
#include "runtime/tokenizer/Decoder.h"
#include "runtime/tokenizer/Json.h"
#include "runtime/tokenizer/Normalizer.h"
#include "runtime/tokenizer/PostProcessor.h"
#include "runtime/tokenizer/PreTokenizer.h"
#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> preTokenizer;
  std::vector<const PreTokenizer*> stages; // preTokenizer's stages, flattened
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> postProcessor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added; // never resized after the matchers point into it
  std::unordered_map<int32_t, size_t> addedById;
  std::unordered_map<std::string, int32_t> addedByContent;
  std::unordered_set<std::string> specialContents;
  std::unique_ptr<AddedTokenMatcher> rawMatcher;        // normalized=false tokens
  std::unique_ptr<AddedTokenMatcher> normalizedMatcher; // normalized=true tokens

  size_t vocabSize = 0;
  int32_t bos = -1, eos = -1;
  std::string chatSource;
  ChatTemplate chat;

  const std::string* tokenString(int32_t id) const {
    auto it = addedById.find(id);
    if (it != addedById.end())
      return &added[it->second].content;
    return model->idToToken(id);
  }
  int32_t idOf(std::string_view s) const {
    auto it = addedByContent.find(std::string(s));
    if (it != addedByContent.end())
      return it->second;
    return model->tokenToId(s);
  }
  // Like HF, special-ness belongs to the token text, whichever id it is reached by.
  bool special(int32_t id) const {
    if (specialContents.empty())
      return false;
    const std::string* s = tokenString(id);
    return s && specialContents.count(*s) != 0;
  }
  void encodeText(std::string_view text, bool atStart, std::vector<int32_t>& ids) const;
};

namespace {

// tokenizer_config.json writes special tokens either as a string or as an AddedToken object.
std::string configToken(const json& cfg, const char* key, bool* present) {
  *present = false;
  if (!cfg.is_object())
    return "";
  auto it = cfg.find(key);
  if (it == cfg.end())
    return "";
  *present = true;
  if (it->is_string())
    return it->get<std::string>();
  if (it->is_object())
    return asString(member(*it, "content", key), std::string(key) + ".content");
  if (it->is_null())
    return "";
  throw ParseError(key, "expected a string, an object with \"content\", or null");
}

std::string chatTemplateSource(const json& cfg) {
  const json* t = optMember(cfg, "chat_template");
  if (!t)
    return "";
  if (t->is_string())
    return t->get<std::string>();
  // Newer configs may list named templates; the one called "default" is used for chat.
  if (t->is_array()) {
    for (size_t i = 0; i < t->size(); ++i) {
      const json& e = (*t)[i];
      std::string p = indexPath("chat_template", i);
      if (asString(member(e, "name", p), p + ".name") == "default")
        return asString(member(e, "template", p), p + ".template");
    }
    return "";
  }
  throw ParseError("chat_template", "expected a string or a list of {name, template}");
}

bool readFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return static_cast<bool>(f) || f.eof();
}

} // namespace

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::fromJson(const std::string& tokenizerJson,
                                               const std::string& tokenizerConfigJson,
                                               std::string* error) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  Impl& im = *tok->impl_;
  std::string file = "tokenizer.json";
  try {
    json j = json::parse(tokenizerJson);
    if (!j.is_object())
      throw ParseError("", "expected a JSON object at the top level");
    im.model = BpeModel::parse(member(j, "model", ""), "model");
    const json null;
    auto field = [&](const char* k) -> const json& {
      const json* v = optMember(j, k);
      return v ? *v : null;
    };
    im.normalizer = parseNormalizer(field("normalizer"), "normalizer");
    im.preTokenizer = parsePreTokenizer(field("pre_tokenizer"), "pre_tokenizer");
    if (im.preTokenizer)
      im.preTokenizer->stages(im.stages);
    im.postProcessor = parsePostProcessor(field("post_processor"), "post_processor");
    im.decoder = parseDecoder(field("decoder"), "decoder");

    int64_t maxId = im.model->maxId();
    if (const json* list = optMember(j, "added_tokens")) {
      if (!list->is_array())
        throw ParseError("added_tokens", "expected an array");
      im.added.reserve(list->size());
      int64_t maxAdded = -1;
      for (size_t i = 0; i < list->size(); ++i) {
        const json& e = (*list)[i];
        std::string p = indexPath("added_tokens", i);
        AddedToken t;
        long long id = asInt(member(e, "id", p), p + ".id");
        if (id < 0 || id > INT32_MAX)
          throw ParseError(p + ".id", "id out of range");
        t.content = asString(member(e, "content", p), p + ".content");
        t.special = optBool(e, "special", false, p);
        t.singleWord = optBool(e, "single_word", false, p);
        t.lstrip = optBool(e, "lstrip", false, p);
        t.rstrip = optBool(e, "rstrip", false, p);
        t.normalized = optBool(e, "normalized", !t.special, p);
        if (t.content.empty())
          continue; // HF ignores these
        // HF does not trust the ids written in the file: a token already in the vocabulary keeps
        // that id, a new one gets the next free id after the model vocabulary. Files HF wrote
        // agree with this; others are read the way HF reads them.
        int32_t assigned = im.idOf(t.content);
        if (assigned < 0) {
          int64_t vocabLen = static_cast<int64_t>(im.model->vocabCount());
          assigned = static_cast<int32_t>(maxAdded < 0                              ? vocabLen
                                          : (maxAdded >= vocabLen || vocabLen == 0) ? maxAdded + 1
                                                                                    : vocabLen);
        }
        t.id = assigned;
        maxAdded = std::max<int64_t>(maxAdded, assigned);
        maxId = std::max<int64_t>(maxId, assigned);
        if (t.special)
          im.specialContents.insert(t.content);
        im.addedByContent[t.content] = assigned;
        auto it = im.addedById.find(assigned);
        if (it != im.addedById.end()) {
          im.added[it->second] = std::move(t);
        } else {
          im.addedById[assigned] = im.added.size();
          im.added.push_back(std::move(t));
        }
      }
    }
    im.vocabSize = static_cast<size_t>(maxId + 1);

    std::vector<std::string> rawPat, normPat;
    std::vector<const AddedToken*> rawTok, normTok;
    for (const AddedToken& t : im.added) {
      if (t.normalized) {
        // Normalized tokens are searched for in normalized text, so normalize them the same way.
        std::string pat = t.content;
        if (im.normalizer)
          im.normalizer->normalize(pat);
        normPat.push_back(pat);
        normTok.push_back(&t);
      } else {
        rawPat.push_back(t.content);
        rawTok.push_back(&t);
      }
    }
    im.rawMatcher = std::make_unique<AddedTokenMatcher>(rawPat, rawTok);
    im.normalizedMatcher = std::make_unique<AddedTokenMatcher>(normPat, normTok);

    file = "tokenizer_config.json";
    json cfg = tokenizerConfigJson.empty() ? json::object() : json::parse(tokenizerConfigJson);
    if (!cfg.is_object())
      throw ParseError("", "expected a JSON object at the top level");
    bool hasBos = false, hasEos = false;
    std::string bos = configToken(cfg, "bos_token", &hasBos);
    std::string eos = configToken(cfg, "eos_token", &hasEos);
    if (!bos.empty())
      im.bos = im.idOf(bos);
    if (!eos.empty())
      im.eos = im.idOf(eos);
    if (!hasBos && im.postProcessor) {
      im.bos = im.postProcessor->leadingSpecial();
      if (const std::string* s = im.tokenString(im.bos))
        bos = *s;
    }
    if (!hasEos) {
      for (const char* guess : {"</s>", "<|end_of_text|>", "<|endoftext|>",
                                "<\xEF\xBD\x9C"
                                "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"}) {
        int32_t id = im.idOf(guess);
        if (id >= 0 && im.special(id)) {
          im.eos = id;
          eos = guess;
          break;
        }
      }
    }
    im.chatSource = chatTemplateSource(cfg);
    im.chat = ChatTemplate::detect(im.chatSource, bos, eos);
  } catch (const ParseError& e) {
    if (error)
      *error = file + ": " + e.what();
    return nullptr;
  } catch (const json::exception& e) {
    if (error)
      *error = file + ": " + e.what();
    return nullptr;
  } catch (const std::exception& e) {
    if (error)
      *error = file + ": " + e.what();
    return nullptr;
  }
  return tok;
}

std::unique_ptr<Tokenizer> Tokenizer::fromFiles(const std::string& tokenizerJsonPath,
                                                const std::string& tokenizerConfigPath,
                                                std::string* error) {
  std::string tj, cj;
  if (!readFile(tokenizerJsonPath, &tj)) {
    if (error)
      *error = "cannot read " + tokenizerJsonPath;
    return nullptr;
  }
  if (!tokenizerConfigPath.empty() && !readFile(tokenizerConfigPath, &cj)) {
    if (error)
      *error = "cannot read " + tokenizerConfigPath;
    return nullptr;
  }
  // Newer checkpoints ship the template as chat_template.jinja beside the tokenizer.
  size_t slash = tokenizerJsonPath.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : tokenizerJsonPath.substr(0, slash);
  std::string jinja;
  if (readFile(dir + "/chat_template.jinja", &jinja) && !jinja.empty()) {
    try {
      json cfg = cj.empty() ? json::object() : json::parse(cj);
      if (cfg.is_object() && !cfg.contains("chat_template")) {
        cfg["chat_template"] = jinja;
        cj = cfg.dump();
      }
    } catch (const json::exception&) {
      // Left to fromJson, which reports the malformed config properly.
    }
  }
  std::string err;
  auto tok = fromJson(tj, cj, &err);
  if (!tok && error)
    *error = err;
  return tok;
}

void Tokenizer::Impl::encodeText(std::string_view text, bool atStart,
                                 std::vector<int32_t>& ids) const {
  if (stages.empty()) {
    model->tokenize(text, ids);
    return;
  }
  Piece piece{std::string(text), atStart};
  auto toModel = [&](Piece& p) { model->tokenize(p.text, ids); };
  runPreTokenizers(stages, 0, piece, PieceSink(toModel));
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool addSpecial) const {
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  std::string repaired;
  std::string_view text = input;
  if (!utf8::isValid(input)) {
    repaired = utf8::lossy(input);
    text = repaired;
  }
  std::vector<AddedTokenMatcher::Segment> raw, norm;
  im.rawMatcher->split(text, raw);
  for (const auto& seg : raw) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string s(text.substr(seg.begin, seg.end - seg.begin));
    if (im.normalizer)
      im.normalizer->normalize(s);
    if (s.empty())
      continue; // HF drops stretches that normalize to nothing
    if (im.normalizedMatcher->empty()) {
      im.encodeText(s, seg.begin == 0, ids);
      continue;
    }
    im.normalizedMatcher->split(s, norm);
    for (const auto& sub : norm) {
      if (sub.id >= 0)
        ids.push_back(sub.id);
      else
        im.encodeText(std::string_view(s).substr(sub.begin, sub.end - sub.begin),
                      seg.begin == 0 && sub.begin == 0, ids);
    }
  }
  if (addSpecial && im.postProcessor)
    im.postProcessor->process(ids);
  return ids;
}

std::string Tokenizer::decodeRange(const int32_t* ids, size_t n, bool skipSpecial) const {
  const Impl& im = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string* s = im.tokenString(ids[i]);
    if (!s || (skipSpecial && im.special(ids[i])))
      continue;
    tokens.push_back(*s);
  }
  if (!im.decoder) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i)
        out.push_back(' ');
      out += tokens[i];
    }
    return out;
  }
  im.decoder->decodeChain(tokens);
  std::string out;
  for (const std::string& t : tokens)
    out += t;
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skipSpecial) const {
  return decodeRange(ids.data(), ids.size(), skipSpecial);
}

bool Tokenizer::decodeChecked(const std::vector<int32_t>& ids, bool skipSpecial, std::string* out,
                              std::string* error) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!impl_->tokenString(ids[i])) {
      if (error)
        *error = "id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                 " is not a token (vocabulary size " + std::to_string(impl_->vocabSize) + ")";
      return false;
    }
  }
  if (out)
    *out = decode(ids, skipSpecial);
  return true;
}

int32_t Tokenizer::bosId() const {
  return impl_->bos;
}
int32_t Tokenizer::eosId() const {
  return impl_->eos;
}

std::vector<int32_t> Tokenizer::stopIds() const {
  std::vector<int32_t> out;
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(out.begin(), out.end(), id) == out.end())
      out.push_back(id);
  };
  add(impl_->eos);
  const std::string& f = impl_->chat.family();
  std::vector<const char*> names;
  if (f == "chatml")
    names = {"<|im_end|>", "<|endoftext|>"};
  if (f == "llama3")
    names = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"};
  if (f == "deepseek")
    names = {"<\xEF\xBD\x9C"
             "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};
  if (f == "mistral")
    names = {"</s>"};
  for (const char* n : names)
    add(impl_->idOf(n));
  return out;
}

size_t Tokenizer::vocabSize() const {
  return impl_->vocabSize;
}

std::string Tokenizer::tokenText(int32_t id) const {
  const std::string* s = impl_->tokenString(id);
  return s ? *s : std::string();
}

int32_t Tokenizer::tokenId(std::string_view token) const {
  return impl_->idOf(token);
}

bool Tokenizer::isSpecial(int32_t id) const {
  return impl_->special(id);
}

bool Tokenizer::isKnownId(int32_t id) const {
  return impl_->tokenString(id) != nullptr;
}

bool Tokenizer::isByteFallbackToken(int32_t id) const {
  if (!impl_->model->byteFallback())
    return false;
  const std::string* s = impl_->tokenString(id);
  return s && s->size() == 6 && s->compare(0, 3, "<0x") == 0 && (*s)[5] == '>';
}

bool Tokenizer::hasChatTemplate() const {
  return impl_->chat.recognised();
}

std::string Tokenizer::chatFamily() const {
  return impl_->chat.family();
}

std::string Tokenizer::renderChat(const std::vector<ChatMessage>& messages,
                                  bool addGenerationPrompt) const {
  return impl_->chat.render(messages, addGenerationPrompt);
}

std::vector<int32_t> Tokenizer::encodeChat(const std::vector<ChatMessage>& messages,
                                           bool addGenerationPrompt) const {
  return encode(renderChat(messages, addGenerationPrompt), !impl_->chat.recognised());
}

} // namespace kt::tok
