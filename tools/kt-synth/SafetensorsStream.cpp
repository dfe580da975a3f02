#include "tools/kt-synth/SafetensorsStream.h"

#include "runtime/io/Safetensors.h"

#include "runtime/support/Error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace kt::synth {

namespace {

const char* safetensorsDType(DType t) {
  if (const char* name = safetensorsDTypeName(t))
    return name;
  throw Error(std::string("safetensors has no dtype for ") + dtypeName(t));
}

std::string errnoText() {
  return std::strerror(errno);
}

} // namespace

uint64_t StreamTensor::bytes() const {
  uint64_t n = dtypeSize(dtype);
  for (int64_t d : shape)
    n *= uint64_t(d);
  return n;
}

std::string safetensorsHeader(const std::vector<StreamTensor>& tensors, const Metadata& metadata) {
  // Built as text: nlohmann's ordered_json inserts in linear time, quadratic for 45k tensors.
  // Keys follow the data order, after "__metadata__", as the safetensors library writes them.
  auto str = [](const std::string& v) { return nlohmann::json(v).dump(); };
  std::string json = "{\"__metadata__\":{\"format\":\"pt\"";
  for (const auto& [k, v] : metadata)
    json += "," + str(k) + ":" + str(v);
  json += "}";
  uint64_t offset = 0;
  for (const StreamTensor& t : tensors) {
    const uint64_t end = offset + t.bytes();
    json += "," + str(t.name) + ":{\"dtype\":\"" + safetensorsDType(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      json += (i ? "," : "") + std::to_string(t.shape[i]);
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  json += "}";
  // Pad so the data section starts 8-byte aligned (the reader then maps aligned tensors).
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + json;
}

uint64_t safetensorsFileSize(const std::vector<StreamTensor>& tensors, const Metadata& metadata) {
  uint64_t data = 0;
  for (const StreamTensor& t : tensors)
    data += t.bytes();
  return safetensorsHeader(tensors, metadata).size() + data;
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::string& path,
                                                 const std::vector<StreamTensor>& tensors,
                                                 const Metadata& metadata)
    : path_(path), partial_(path + ".partial") {
  for (const StreamTensor& t : tensors)
    expected_ += t.bytes();
  const std::string header = safetensorsHeader(tensors, metadata);
  fd_ = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(partial_ + ": cannot create: " + errnoText());
  writeAll(header.data(), header.size());
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (fd_ >= 0)
    ::close(fd_);
  if (!done_)
    ::unlink(partial_.c_str());
}

void SafetensorsStreamWriter::writeAll(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      throw Error(partial_ +
                  ": write failed: " + (k < 0 ? errnoText() : std::string("no progress")));
    p += k;
    n -= size_t(k);
  }
}

void SafetensorsStreamWriter::append(const void* data, size_t n) {
  if (written_ + n > expected_)
    throw Error(partial_ + ": internal error: more data than the header describes");
  writeAll(data, n);
  written_ += n;
}

void SafetensorsStreamWriter::skip(uint64_t n) {
  if (written_ + n > expected_)
    throw Error(partial_ + ": internal error: more data than the header describes");
  written_ += n;
  // Extend the file to the end of the hole: the bytes read as zeros and occupy no blocks.
  if (::ftruncate(fd_, off_t(::lseek(fd_, 0, SEEK_CUR) + off_t(n))) != 0 ||
      ::lseek(fd_, off_t(n), SEEK_CUR) < 0)
    throw Error(partial_ + ": cannot extend: " + errnoText());
}

void SafetensorsStreamWriter::finish() {
  if (written_ != expected_)
    throw Error(partial_ + ": internal error: wrote " + std::to_string(written_) + " of " +
                std::to_string(expected_) + " data bytes");
  // close() reports delayed write errors (e.g. ENOSPC on NFS); a failed close means a bad file.
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    throw Error(partial_ + ": close failed: " + errnoText());
  if (::rename(partial_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot rename from .partial: " + errnoText());
  done_ = true;
}

} // namespace kt::synth
