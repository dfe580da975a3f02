// kt_bench_bandwidth: memory bandwidth of this machine — STREAM-like triad (a = b + s*c, 24 bytes
// per element) and a read-only sum — with 1 and 2 threads, on arrays far larger than the LLC.
// The physical limit decode GEMV is measured against (kt_bench_matmul measures it again itself).
// Each 16 MiB block is timed on its own and the best block is reported next to the median: on a
// shared VM the best block is the machine's rate, the median shows the interference.
//   kt_bench_bandwidth [--size-mb N (per array, default 1024)] [--reps N] [--json FILE] [--no-pin]
#include "bench/kernels/BenchUtil.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

using namespace kt::bench;

int main(int argc, char** argv) {
  size_t sizeMb = 1024;
  int reps = 3;
  std::string json;
  bool pin = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--size-mb" && i + 1 < argc)
      sizeMb = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--no-pin")
      pin = false;
    else if (a == "--json" && i + 1 < argc)
      json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--size-mb N] [--reps N] [--json FILE] [--no-pin]\n",
                   argv[0]);
      return 2;
    }
  }
  const int hw = int(std::thread::hardware_concurrency());
  std::printf("arrays: %zu MiB each, %d sweeps timed in 16 MiB blocks: best block (median)\n",
              sizeMb, reps);
  std::printf("%-8s %22s %22s\n", "threads", "read GB/s", "triad GB/s");
  std::string rows;
  for (int threads : {1, 2}) {
    if (threads > hw && threads > 1)
      break;
    Team team(threads, pin);
    Bandwidth bw = measureBandwidth(team, sizeMb << 20, reps);
    std::printf("%-8d %12.2f (%7.2f) %12.2f (%7.2f)\n", threads, bw.readGBs, bw.readMedianGBs,
                bw.triadGBs, bw.triadMedianGBs);
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "%s{\"threads\": %d, \"read_gbs\": %.3f, \"triad_gbs\": %.3f, "
                  "\"read_median_gbs\": %.3f, \"triad_median_gbs\": %.3f}",
                  rows.empty() ? "" : ",\n  ", threads, bw.readGBs, bw.triadGBs, bw.readMedianGBs,
                  bw.triadMedianGBs);
    rows += buf;
  }
  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", json.c_str());
      return 1;
    }
    std::fprintf(f, "{\"bandwidth\": [\n  %s\n]}\n", rows.c_str());
    std::fclose(f);
  }
  return 0;
}
