#pragma once
// Appends checkpoint weights, repacked into the CPU kernels' layouts, to the plan's sidecar file
// (PLAN.weights), each blob 64-byte aligned. Done once at compile time, so kt-rt maps packed
// weights directly and never repacks at start-up. The packing itself is runtime/pack's (shared
// with `kt-rt pack`, which rebuilds the same sidecar from the plan's recorded sources). The
// interface does not throw (the plan emitter that calls it is built without exceptions); failures
// come back as messages.
#include "runtime/support/DType.h"

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

namespace kt {
class MappedFile;
}

namespace kt::compiler {

class WeightPacker {
public:
  // writeBlobs = false: lay the sidecar out (offsets, sizes) without reading the sources or
  // writing a file; `kt-rt pack PLAN` builds it later (e.g. on the machine that runs the plan).
  explicit WeightPacker(std::string sidecarPath, bool writeBlobs = true);
  ~WeightPacker();

  // Packs the row-major [n, k] matrix of dtype `src` stored at `file`:`offset` in format `format`
  // (a kt::cpu::quant::WeightFormat value) and appends it; returns where it went.
  bool pack(const std::string& file, uint64_t offset, DType src, int64_t n, int64_t k, int format,
            uint64_t* outOffset, uint64_t* outSize, std::string* error);
  // Flushes and closes the sidecar; `size` is its final length (0 and no file when nothing was
  // packed).
  bool finish(uint64_t* size, std::string* error);
  const std::string& path() const { return path_; }
  uint64_t packedBlobs() const { return blobs_; }

private:
  std::string path_;
  bool writeBlobs_ = true;
  FILE* out_ = nullptr;
  uint64_t size_ = 0, blobs_ = 0, sourceBytes_ = 0;
  double seconds_ = 0;
  std::map<std::string, std::unique_ptr<MappedFile>> sources_;
};

} // namespace kt::compiler
