#include "compiler/plan/WeightPacker.h"

#include "runtime/io/MappedFile.h"
#include "runtime/pack/PackMatrix.h"
#include "runtime/support/Error.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace kt::compiler {

WeightPacker::WeightPacker(std::string sidecarPath, bool writeBlobs)
    : path_(std::move(sidecarPath)), writeBlobs_(writeBlobs) {}

WeightPacker::~WeightPacker() {
  if (out_)
    std::fclose(out_);
}

bool WeightPacker::pack(const std::string& file, uint64_t offset, DType src, int64_t n, int64_t k,
                        int format, uint64_t* outOffset, uint64_t* outSize, std::string* error) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    const uint64_t bytes = uint64_t(n * k) * dtypeSize(src);
    const size_t packedSize = pack::packedMatrixBytes(format, n, k);
    // Blobs start 64-byte aligned relative to the file (the kernels' promise, checked at load);
    // the gap before one is zeros.
    const uint64_t at = pack::alignPacked(size_);
    if (writeBlobs_) {
      auto& mapped = sources_[file];
      if (!mapped)
        mapped = std::make_unique<MappedFile>(file);
      if (offset + bytes > mapped->size())
        throw Error(file + ": weight bytes lie outside the file");
      std::vector<uint8_t> blob(packedSize);
      pack::packMatrix(format, src, mapped->data() + offset, n, k, blob.data());
      if (!out_) {
        out_ = std::fopen(path_.c_str(), "wb");
        if (!out_)
          throw Error("cannot write '" + path_ + "': " + std::strerror(errno));
      }
      static const uint8_t zeros[64] = {};
      const size_t pad = size_t(at - size_);
      if (pad > sizeof(zeros) || std::fwrite(zeros, 1, pad, out_) != pad ||
          std::fwrite(blob.data(), 1, blob.size(), out_) != blob.size())
        throw Error("error writing '" + path_ + "': " + std::strerror(errno));
    }
    *outOffset = at;
    *outSize = packedSize;
    size_ = at + packedSize;
    ++blobs_;
    sourceBytes_ += bytes;
  } catch (const Error& e) {
    *error = e.what();
    return false;
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (writeBlobs_ && blobs_ % 64 == 0)
    std::fprintf(
        stderr,
        "\r[kt-compile] packing weights: %llu matrices, %.2f GB read, %.2f GB written (%.0f MB/s)",
        (unsigned long long)blobs_, double(sourceBytes_) / 1e9, double(size_) / 1e9,
        double(sourceBytes_) / 1e6 / seconds_);
  return true;
}

bool WeightPacker::finish(uint64_t* size, std::string* error) {
  *size = size_;
  if (!writeBlobs_) {
    if (blobs_ > 0)
      std::fprintf(stderr,
                   "[kt-compile] laid out %llu packed matrices (%.1f MiB -> %.1f MiB) for %s; "
                   "not written: build it with `kt-rt pack`\n",
                   (unsigned long long)blobs_, double(sourceBytes_) / (1 << 20),
                   double(size_) / (1 << 20), path_.c_str());
    return true;
  }
  if (!out_)
    return true;
  if (blobs_ >= 64)
    std::fprintf(stderr, "\n");
  std::fprintf(stderr,
               "[kt-compile] packed %llu matrices (%.1f MiB -> %.1f MiB) into %s in %.2fs\n",
               (unsigned long long)blobs_, double(sourceBytes_) / (1 << 20),
               double(size_) / (1 << 20), path_.c_str(), seconds_);
  bool ok = std::fflush(out_) == 0;
  ok = std::fclose(out_) == 0 && ok;
  out_ = nullptr;
  if (!ok)
    *error = "error writing '" + path_ + "': " + std::strerror(errno);
  return ok;
}

} // namespace kt::compiler
