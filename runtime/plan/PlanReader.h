#pragma once
// Loads a .ktplan: runs the FlatBuffers verifier, checks the version, then bounds-checks every
// index (weights, buffers, devices, files, events, attribute tables) so that the executor can use
// the plan without further checks. Any failure is a kt::Error naming the plan and the item at
// fault.
#include "runtime/schema/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kt {

// The plan format version this runtime reads and the compiler writes.
constexpr uint32_t kPlanVersion = 1;

class LoadedPlan {
public:
  // Reads and validates a plan file.
  static LoadedPlan fromFile(const std::string& path);
  // Validates plan bytes held in memory; `origin` names them in errors.
  static LoadedPlan fromBytes(std::vector<uint8_t> bytes, const std::string& origin);

  const plan::Plan& root() const { return *root_; }
  const std::string& origin() const { return origin_; }
  // Folder that relative weight-file paths are resolved against.
  const std::string& baseDir() const { return baseDir_; }
  std::string resolveWeightPath(const std::string& path) const;
  const plan::EntryPoint* entryPoint(const std::string& name) const;

private:
  std::vector<uint8_t> bytes_;
  const plan::Plan* root_ = nullptr;
  std::string origin_;
  std::string baseDir_;
};

} // namespace kt
