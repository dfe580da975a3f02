#include "tools/kt-synth/Progress.h"

#include <cstdio>
#include <unistd.h>

namespace kt::synth {

Progress::Progress(uint64_t totalTensors, uint64_t totalBytes, bool enabled)
    : totalTensors_(totalTensors), totalBytes_(totalBytes), enabled_(enabled), tty_(isatty(2) != 0),
      start_(std::chrono::steady_clock::now()), lastPrint_(start_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::add(uint64_t tensors, uint64_t bytes) {
  tensors_ += tensors;
  bytes_ += bytes;
  if (!enabled_)
    return;
  auto now = std::chrono::steady_clock::now();
  const double interval = tty_ ? 0.5 : 5.0;
  if (std::chrono::duration<double>(now - lastPrint_).count() >= interval) {
    lastPrint_ = now;
    print(false);
  }
}

void Progress::print(bool last) {
  const double s = seconds();
  const double mbps = s > 0 ? double(bytes_) / 1e6 / s : 0.0;
  std::fprintf(stderr, "%skt-synth: %llu/%llu tensors, %.2f/%.2f GB, %.0f MB/s%s", tty_ ? "\r" : "",
               static_cast<unsigned long long>(tensors_),
               static_cast<unsigned long long>(totalTensors_), double(bytes_) / 1e9,
               double(totalBytes_) / 1e9, mbps, tty_ && !last ? "   " : "\n");
  std::fflush(stderr);
}

double Progress::finish() {
  if (enabled_ && tty_)
    print(true);
  return seconds();
}

} // namespace kt::synth
