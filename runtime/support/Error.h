#pragma once
// The runtime reports bad input with kt::Error; its message names the file, tensor, field or
// request at fault. Tools catch it at the top, print it and exit non-zero.
#include <stdexcept>
#include <string>

namespace kt {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

} // namespace kt
