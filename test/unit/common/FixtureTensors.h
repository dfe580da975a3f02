#pragma once
// Reading the Hugging Face fixtures (../shared/fixtures/hf) in tests: a model's folder and a
// tensor of a safetensors file as a vector (a missing tensor is a test failure, not a crash).
#include "runtime/io/Safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace kt::testing_util {

inline std::string fixture(const std::string& model) {
  return std::string(KT_FIXTURES_DIR) + "/hf/" + model;
}

template <typename T> std::vector<T> tensor(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t)
    return {};
  std::vector<T> v(static_cast<size_t>(t->numel()));
  std::memcpy(v.data(), f.data(*t), v.size() * sizeof(T));
  return v;
}

} // namespace kt::testing_util
