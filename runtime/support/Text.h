#pragma once
// Small string helpers shared by parsers on both sides (header-only: compiler/cost links no
// runtime library).
#include <cctype>
#include <string>

namespace kt {

// ASCII lower case (header names, size units).
inline std::string asciiLower(std::string s) {
  for (char& c : s)
    c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Without leading and trailing spaces and tabs.
inline std::string trimBlanks(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

} // namespace kt
