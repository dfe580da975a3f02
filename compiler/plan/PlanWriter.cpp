#include "compiler/plan/PlanWriter.h"

#include "runtime/plan/PlanReader.h"
#include "runtime/support/Crc32.h"
#include "runtime/support/Error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace kt::compiler {

PlanBuilder::PlanBuilder() {
  plan_.version = kPlanVersion;
  plan_.producer = "kt-compile 0.1.0";
}

bool parsePlacement(const std::string& s, plan::DeviceKind* kind, int* index) {
  auto number = [](const std::string& digits, int* out) {
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      return false;
    *out = std::stoi(digits);
    return true;
  };
  if (s == "disk") {
    *kind = plan::DeviceKind::Disk;
    *index = 0;
    return true;
  }
  if (s.rfind("gpu:", 0) == 0) {
    *kind = plan::DeviceKind::GPU;
    return number(s.substr(4), index);
  }
  if (s.rfind("npu:", 0) == 0) {
    *kind = plan::DeviceKind::NPU;
    return number(s.substr(4), index);
  }
  if (s.rfind("cpu:numa", 0) == 0) {
    *kind = plan::DeviceKind::CPU;
    return number(s.substr(8), index);
  }
  return false;
}

uint16_t PlanBuilder::device(const std::string& placement) {
  for (size_t i = 0; i < plan_.devices.size(); ++i)
    if (plan_.devices[i]->name == placement)
      return uint16_t(i);
  auto d = std::make_unique<plan::DeviceT>();
  if (!parsePlacement(placement, &d->kind, &d->index))
    throw Error("invalid placement '" + placement + "' (expected gpu:N, cpu:numaN, npu:N or disk)");
  d->name = placement;
  plan_.devices.push_back(std::move(d));
  return uint16_t(plan_.devices.size() - 1);
}

uint32_t PlanBuilder::weightFile(const std::string& path, uint64_t size) {
  for (size_t i = 0; i < plan_.weight_files.size(); ++i)
    if (plan_.weight_files[i]->path == path)
      return uint32_t(i);
  auto f = std::make_unique<plan::WeightFileT>();
  f->path = path;
  f->size = size;
  plan_.weight_files.push_back(std::move(f));
  return uint32_t(plan_.weight_files.size() - 1);
}

uint32_t PlanBuilder::weight(std::unique_ptr<plan::WeightT> w) {
  plan_.weights.push_back(std::move(w));
  return uint32_t(plan_.weights.size() - 1);
}

uint32_t PlanBuilder::buffer(const std::string& name, plan::DType dtype, std::vector<int64_t> shape,
                             uint16_t device, plan::BufferKind kind) {
  auto b = std::make_unique<plan::BufferT>();
  b->name = name;
  b->dtype = dtype;
  b->shape = std::move(shape);
  b->device = device;
  b->kind = kind;
  plan_.buffers.push_back(std::move(b));
  return uint32_t(plan_.buffers.size() - 1);
}

plan::EntryPointT& PlanBuilder::entryPoint(const std::string& name) {
  for (auto& ep : plan_.entry_points)
    if (ep->name == name)
      return *ep;
  auto ep = std::make_unique<plan::EntryPointT>();
  ep->name = name;
  plan_.entry_points.push_back(std::move(ep));
  return *plan_.entry_points.back();
}

std::vector<uint8_t> serializePlan(const plan::PlanT& p) {
  flatbuffers::FlatBufferBuilder fbb(1 << 16);
  plan::FinishSizePrefixedPlanBuffer(fbb, plan::Plan::Pack(fbb, &p));
  std::vector<uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  // Trailing CRC-32 so that any flipped byte is detected, not only structural damage.
  uint32_t crc = crc32(bytes.data(), bytes.size());
  for (int i = 0; i < 4; ++i)
    bytes.push_back(uint8_t(crc >> (8 * i)));
  return bytes;
}

void writePlanFile(const plan::PlanT& p, const std::string& path) {
  std::vector<uint8_t> bytes = serializePlan(p);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      throw Error("cannot write plan '" + path + "': " + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out)
      throw Error("error writing plan '" + path + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error("cannot move plan into '" + path + "': " + std::strerror(errno));
}

} // namespace kt::compiler
