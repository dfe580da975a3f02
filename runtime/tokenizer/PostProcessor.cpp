#include "runtime/tokenizer/PostProcessor.h"

namespace kt::tok {
namespace {

class TemplateProcessor : public PostProcessor {
public:
  // Each item is either a run of special ids or the marker for the sequence itself.
  struct Item {
    bool isSequence;
    std::vector<int32_t> ids;
  };
  explicit TemplateProcessor(std::vector<Item> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& it : items_) {
      if (it.isSequence)
        out.insert(out.end(), ids.begin(), ids.end());
      else
        out.insert(out.end(), it.ids.begin(), it.ids.end());
    }
    ids.swap(out);
  }
  int32_t leadingSpecial() const override {
    if (!items_.empty() && !items_[0].isSequence && !items_[0].ids.empty())
      return items_[0].ids[0];
    return -1;
  }

private:
  std::vector<Item> items_;
};

class IdentityProcessor : public PostProcessor {
public:
  void process(std::vector<int32_t>&) const override {}
};

class SequenceProcessor : public PostProcessor {
public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> parts)
      : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& p : parts_)
      p->process(ids);
  }
  int32_t leadingSpecial() const override {
    for (const auto& p : parts_)
      if (p->leadingSpecial() >= 0)
        return p->leadingSpecial();
    return -1;
  }

private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

// Bert/Roberta name their tokens as ["[CLS]", 101] pairs.
int32_t pairId(const json& j, const std::string& path) {
  if (!j.is_array() || j.size() != 2 || !j[1].is_number_integer())
    throw ParseError(path, "expected [token, id]");
  return static_cast<int32_t>(j[1].get<long long>());
}

} // namespace

std::unique_ptr<PostProcessor> parsePostProcessor(const json& j, const std::string& path) {
  if (j.is_null())
    return nullptr;
  std::string type = typeOf(j, path);
  if (type == "TemplateProcessing") {
    const json& single = member(j, "single", path);
    std::string sp = joinPath(path, "single");
    if (!single.is_array())
      throw ParseError(sp, "expected an array");
    const json* specials = optMember(j, "special_tokens");
    std::vector<TemplateProcessor::Item> items;
    for (size_t i = 0; i < single.size(); ++i) {
      std::string ip = indexPath(sp, i);
      if (optMember(single[i], "Sequence")) {
        items.push_back({true, {}});
      } else if (const json* st = optMember(single[i], "SpecialToken")) {
        std::string name =
            asString(member(*st, "id", ip + ".SpecialToken"), ip + ".SpecialToken.id");
        const json* def = specials ? optMember(*specials, name.c_str()) : nullptr;
        if (!def)
          throw ParseError(ip, "special token '" + name + "' is not in " +
                                   joinPath(path, "special_tokens"));
        std::string dp = joinPath(joinPath(path, "special_tokens"), name);
        const json& idList = member(*def, "ids", dp);
        if (!idList.is_array())
          throw ParseError(dp + ".ids", "expected an array");
        TemplateProcessor::Item item{false, {}};
        for (size_t k = 0; k < idList.size(); ++k)
          item.ids.push_back(static_cast<int32_t>(asInt(idList[k], indexPath(dp + ".ids", k))));
        items.push_back(std::move(item));
      } else {
        throw ParseError(ip, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    return std::make_unique<TemplateProcessor>(std::move(items));
  }
  if (type == "ByteLevel")
    return std::make_unique<IdentityProcessor>();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    int32_t cls = pairId(member(j, "cls", path), joinPath(path, "cls"));
    int32_t sep = pairId(member(j, "sep", path), joinPath(path, "sep"));
    return std::make_unique<TemplateProcessor>(
        std::vector<TemplateProcessor::Item>{{false, {cls}}, {true, {}}, {false, {sep}}});
  }
  if (type == "Sequence") {
    const json& list = member(j, "processors", path);
    std::string lp = joinPath(path, "processors");
    if (!list.is_array())
      throw ParseError(lp, "expected an array");
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto p = parsePostProcessor(list[i], indexPath(lp, i)))
        parts.push_back(std::move(p));
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  throw ParseError(joinPath(path, "type"), "unsupported post_processor '" + type + "'");
}

} // namespace kt::tok
