#include "tools/kt-rt/Args.h"

#include "runtime/support/Error.h"

#include <cstdio>
#include <cstdlib>

namespace kt::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& valueFlags,
           const std::set<std::string>& boolFlags) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (isdigit(a[1]) || a[1] == '.'))) {
      std::string name = a, value;
      bool inlineValue = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inlineValue = true;
      }
      if (valueFlags.count(name)) {
        if (!inlineValue) {
          if (i + 1 >= argc)
            throw Error("flag " + name + " needs a value");
          value = argv[++i];
        }
        values_.emplace(name, value);
      } else if (boolFlags.count(name) && !inlineValue) {
        values_.emplace(name, "1");
      } else {
        throw Error("unknown flag '" + name + "' (see --help)");
      }
    } else {
      positional_.push_back(a);
    }
  }
}

std::string Args::get(const std::string& f, const std::string& dflt) const {
  auto it = values_.find(f);
  return it == values_.end() ? dflt : it->second;
}

std::vector<std::string> Args::all(const std::string& f) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(f);
  for (auto it = range.first; it != range.second; ++it)
    out.push_back(it->second);
  return out;
}

int64_t Args::getInt(const std::string& f, int64_t dflt) const {
  if (!has(f))
    return dflt;
  std::string v = get(f);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end)
    throw Error("flag " + f + " expects an integer, got '" + v + "'");
  return x;
}

double Args::getDouble(const std::string& f, double dflt) const {
  if (!has(f))
    return dflt;
  std::string v = get(f);
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end)
    throw Error("flag " + f + " expects a number, got '" + v + "'");
  return x;
}

std::vector<int32_t> parseIdList(const std::string& s, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || v < 0 || v > INT32_MAX)
      throw Error(flag + ": '" + item + "' is not a token id");
    ids.push_back(int32_t(v));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return ids;
}

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    switch (c) {
    case '"':
      o += "\\\"";
      break;
    case '\\':
      o += "\\\\";
      break;
    case '\n':
      o += "\\n";
      break;
    case '\r':
      o += "\\r";
      break;
    case '\t':
      o += "\\t";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        o += buf;
      } else {
        o += char(c);
      }
    }
  }
  return o;
}

} // namespace kt::cli
