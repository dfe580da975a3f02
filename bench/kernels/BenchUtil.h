#pragma once
// Shared pieces of the kernel benchmarks: a spinning thread team (so a 50 us GEMV is not dominated
// by thread wake-up), memory bandwidth probes (STREAM-like triad and a read-only sum) and peak
// arithmetic probes (register-only loops per instruction), plus a tiny JSON writer.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kt::bench {

double nowSeconds();

// N threads (the caller is thread 0). Workers spin briefly between jobs (a 50 us GEMV must not pay
// a futex wake-up), then sleep, so an idle team does not steal a core from other measurements.
// pin: bind thread i to CPU i (off by default: on a shared VM it can trap a thread behind others).
class Team {
public:
  explicit Team(int threads, bool pin = false);
  ~Team();
  int size() const { return threads_; }
  // Runs fn(tid) on every thread and returns when all are done.
  void run(const std::function<void(int)>& fn);

private:
  void worker(int tid);
  int threads_;
  bool pin_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* fn_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// 64-byte aligned, page-touched buffer.
struct Buffer {
  explicit Buffer(size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data = nullptr;
  size_t size = 0;
};

struct Bandwidth {
  double readGBs = 0;  // read-only sum over one array
  double triadGBs = 0; // a = b + s*c, counting 3 x 8 bytes per element (STREAM convention)
  double readMedianGBs = 0, triadMedianGBs = 0;
};
// Arrays of `bytesPerArray` each (>> LLC), swept in 16 MiB blocks that are timed one by one;
// reports the best block (the uncontended rate on a shared machine) and the median.
Bandwidth measureBandwidth(Team& team, size_t bytesPerArray, int reps);

// Best-of-many short bursts (a burst fits in a scheduler time slice), so a loaded machine still
// shows what one core can do.
// Peak GOP/s of the instruction a kernel's inner loop issues (2 ops per multiply-add lane: f32 FMA,
// bf16 pair products, int8 products), over all team threads. Callers check CPU support first.
double peakFma256(Team& team);    // AVX2 FMA f32
double peakFma512(Team& team);    // AVX-512 FMA f32
double peakDpbf16(Team& team);    // VDPBF16PS
double peakDpbusd(Team& team);    // VPDPBUSD
double peakScalarFma(Team& team); // scalar f32 mul+add (no -mfma baseline)

// Read-only sum of bytes [p, p+n) (n a multiple of 8): the plain-read baseline of one blob.
double readSum(const uint8_t* p, size_t n);

std::string jsonEscape(const std::string& s);

// "1,2,16" -> {1, 2, 16} (entries below 1 become 1): the benchmarks' list arguments.
std::vector<int64_t> parseIntList(const std::string& s);

// Best and median seconds of one call, calls timed one by one, at least 5 and for minTime.
void timeBestMedian(const std::function<void()>& call, double minTime, double* best,
                    double* median);

} // namespace kt::bench
