#pragma once
// Progress of a long write on stderr: tensors done, bytes written, throughput. Rewrites one line
// on a terminal; prints a line every few seconds otherwise (logs, CI).
#include <chrono>
#include <cstdint>

namespace kt::synth {

class Progress {
public:
  Progress(uint64_t totalTensors, uint64_t totalBytes, bool enabled);
  void add(uint64_t tensors, uint64_t bytes);
  // Ends the progress line; returns the seconds since construction.
  double finish();
  double seconds() const;

private:
  void print(bool last);

  uint64_t totalTensors_, totalBytes_, tensors_ = 0, bytes_ = 0;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, lastPrint_;
};

} // namespace kt::synth
