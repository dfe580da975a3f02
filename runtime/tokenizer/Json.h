// Small helpers for reading tokenizer.json with precise error messages. Parsing code throws
// ParseError carrying the JSON path of the offending field ("model.merges[12]");
// Tokenizer::fromJson catches it (and any nlohmann exception) and turns it into the error string,
// so nothing escapes the public API.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace kt::tok {

using json = nlohmann::json;

class ParseError : public std::runtime_error {
public:
  ParseError(const std::string& path, const std::string& what)
      : std::runtime_error(path.empty() ? what : path + ": " + what) {}
};

inline std::string joinPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
inline std::string indexPath(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

inline const char* typeName(const json& j) {
  return j.type_name();
}

// Required member of an object.
inline const json& member(const json& obj, const char* key, const std::string& path) {
  if (!obj.is_object())
    throw ParseError(path, std::string("expected an object, got ") + typeName(obj));
  auto it = obj.find(key);
  if (it == obj.end())
    throw ParseError(joinPath(path, key), "missing");
  return *it;
}

// Optional member; nullptr when absent or null.
inline const json* optMember(const json& obj, const char* key) {
  if (!obj.is_object())
    return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return nullptr;
  return &*it;
}

inline std::string asString(const json& j, const std::string& path) {
  if (!j.is_string())
    throw ParseError(path, std::string("expected a string, got ") + typeName(j));
  return j.get<std::string>();
}

inline bool optBool(const json& obj, const char* key, bool def, const std::string& path) {
  const json* v = optMember(obj, key);
  if (!v)
    return def;
  if (!v->is_boolean())
    throw ParseError(joinPath(path, key), std::string("expected a boolean, got ") + typeName(*v));
  return v->get<bool>();
}

inline std::string optString(const json& obj, const char* key, const std::string& def,
                             const std::string& path) {
  const json* v = optMember(obj, key);
  if (!v)
    return def;
  return asString(*v, joinPath(path, key));
}

inline long long asInt(const json& j, const std::string& path) {
  if (!j.is_number_integer())
    throw ParseError(path, std::string("expected an integer, got ") + typeName(j));
  return j.get<long long>();
}

inline std::string typeOf(const json& obj, const std::string& path) {
  return asString(member(obj, "type", path), joinPath(path, "type"));
}

} // namespace kt::tok
