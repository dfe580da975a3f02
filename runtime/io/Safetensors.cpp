#include "runtime/io/Safetensors.h"

#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace kt {

bool parseSafetensorsDType(const std::string& s, DType* out) {
  static const std::map<std::string, DType> kTypes = {{"F32", DType::F32}, {"BF16", DType::BF16},
                                                      {"F16", DType::F16}, {"I32", DType::I32},
                                                      {"I8", DType::I8},   {"U8", DType::U8}};
  auto it = kTypes.find(s);
  if (it == kTypes.end())
    return false;
  *out = it->second;
  return true;
}

const char* safetensorsDTypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "F32";
  case DType::BF16:
    return "BF16";
  case DType::F16:
    return "F16";
  case DType::I32:
    return "I32";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  default:
    return nullptr;
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot open '" + path + "': " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  fileSize_ = uint64_t(in.tellg());
  in.seekg(0);
  if (fileSize_ < 8)
    throw Error(path + ": truncated safetensors file (" + std::to_string(fileSize_) +
                " bytes, no header)");
  uint8_t lenBytes[8];
  in.read(reinterpret_cast<char*>(lenBytes), 8);
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i)
    headerLen = headerLen << 8 | lenBytes[i];
  if (headerLen > fileSize_ - 8)
    throw Error(path + ": truncated safetensors file: header claims " + std::to_string(headerLen) +
                " bytes but the file has " + std::to_string(fileSize_ - 8) + " after the length");
  std::string header(headerLen, '\0');
  in.read(header.data(), std::streamsize(headerLen));
  const uint64_t dataStart = 8 + headerLen;
  const uint64_t dataSize = fileSize_ - dataStart;

  nlohmann::json j = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw Error(path + ": safetensors header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__")
      continue;
    const nlohmann::json& e = it.value();
    auto fail = [&](const std::string& why) {
      throw Error(path + ": tensor '" + name + "': " + why);
    };
    if (!e.is_object())
      fail("header entry is not an object");
    TensorInfo t;
    t.name = name;
    if (!e.contains("dtype") || !e["dtype"].is_string())
      fail("missing 'dtype'");
    if (!parseSafetensorsDType(e["dtype"].get<std::string>(), &t.dtype))
      fail("unsupported dtype '" + e["dtype"].get<std::string>() + "'");
    if (!e.contains("shape") || !e["shape"].is_array())
      fail("missing 'shape'");
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail("bad 'shape' entry");
      t.shape.push_back(d.get<int64_t>());
    }
    if (!e.contains("data_offsets") || !e["data_offsets"].is_array() ||
        e["data_offsets"].size() != 2 || !e["data_offsets"][0].is_number_unsigned() ||
        !e["data_offsets"][1].is_number_unsigned())
      fail("missing or malformed 'data_offsets'");
    uint64_t begin = e["data_offsets"][0].get<uint64_t>();
    uint64_t end = e["data_offsets"][1].get<uint64_t>();
    if (begin > end || end > dataSize)
      fail("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           ") lie outside the file's " + std::to_string(dataSize) +
           " data bytes (truncated file?)");
    // Guard the element count against overflow before comparing byte sizes.
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d != 0 && numel > (UINT64_MAX / 8) / uint64_t(d))
        fail("shape too large");
      numel *= uint64_t(d);
    }
    if (numel * dtypeSize(t.dtype) != end - begin)
      fail("shape and dtype need " + std::to_string(numel * dtypeSize(t.dtype)) +
           " bytes but data_offsets span " + std::to_string(end - begin));
    t.offset = dataStart + begin;
    t.size = end - begin;
    tensors_.emplace(name, std::move(t));
  }
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const {
  if (!map_)
    map_ = std::make_unique<MappedFile>(path_);
  if (map_->size() < t.offset + t.size)
    throw Error(path_ + ": file shrank while mapped (tensor '" + t.name + "')");
  return map_->data() + t.offset;
}

void writeSafetensors(const std::string& path, const std::vector<OutTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    const char* dt = safetensorsDTypeName(t.dtype);
    if (!dt)
      throw Error("writeSafetensors: unsupported dtype for tensor '" + t.name + "'");
    uint64_t numel = 1;
    for (int64_t d : t.shape)
      numel *= uint64_t(d);
    uint64_t bytes = numel * dtypeSize(t.dtype);
    header[t.name] = {
        {"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string h = header.dump();
  while (h.size() % 8)
    h.push_back(' '); // keep tensor data 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw Error("cannot write '" + path + "': " + std::strerror(errno));
  uint64_t len = h.size();
  uint8_t lenBytes[8];
  for (int i = 0; i < 8; ++i)
    lenBytes[i] = uint8_t(len >> (8 * i));
  out.write(reinterpret_cast<const char*>(lenBytes), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (size_t i = 0; i < tensors.size(); ++i)
    out.write(static_cast<const char*>(tensors[i].data), std::streamsize(sizes[i]));
  if (!out)
    throw Error("error writing '" + path + "'");
}

} // namespace kt
