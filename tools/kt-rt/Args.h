#pragma once
// Minimal command-line parsing for kt-rt subcommands: positional arguments plus --flag value,
// --flag=value and boolean --flag. Unknown flags are errors (a typo must not be ignored).
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kt::cli {

class Args {
public:
  // `valueFlags` take a value; `boolFlags` do not. Flags may repeat (see all()).
  Args(int argc, char** argv, int first, const std::set<std::string>& valueFlags,
       const std::set<std::string>& boolFlags);

  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& f) const { return values_.count(f) != 0; }
  std::string get(const std::string& f, const std::string& dflt = "") const;
  std::vector<std::string> all(const std::string& f) const;
  int64_t getInt(const std::string& f, int64_t dflt) const;
  double getDouble(const std::string& f, double dflt) const;

private:
  std::vector<std::string> positional_;
  std::multimap<std::string, std::string> values_;
};

// "5,17,42" -> {5, 17, 42}; throws kt::Error naming the flag on a bad entry.
std::vector<int32_t> parseIdList(const std::string& s, const std::string& flag);
std::string jsonEscape(const std::string& s);

} // namespace kt::cli
