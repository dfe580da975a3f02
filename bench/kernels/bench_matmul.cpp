// kt_bench_matmul: quantized matmul speed per weight format x ISA, against this machine's limits.
//   GEMV (t=1, decode) at DeepSeek-V2-Lite shapes — expert gate/up 1408x2048, expert down
//   2048x1408, dense MLP 10944x2048 — reported as GB/s of packed weight bytes streamed and as a
//   fraction of the measured read-only and triad bandwidth. Weights rotate through a pool of copies
//   much larger than the LLC, so every call streams from DRAM as decode does.
//   GEMM (t=128, 512, prefill) reported as GFLOP/s (2 ops per multiply-add) against the measured
//   peak of the instruction the kernel uses (register-only FMA / VDPBF16PS / VPDPBUSD loops).
// 1 and 2 threads; output rows are split between threads at multiples of 16. Every call is timed
// on its own; tables show the best call (the kernel's speed on a shared machine) and the median.
//   kt_bench_matmul [--json FILE] [--isa a,b] [--format f,g] [--threads 1,2] [--no-gemv]
//                   [--no-gemm] [--gemm-t 128,512] [--scalar-gemm] [--pool-mb N] [--min-time S]
//                   [--no-pin]   (threads are pinned to CPUs 0..N-1 by default)
#include "bench/kernels/BenchUtil.h"
#include "kernels/cpu/quant/QuantMatmul.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace kt::bench;
using namespace kt::cpu::quant;

namespace {

struct Shape {
  const char* name;
  int64_t n, k;
};
const Shape kShapes[] = {
    {"expert.gate_up", 1408, 2048}, {"expert.down", 2048, 1408}, {"dense.gate_up", 10944, 2048}};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    out.push_back(item);
  return out;
}

struct Options {
  std::string json;
  std::vector<Isa> isas;
  std::vector<WeightFormat> formats;
  std::vector<int> threads = {1, 2};
  std::vector<int64_t> gemmT = {128, 512};
  bool gemv = true, gemm = true, scalarGemm = false, pin = true;
  size_t poolMb = 2048; // >> LLC (this VM reports a 512 MiB L3)
  double minTime = 0.3;
};

// A team of the largest thread count; runs with fewer threads leave the rest idle.
struct Runner {
  Team team;
  Runner(int threads, bool pin) : team(threads, pin) {}
  void run(int active, const std::function<void(int, int)>& fn) {
    if (active <= 1)
      return fn(0, 1); // no hand-off latency for single-thread runs
    team.run([&](int tid) {
      if (tid < active)
        fn(tid, active);
    });
  }
};

int64_t rowSplit(int64_t n, int tid, int nt) {
  return tid == nt ? n : std::min(n, (n * tid / nt) / kRowBlock * kRowBlock);
}

// Peak (GOP/s) of the instruction the kernel for (isa, format) issues in its inner loop.
struct Peaks {
  double scalar = 0, fma256 = 0, fma512 = 0, dpbf16 = 0, dpbusd = 0;
  double forKernel(Isa isa, WeightFormat f, const char** what) const {
    switch (isa) {
    case Isa::Scalar:
      *what = "scalar mul+add";
      return scalar;
    case Isa::Avx2:
      *what = "fma256";
      return fma256;
    case Isa::Avx512:
      if (f == WeightFormat::F32)
        return *what = "fma512", fma512;
      if (f == WeightFormat::BF16)
        return *what = "vdpbf16ps", dpbf16;
      return *what = "vpdpbusd", dpbusd;
    case Isa::Amx:
      *what = "amx (not measured)";
      return 0;
    }
    return 0;
  }
};

struct Record {
  std::string kind, shape, isa, format, peakWhat;
  int64_t n, k, t;
  int threads;
  double seconds, gbs, fracRead, fracTriad, gflops, fracPeak;
  double medianSeconds;
  double blobReadGBs, fracBlobRead;
};

// Times calls one by one: best and median seconds per call. On a shared machine the best call is
// the kernel's speed, the median shows the interference.
struct Timing {
  double best, median;
};
Timing timeCalls(const std::function<void(size_t)>& call, size_t minCalls, double minTime) {
  std::vector<double> ts;
  const double start = nowSeconds();
  for (size_t i = 0; ts.size() < minCalls || nowSeconds() - start < minTime; ++i) {
    const double t0 = nowSeconds();
    call(i);
    ts.push_back(nowSeconds() - t0);
  }
  std::sort(ts.begin(), ts.end());
  return {ts.front(), ts[ts.size() / 2]};
}

} // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--json") {
      opt.json = next();
    } else if (a == "--isa") {
      for (auto& s : split(next())) {
        Isa isa;
        if (!parseIsa(s, &isa))
          return std::fprintf(stderr, "unknown isa '%s'\n", s.c_str()), 2;
        opt.isas.push_back(isa);
      }
    } else if (a == "--format") {
      for (auto& s : split(next())) {
        WeightFormat f;
        if (!parseFormat(s, &f))
          return std::fprintf(stderr, "unknown format '%s'\n", s.c_str()), 2;
        opt.formats.push_back(f);
      }
    } else if (a == "--threads") {
      opt.threads.clear();
      for (auto& s : split(next()))
        opt.threads.push_back(std::max(1, std::atoi(s.c_str())));
    } else if (a == "--gemm-t") {
      opt.gemmT.clear();
      for (auto& s : split(next()))
        opt.gemmT.push_back(std::max(1, std::atoi(s.c_str())));
    } else if (a == "--no-gemv") {
      opt.gemv = false;
    } else if (a == "--no-gemm") {
      opt.gemm = false;
    } else if (a == "--no-pin") {
      opt.pin = false;
    } else if (a == "--scalar-gemm") {
      opt.scalarGemm = true;
    } else if (a == "--pool-mb") {
      opt.poolMb = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--min-time") {
      opt.minTime = std::atof(next().c_str());
    } else {
      std::fprintf(stderr,
                   "usage: %s [--json FILE] [--isa a,b] [--format f,g] [--threads 1,2] "
                   "[--no-gemv] [--no-gemm] [--gemm-t 128,512] [--scalar-gemm] [--pool-mb N] "
                   "[--min-time S] [--no-pin]\n",
                   argv[0]);
      return 2;
    }
  }
  if (opt.isas.empty())
    for (Isa isa : kAllIsas)
      if (isaSupported(isa))
        opt.isas.push_back(isa);
  if (opt.formats.empty())
    opt.formats.assign(std::begin(kAllWeightFormats), std::end(kAllWeightFormats));
  for (Isa isa : opt.isas)
    if (!isaSupported(isa))
      std::printf("note: %s not supported here, runs as %s\n", isaName(isa),
                  isaName(bestSupportedIsa()));
  const int maxThreads = *std::max_element(opt.threads.begin(), opt.threads.end());

  // ---- machine limits ----
  std::printf("machine: %u hardware threads, best ISA %s\n", std::thread::hardware_concurrency(),
              isaName(bestSupportedIsa()));
  std::vector<Bandwidth> bw(maxThreads + 1);
  std::vector<Peaks> peaks(maxThreads + 1);
  std::printf("%-8s %10s %10s | peak GOP/s: %8s %8s %8s %9s %9s\n", "threads", "read GB/s",
              "triad GB/s", "scalar", "fma256", "fma512", "vdpbf16ps", "vpdpbusd");
  for (int nt : opt.threads) {
    Team team(nt, opt.pin);
    bw[nt] = measureBandwidth(team, size_t(1) << 30, 2);
    Peaks& p = peaks[nt];
    p.scalar = peakScalarFma(team);
    if (isaSupported(Isa::Avx2))
      p.fma256 = peakFma256(team);
    if (isaSupported(Isa::Avx512)) {
      p.fma512 = peakFma512(team);
      p.dpbf16 = peakDpbf16(team);
      p.dpbusd = peakDpbusd(team);
    }
    std::printf("%-8d %10.2f %10.2f | %20.1f %8.1f %8.1f %9.1f %9.1f\n", nt, bw[nt].readGBs,
                bw[nt].triadGBs, p.scalar, p.fma256, p.fma512, p.dpbf16, p.dpbusd);
  }

  // Created after the limit probes: its idle workers spin and would disturb them.
  Runner runner(maxThreads, opt.pin);
  std::vector<Record> records;
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.f, 0.02f);

  // ---- GEMV (decode) ----
  if (opt.gemv) {
    std::printf(
        "\nGEMV t=1 (weights streamed from DRAM). GB/s: best call (median call); blob rd: a\n"
        "plain read of the same blobs timed the same way; %%: GEMV vs blob read, vs the\n"
        "read-only and triad bandwidth of 16 MiB blocks\n");
    std::printf("%-15s %-7s %-15s %3s %9s %9s %9s %9s %8s %8s %8s\n", "shape", "isa", "format",
                "thr", "us/call", "GB/s", "GB/s med", "blob rd", "%blobrd", "%read", "%triad");
    Buffer pool(opt.poolMb << 20);
    for (const Shape& sh : kShapes) {
      // The VM's memory bandwidth drifts with its neighbours: re-measure before every shape and
      // keep the best seen per thread count (the fractions in the summary use that).
      for (int nt : opt.threads) {
        Bandwidth b;
        if (nt == 1) {
          Team one(1, opt.pin);
          b = measureBandwidth(one, size_t(1) << 30, 1);
        } else {
          b = measureBandwidth(runner.team, size_t(1) << 30, 1);
        }
        bw[nt].readGBs = std::max(bw[nt].readGBs, b.readGBs);
        bw[nt].triadGBs = std::max(bw[nt].triadGBs, b.triadGBs);
      }
      std::vector<float> w(size_t(sh.n * sh.k));
      for (float& v : w)
        v = nd(rng);
      std::vector<float> x(size_t(sh.k)), y(size_t(sh.n));
      for (float& v : x)
        v = nd(rng) * 50.f;
      for (WeightFormat f : opt.formats) {
        const size_t bytes = packedBytes(f, sh.n, sh.k);
        const size_t stride = (bytes + 4095) / 4096 * 4096;
        const size_t copies = std::max<size_t>(2, pool.size / stride);
        if (copies * stride > pool.size) {
          std::printf("%-15s %-7s %-15s skipped: pool too small\n", sh.name, "", formatName(f));
          continue;
        }
        packWeights(f, w.data(), sh.n, sh.k, pool.data);
        for (size_t c = 1; c < copies; ++c)
          std::memcpy(pool.data + c * stride, pool.data, bytes);
        for (Isa isa : opt.isas)
          for (int nt : opt.threads) {
            auto call = [&](size_t i) {
              const uint8_t* blob = pool.data + (i % copies) * stride;
              runner.run(nt, [&](int tid, int active) {
                matmul(isa, f, blob, sh.n, sh.k, x.data(), 1, y.data(), rowSplit(sh.n, tid, active),
                       rowSplit(sh.n, tid + 1, active));
              });
            };
            // Baseline: a plain read of the same blobs, split the same way, timed the same way.
            std::vector<double> sink(16);
            auto readCall = [&](size_t i) {
              const uint8_t* blob = pool.data + (i % copies) * stride;
              runner.run(nt, [&](int tid, int active) {
                size_t lo = bytes * tid / active / 64 * 64;
                size_t hi =
                    tid + 1 == active ? bytes / 64 * 64 : bytes * (tid + 1) / active / 64 * 64;
                sink[tid * 8 % 16] += readSum(blob + lo, hi - lo);
              });
            };
            for (size_t i = 0; i < std::min<size_t>(copies, 8); ++i)
              call(i), readCall(i); // warm-up
            const Timing rd = timeCalls(readCall, std::max<size_t>(copies, 50), opt.minTime / 2);
            const Timing tm = timeCalls(call, std::max<size_t>(copies, 50), opt.minTime);
            const double sec = tm.best;
            Record r{"gemv",
                     sh.name,
                     isaName(isa),
                     formatName(f),
                     "",
                     sh.n,
                     sh.k,
                     1,
                     nt,
                     sec,
                     bytes / sec / 1e9,
                     0,
                     0,
                     2.0 * sh.n * sh.k / sec / 1e9,
                     0,
                     tm.median,
                     bytes / rd.best / 1e9,
                     0};
            r.fracRead = r.gbs / bw[nt].readGBs; // provisional: redone with the run's best below
            r.fracTriad = r.gbs / bw[nt].triadGBs;
            r.fracBlobRead = r.gbs / r.blobReadGBs;
            records.push_back(r);
            std::printf("%-15s %-7s %-15s %3d %9.1f %9.2f %9.2f %9.2f %7.1f%% %7.1f%% %7.1f%%\n",
                        sh.name, isaName(isa), formatName(f), nt, sec * 1e6, r.gbs,
                        bytes / tm.median / 1e9, r.blobReadGBs, 100 * r.fracBlobRead,
                        100 * r.fracRead, 100 * r.fracTriad);
            std::fflush(stdout);
          }
      }
    }
  }

  // ---- GEMV summary against the best bandwidth measured during the run ----
  if (opt.gemv && !records.empty()) {
    std::printf("\nGEMV summary: GB/s of the best call and %% of the best read-only bandwidth seen "
                "in the run\n(");
    for (int nt : opt.threads)
      std::printf("%s%d thread%s: read %.1f GB/s, triad %.1f GB/s",
                  nt == opt.threads[0] ? "" : "; ", nt, nt > 1 ? "s" : "", bw[nt].readGBs,
                  bw[nt].triadGBs);
    std::printf(")\n%-15s %-15s", "shape", "format");
    for (Isa isa : opt.isas)
      for (int nt : opt.threads)
        std::printf(" %7s/%d %6s", isaName(isa), nt, "%rd");
    std::printf("\n");
    for (Record& r : records) {
      r.fracRead = r.gbs / bw[r.threads].readGBs;
      r.fracTriad = r.gbs / bw[r.threads].triadGBs;
    }
    for (const Shape& sh : kShapes)
      for (WeightFormat f : opt.formats) {
        std::printf("%-15s %-15s", sh.name, formatName(f));
        for (Isa isa : opt.isas)
          for (int nt : opt.threads) {
            const Record* hit = nullptr;
            for (const Record& r : records)
              if (r.kind == "gemv" && r.shape == sh.name && r.format == formatName(f) &&
                  r.isa == isaName(isa) && r.threads == nt)
                hit = &r;
            if (hit)
              std::printf(" %9.2f %5.0f%%", hit->gbs, 100 * hit->fracRead);
            else
              std::printf(" %9s %6s", "-", "-");
          }
        std::printf("\n");
      }
  }

  // ---- GEMM (prefill) ----
  if (opt.gemm) {
    std::printf(
        "\nGEMM (GFLOP/s = 2*n*k*t / time; %% of the measured peak of the kernel's instruction)\n");
    std::printf("%-15s %-7s %-15s %4s %3s %9s %9s %9s %8s  %s\n", "shape", "isa", "format", "t",
                "thr", "ms/call", "GFLOP/s", "GF/s med", "%peak", "peak of");
    for (const Shape& sh : kShapes) {
      std::vector<float> w(size_t(sh.n * sh.k));
      for (float& v : w)
        v = nd(rng);
      for (int64_t t : opt.gemmT) {
        std::vector<float> x(size_t(t * sh.k)), y(size_t(t * sh.n));
        for (float& v : x)
          v = nd(rng) * 50.f;
        for (WeightFormat f : opt.formats) {
          std::vector<uint8_t> blob(packedBytes(f, sh.n, sh.k) + 64);
          uint8_t* b = blob.data() + (64 - reinterpret_cast<uintptr_t>(blob.data()) % 64) % 64;
          packWeights(f, w.data(), sh.n, sh.k, b);
          for (Isa isa : opt.isas) {
            if (isa == Isa::Scalar && !opt.scalarGemm)
              continue;
            for (int nt : opt.threads) {
              auto call = [&]() {
                runner.run(nt, [&](int tid, int active) {
                  matmul(isa, f, b, sh.n, sh.k, x.data(), t, y.data(), rowSplit(sh.n, tid, active),
                         rowSplit(sh.n, tid + 1, active));
                });
              };
              call(); // warm-up
              const Timing tm = timeCalls([&](size_t) { call(); }, 3, opt.minTime);
              const double sec = tm.best;
              const char* what = "";
              const double peak = peaks[nt].forKernel(isa, f, &what);
              Record r{"gemm",
                       sh.name,
                       isaName(isa),
                       formatName(f),
                       what,
                       sh.n,
                       sh.k,
                       t,
                       nt,
                       sec,
                       packedBytes(f, sh.n, sh.k) / sec / 1e9,
                       0,
                       0,
                       2.0 * sh.n * sh.k * t / sec / 1e9,
                       0,
                       tm.median,
                       0,
                       0};
              r.fracPeak = peak > 0 ? r.gflops / peak : 0;
              records.push_back(r);
              std::printf("%-15s %-7s %-15s %4lld %3d %9.2f %9.1f %9.1f %7.1f%%  %s\n", sh.name,
                          isaName(isa), formatName(f), (long long)t, nt, sec * 1e3, r.gflops,
                          2.0 * sh.n * sh.k * t / tm.median / 1e9, 100 * r.fracPeak, what);
              std::fflush(stdout);
            }
          }
        }
      }
    }
  }

  if (!opt.json.empty()) {
    FILE* fp = std::fopen(opt.json.c_str(), "w");
    if (!fp)
      return std::fprintf(stderr, "cannot write %s\n", opt.json.c_str()), 1;
    std::fprintf(fp, "{\n  \"machine\": {\"hardware_threads\": %u, \"best_isa\": \"%s\"},\n",
                 std::thread::hardware_concurrency(), isaName(bestSupportedIsa()));
    std::fprintf(fp, "  \"limits\": [");
    bool first = true;
    for (int nt : opt.threads) {
      const Peaks& p = peaks[nt];
      std::fprintf(fp,
                   "%s\n    {\"threads\": %d, \"read_gbs\": %.3f, \"triad_gbs\": %.3f, "
                   "\"peak_gops\": {\"scalar\": %.2f, \"fma256\": %.2f, \"fma512\": %.2f, "
                   "\"vdpbf16ps\": %.2f, \"vpdpbusd\": %.2f}, \"read_median_gbs\": %.3f, "
                   "\"triad_median_gbs\": %.3f}",
                   first ? "" : ",", nt, bw[nt].readGBs, bw[nt].triadGBs, p.scalar, p.fma256,
                   p.fma512, p.dpbf16, p.dpbusd, bw[nt].readMedianGBs, bw[nt].triadMedianGBs);
      first = false;
    }
    std::fprintf(fp, "\n  ],\n  \"results\": [");
    first = true;
    for (const Record& r : records) {
      std::fprintf(fp,
                   "%s\n    {\"kind\": \"%s\", \"shape\": \"%s\", \"isa\": \"%s\", \"format\": "
                   "\"%s\", \"n\": %lld, \"k\": %lld, \"t\": %lld, \"threads\": %d, \"seconds\": "
                   "%.9f, \"weight_gbs\": %.3f, \"frac_read_bw\": %.4f, \"frac_triad_bw\": %.4f, "
                   "\"gflops\": %.3f, \"frac_peak\": %.4f, \"peak_of\": \"%s\", "
                   "\"median_seconds\": %.9f, \"blob_read_gbs\": %.3f, \"frac_blob_read\": %.4f}",
                   first ? "" : ",", r.kind.c_str(), r.shape.c_str(), r.isa.c_str(),
                   jsonEscape(r.format).c_str(), (long long)r.n, (long long)r.k, (long long)r.t,
                   r.threads, r.seconds, r.gbs, r.fracRead, r.fracTriad, r.gflops, r.fracPeak,
                   jsonEscape(r.peakWhat).c_str(), r.medianSeconds, r.blobReadGBs, r.fracBlobRead);
      first = false;
    }
    std::fprintf(fp, "\n  ]\n}\n");
    std::fclose(fp);
    std::printf("\nwrote %s\n", opt.json.c_str());
  }
  return 0;
}
