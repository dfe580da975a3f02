#pragma once
// The compiler side of the plan format: a builder over the FlatBuffers object API that hands out
// indices for devices, weight files, weights and buffers, and appends steps to entry points; and
// serialization to bytes / a .ktplan file. Plain C++ (no MLIR) so tests and tools can use it.
#include "runtime/schema/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kt::compiler {

class PlanBuilder {
public:
  PlanBuilder();

  plan::PlanT& plan() { return plan_; }
  // Finds or adds a device by its placement string ("cpu:numa0", "gpu:0", "npu:1", "disk").
  uint16_t device(const std::string& placement);
  uint32_t weightFile(const std::string& path, uint64_t size);
  uint32_t weight(std::unique_ptr<plan::WeightT> w);
  uint32_t buffer(const std::string& name, plan::DType dtype, std::vector<int64_t> shape,
                  uint16_t device, plan::BufferKind kind = plan::BufferKind::Activation);
  plan::EntryPointT& entryPoint(const std::string& name);

private:
  plan::PlanT plan_;
};

// Parses a placement string; returns false when it is not gpu:N, cpu:numaN, npu:N or disk.
bool parsePlacement(const std::string& s, plan::DeviceKind* kind, int* index);

std::vector<uint8_t> serializePlan(const plan::PlanT& plan);
// Writes the plan atomically (temp file + rename); throws kt::Error naming the path on failure.
void writePlanFile(const plan::PlanT& plan, const std::string& path);

} // namespace kt::compiler
