#include "bench/kernels/BenchUtil.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
// GCC 12 flags its own _mm512_undefined_*() in the intrinsic headers (bug 105593, fixed in 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define KT_UNROLL8 _Pragma("GCC unroll 8")

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace kt::bench {

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void pinTo(int cpu) {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % int(std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1),
          &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
#endif
}

Team::Team(int threads, bool pin) : threads_(threads < 1 ? 1 : threads), pin_(pin) {
  if (pin_)
    pinTo(0);
  for (int i = 1; i < threads_; ++i)
    workers_.emplace_back([this, i] { worker(i); });
}

Team::~Team() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : workers_)
    t.join();
}

void Team::worker(int tid) {
  if (pin_)
    pinTo(tid);
  uint64_t seen = 0;
  for (;;) {
    uint64_t g;
    int spins = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spins < 20000) {
        _mm_pause();
      } else {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_.load() != seen; });
      }
    }
    seen = g;
    if (stop_.load())
      return;
    (*fn_)(tid);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void Team::run(const std::function<void(int)>& fn) {
  fn_ = &fn;
  pending_.store(threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  fn(0);
  // Spin briefly, then yield: on an oversubscribed machine the worker may share this CPU.
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0)
    if (++spins < 2000)
      _mm_pause();
    else
      std::this_thread::yield();
}

Buffer::Buffer(size_t bytes) : size(bytes) {
  data = static_cast<uint8_t*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096));
  // KT_BENCH_SMALL_PAGES=1: 4 KiB pages, like a memory-mapped weight file in the page cache
  // (transparent huge pages would otherwise back this buffer and hide the TLB cost).
  if (const char* e = std::getenv("KT_BENCH_SMALL_PAGES"); data && e && *e && *e != '0')
    madvise(data, (bytes + 4095) / 4096 * 4096, MADV_NOHUGEPAGE);
  if (data)
    std::memset(data, 0, bytes);
}
Buffer::~Buffer() {
  std::free(data);
}

// ---- bandwidth ----

// Eight independent accumulators (never latency-bound, even on a busy core) and software prefetch
// 4 KiB ahead, as the GEMV kernels do: the probe measures what a streaming kernel can get.
constexpr int kReadPrefetch = 4096;

__attribute__((target("avx512f"))) static double sumAvx512(const double* a, size_t n) {
  __m512d s[8];
  for (int j = 0; j < 8; ++j)
    s[j] = _mm512_setzero_pd();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    KT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(a + i + 8 * j) + kReadPrefetch, _MM_HINT_T0);
      s[j] = _mm512_add_pd(s[j], _mm512_load_pd(a + i + 8 * j));
    }
  }
  for (int j = 1; j < 8; ++j)
    s[0] = _mm512_add_pd(s[0], s[j]);
  double r = _mm512_reduce_add_pd(s[0]);
  for (; i < n; ++i)
    r += a[i];
  return r;
}

__attribute__((target("avx2"))) static double sumAvx2(const double* a, size_t n) {
  __m256d s[8];
  for (int j = 0; j < 8; ++j)
    s[j] = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    KT_UNROLL8
    for (int j = 0; j < 8; ++j) {
      if (j % 2 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(a + i + 4 * j) + kReadPrefetch, _MM_HINT_T0);
      s[j] = _mm256_add_pd(s[j], _mm256_load_pd(a + i + 4 * j));
    }
  }
  for (int j = 1; j < 8; ++j)
    s[0] = _mm256_add_pd(s[0], s[j]);
  double out[4];
  _mm256_storeu_pd(out, s[0]);
  double r = out[0] + out[1] + out[2] + out[3];
  for (; i < n; ++i)
    r += a[i];
  return r;
}

static double sumScalar(const double* a, size_t n) {
  double s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j)
      s[j] += a[i + j];
  for (; i < n; ++i)
    s[0] += a[i];
  return s[0] + s[1] + s[2] + s[3];
}

static void triad(double* a, const double* b, const double* c, double s, size_t n) {
  for (size_t i = 0; i < n; ++i)
    a[i] = b[i] + s * c[i];
}

static double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Bandwidth measureBandwidth(Team& team, size_t bytesPerArray, int reps) {
  const size_t n = bytesPerArray / 8;
  Buffer A(n * 8), B(n * 8), C(n * 8);
  double* a = reinterpret_cast<double*>(A.data);
  double* b = reinterpret_cast<double*>(B.data);
  double* c = reinterpret_cast<double*>(C.data);
  const int nt = team.size();
  team.run([&](int tid) {
    size_t lo = n * tid / nt, hi = n * (tid + 1) / nt;
    for (size_t i = lo; i < hi; ++i)
      a[i] = 1.0, b[i] = 2.0, c[i] = 0.5;
  });
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const size_t block = std::min(n, (size_t(16) << 20) / 8);
  std::vector<double> sink(size_t(nt) * 8);
  std::vector<double> reads, triads;
  for (int r = 0; r < reps; ++r)
    for (size_t b0 = 0; b0 + block <= n; b0 += block) {
      // Each thread takes a contiguous part of the block.
      auto part = [&](int tid, size_t* lo, size_t* hi) {
        *lo = b0 + block * tid / nt / 64 * 64;
        *hi = tid + 1 == nt ? b0 + block : b0 + block * (tid + 1) / nt / 64 * 64;
      };
      double t0 = nowSeconds();
      team.run([&](int tid) {
        size_t lo, hi;
        part(tid, &lo, &hi);
        sink[tid * 8] += avx512 ? sumAvx512(a + lo, hi - lo)
                         : avx2 ? sumAvx2(a + lo, hi - lo)
                                : sumScalar(a + lo, hi - lo);
      });
      double t1 = nowSeconds();
      team.run([&](int tid) {
        size_t lo, hi;
        part(tid, &lo, &hi);
        triad(a + lo, b + lo, c + lo, 3.0, hi - lo);
      });
      double t2 = nowSeconds();
      reads.push_back(block * 8 / (t1 - t0) / 1e9);
      triads.push_back(block * 24 / (t2 - t1) / 1e9);
    }
  volatile double keep = sink[0];
  (void)keep;
  Bandwidth bw;
  bw.readGBs = *std::max_element(reads.begin(), reads.end());
  bw.triadGBs = *std::max_element(triads.begin(), triads.end());
  bw.readMedianGBs = median(reads);
  bw.triadMedianGBs = median(triads);
  return bw;
}

// ---- peak arithmetic: 12 independent accumulators, register-only ----

constexpr long kPeakIters = 100'000; // one burst: ~0.3-1 ms

template <typename F> static double timed(Team& team, double opsPerThread, F body) {
  double best = 0;
  for (int rep = 0; rep < 300; ++rep) {
    double t0 = nowSeconds();
    team.run([&](int) { body(); });
    double t1 = nowSeconds();
    best = std::max(best, opsPerThread * team.size() / (t1 - t0) / 1e9);
  }
  return best;
}

// The 12 accumulators must live in registers: fully unroll the inner loops.
#define KT_UNROLL12 _Pragma("GCC unroll 12")

static volatile float gSinkF;
static volatile int gSinkI;

__attribute__((target("avx2,fma"))) static void loopFma256() {
  __m256 a[12];
  const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-6f);
  for (int i = 0; i < 12; ++i)
    a[i] = _mm256_set1_ps(float(i));
  for (long it = 0; it < kPeakIters; ++it) {
    KT_UNROLL12
    for (int i = 0; i < 12; ++i)
      a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i)
    s = _mm256_add_ps(s, a[i]);
  gSinkF = _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) static void loopFma512() {
  __m512 a[12];
  const __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-6f);
  for (int i = 0; i < 12; ++i)
    a[i] = _mm512_set1_ps(float(i));
  for (long it = 0; it < kPeakIters; ++it) {
    KT_UNROLL12
    for (int i = 0; i < 12; ++i)
      a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i)
    s = _mm512_add_ps(s, a[i]);
  gSinkF = _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) static void loopDpbf16() {
  __m512 a[12];
  const __m512i v = _mm512_set1_epi32(0x3f803f80); // bf16 pair (1.0, 1.0)
  for (int i = 0; i < 12; ++i)
    a[i] = _mm512_set1_ps(float(i));
  for (long it = 0; it < kPeakIters; ++it) {
    KT_UNROLL12
    for (int i = 0; i < 12; ++i)
      a[i] = _mm512_dpbf16_ps(a[i], (__m512bh)v, (__m512bh)v);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i)
    s = _mm512_add_ps(s, a[i]);
  gSinkF = _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512vnni"))) static void loopDpbusd() {
  __m512i a[12];
  const __m512i u = _mm512_set1_epi8(3), s8 = _mm512_set1_epi8(-2);
  for (int i = 0; i < 12; ++i)
    a[i] = _mm512_set1_epi32(i);
  for (long it = 0; it < kPeakIters; ++it) {
    KT_UNROLL12
    for (int i = 0; i < 12; ++i)
      a[i] = _mm512_dpbusd_epi32(a[i], u, s8);
  }
  __m512i s = a[0];
  for (int i = 1; i < 12; ++i)
    s = _mm512_add_epi32(s, a[i]);
  gSinkI = _mm512_reduce_add_epi32(s);
}

static void loopScalar() {
  float a[12];
  for (int i = 0; i < 12; ++i)
    a[i] = float(i);
  const float m = 0.9999f, c = 1e-6f;
  for (long it = 0; it < kPeakIters / 4; ++it) {
    KT_UNROLL12
    for (int i = 0; i < 12; ++i)
      a[i] = a[i] * m + c;
  }
  float s = 0;
  for (int i = 0; i < 12; ++i)
    s += a[i];
  gSinkF = s;
}

double peakFma256(Team& team) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    return 0;
  return timed(team, double(kPeakIters) * 12 * 8 * 2, loopFma256);
}
double peakFma512(Team& team) {
  if (!__builtin_cpu_supports("avx512f"))
    return 0;
  return timed(team, double(kPeakIters) * 12 * 16 * 2, loopFma512);
}
double peakDpbf16(Team& team) {
  if (!__builtin_cpu_supports("avx512bf16"))
    return 0;
  return timed(team, double(kPeakIters) * 12 * 32 * 2, loopDpbf16);
}
double peakDpbusd(Team& team) {
  if (!__builtin_cpu_supports("avx512vnni"))
    return 0;
  return timed(team, double(kPeakIters) * 12 * 64 * 2, loopDpbusd);
}
double peakScalarFma(Team& team) {
  return timed(team, double(kPeakIters / 4) * 12 * 2, loopScalar);
}

double readSum(const uint8_t* p, size_t n) {
  const double* a = reinterpret_cast<const double*>(p);
  if (__builtin_cpu_supports("avx512f") && reinterpret_cast<uintptr_t>(p) % 64 == 0)
    return sumAvx512(a, n / 8);
  if (__builtin_cpu_supports("avx2") && reinterpret_cast<uintptr_t>(p) % 32 == 0)
    return sumAvx2(a, n / 8);
  return sumScalar(a, n / 8);
}

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\')
      o += '\\';
    o += c;
  }
  return o;
}

std::vector<int64_t> parseIntList(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(std::max<int64_t>(1, std::atoll(item.c_str())));
  return out;
}

void timeBestMedian(const std::function<void()>& call, double minTime, double* best,
                    double* median) {
  std::vector<double> ts;
  const double start = nowSeconds();
  while (ts.size() < 5 || nowSeconds() - start < minTime) {
    const double t0 = nowSeconds();
    call();
    ts.push_back(nowSeconds() - t0);
  }
  std::sort(ts.begin(), ts.end());
  *best = ts.front();
  *median = ts[ts.size() / 2];
}

} // namespace kt::bench
