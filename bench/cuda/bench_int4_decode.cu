// kt_bench_int4_decode: weight bandwidth of the decode kernels for weight-only int8 and int4 on
// DeepSeek-V2-Lite shapes, the int4 kernels before and after the rows-per-warp change (issue #7)
// side by side. Not a test; run on a GPU machine:
//   build-cuda/bench/cuda/kt_bench_int4_decode [--iters N] [--quick]
// Each case cycles over a pool of distinct matrices (>= 256 MB in all, past the H100's 50 MB L2,
// so every call reads its weights from HBM), times `iters` back-to-back calls with CUDA events and
// prints microseconds per call and GB/s of weight bytes (nibbles or int8 plus their scales). The
// "old" int4 kernels are copies of the previous one-warp-per-row code, kept here only; "R=.."
// rows are the new kernel (Int4Dot.cuh) at other rows-per-warp and block sizes than gemvInt4's
// pick. It also checks the new int4 GEMV and MoE kernels against the old ones on the same
// weights (max relative difference; f32 summation order only, so ~1e-6).
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Int4Dot.cuh"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/Stream.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace kt::cuda;

namespace {

#define CHECK(call)                                                                                \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));  \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

// ---- The previous int4 kernels (one warp per row), for comparison only. ----
__device__ inline void oldUnpackInt4x8(uint32_t word, float* w) {
#pragma unroll
  for (int i = 0; i < 8; ++i)
    w[i] = __uint_as_float(0x4B000000u | ((word >> (4 * i)) & 0xfu)) - 8388616.0f;
}

template <int T>
__device__ inline void oldInt4RowDot(const uint8_t* __restrict__ row,
                                     const uint16_t* __restrict__ scales, const float* x,
                                     int64_t xStride, int64_t k, bool xVec, float* acc) {
  const int lane = int(threadIdx.x) % 32;
  const int64_t chunks = (k + 31) / 32;
  const uint4* chunk = reinterpret_cast<const uint4*>(row);
  uint4 next = lane < chunks ? __ldg(chunk + lane) : make_uint4(0, 0, 0, 0);
  for (int64_t j = lane; j < chunks; j += 32) {
    const uint4 packed = next;
    if (j + 32 < chunks)
      next = __ldg(chunk + j + 32);
    const float d = __half2float(__ushort_as_half(__ldg(scales + j / 4)));
    const int64_t c0 = j * 32;
    const bool vec = xVec && c0 + 32 <= k;
    const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
    float s[T];
#pragma unroll
    for (int t = 0; t < T; ++t)
      s[t] = 0.f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float w[8];
      oldUnpackInt4x8(words[q], w);
      const int64_t c = c0 + 8 * q;
#pragma unroll
      for (int t = 0; t < T; ++t) {
        const float* xt = x + t * xStride + c;
        if (vec) {
          const float4 a = *reinterpret_cast<const float4*>(xt);
          const float4 b = *reinterpret_cast<const float4*>(xt + 4);
          s[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y +
                  w[6] * b.z + w[7] * b.w;
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i)
            if (c + i < k)
              s[t] += w[i] * xt[i];
        }
      }
    }
#pragma unroll
    for (int t = 0; t < T; ++t)
      acc[t] += d * s[t];
  }
}

template <int T>
__global__ void oldGemvInt4Kernel(const float* x, const uint8_t* data, const uint16_t* scales,
                                  int64_t n, int64_t k, bool xVec, float* y) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t row = int64_t(blockIdx.x) * 8 + warp;
  if (row >= n)
    return;
  float acc[T] = {};
  oldInt4RowDot<T>(data + row * int4RowBytes(k), scales + row * int4Groups(k), x, k, k, xVec, acc);
#pragma unroll
  for (int t = 0; t < T; ++t) {
    const float s = int4WarpSum(acc[t]);
    if (lane == 0)
      y[t * n + row] = s;
  }
}

// The old MoE decode int4 path (no split maps or skipped pairs: every expert is held): a warp per
// output row of a pair, gate and up rows one after the other.
__global__ void oldGateUpInt4(const float* x, int topK, const int32_t* experts, ExpertStack gate,
                              ExpertStack up, float* act) {
  const int64_t pair = blockIdx.y, row = int64_t(blockIdx.x) * 8 + int(threadIdx.x) / 32;
  if (row >= gate.rows)
    return;
  const int64_t r = experts[pair] * gate.rows + row, k = gate.cols;
  const float* xt = x + (pair / topK) * k;
  float g = 0.f, u = 0.f;
  oldInt4RowDot<1>(static_cast<const uint8_t*>(gate.data) + r * int4RowBytes(k),
                   gate.groupScales + r * int4Groups(k), xt, k, k, true, &g);
  g = int4WarpSum(g);
  oldInt4RowDot<1>(static_cast<const uint8_t*>(up.data) + r * int4RowBytes(k),
                   up.groupScales + r * int4Groups(k), xt, k, k, true, &u);
  u = int4WarpSum(u);
  if (threadIdx.x % 32 == 0)
    act[pair * gate.rows + row] = g / (1.0f + expf(-g)) * u;
}

__global__ void oldDownInt4(const float* act, const int32_t* experts, ExpertStack down, float* y) {
  const int64_t pair = blockIdx.y, row = int64_t(blockIdx.x) * 8 + int(threadIdx.x) / 32;
  if (row >= down.rows)
    return;
  const int64_t r = experts[pair] * down.rows + row, k = down.cols;
  float d = 0.f;
  oldInt4RowDot<1>(static_cast<const uint8_t*>(down.data) + r * int4RowBytes(k),
                   down.groupScales + r * int4Groups(k), act + pair * k, k, k, true, &d);
  d = int4WarpSum(d);
  if (threadIdx.x % 32 == 0)
    y[pair * down.rows + row] = d;
}

// ---- Inputs. ----
__global__ void fillBytes(uint8_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = uint8_t(h >> 8);
  }
}
// f16 scales in +-[0.001, 0.002) and f32 activations in [-1, 1), from hashed bits.
__global__ void fillScales(uint16_t* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint32_t h = (uint32_t(i) * 2654435761u ^ seed) * 2246822519u;
    const float v = 0.001f * (1.f + float(h >> 9) / 8388608.f) * ((h & 1u) ? -1.f : 1.f);
    p[i] = __half_as_ushort(__float2half_rn(v));
  }
}
__global__ void fillFloats(float* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const uint32_t h = (uint32_t(i) * 2654435761u ^ seed) * 2246822519u;
    p[i] = lo + (hi - lo) * float(h >> 8) / 16777216.f;
  }
}

template <class T> T* deviceArray(size_t n) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  return static_cast<T*>(p);
}

// One int4 and one int8 copy of `count` matrices [rows, cols] (random contents).
struct Pool {
  int64_t rows, cols, count;
  uint8_t* i4 = nullptr;
  uint16_t* i4Scales = nullptr;
  int8_t* i8 = nullptr;
  float* i8Scales = nullptr;
  size_t int4Bytes() const { // per matrix, nibbles + scales
    return size_t(rows * int4RowBytes(cols) + rows * int4Groups(cols) * 2);
  }
  size_t int8Bytes() const { return size_t(rows * cols + rows * 4); }
  const uint8_t* i4At(int64_t m) const { return i4 + m * rows * int4RowBytes(cols); }
  const uint16_t* i4ScalesAt(int64_t m) const { return i4Scales + m * rows * int4Groups(cols); }
  const int8_t* i8At(int64_t m) const { return i8 + m * rows * cols; }
  const float* i8ScalesAt(int64_t m) const { return i8Scales + m * rows; }
};

Pool makePool(int64_t rows, int64_t cols, size_t minBytes, uint32_t seed) {
  Pool p{rows, cols, 1};
  p.count = std::max<int64_t>(2, int64_t((minBytes + p.int4Bytes() - 1) / p.int4Bytes()));
  const size_t n4 = size_t(p.count * rows * int4RowBytes(cols)),
               s4 = size_t(p.count * rows * int4Groups(cols));
  const size_t n8 = size_t(p.count * rows * cols), s8 = size_t(p.count * rows);
  p.i4 = deviceArray<uint8_t>(n4);
  p.i4Scales = deviceArray<uint16_t>(s4);
  p.i8 = deviceArray<int8_t>(n8);
  p.i8Scales = deviceArray<float>(s8);
  fillBytes<<<1024, 256>>>(p.i4, n4, seed);
  fillScales<<<1024, 256>>>(p.i4Scales, s4, seed + 1);
  fillBytes<<<1024, 256>>>(reinterpret_cast<uint8_t*>(p.i8), n8, seed + 2);
  fillFloats<<<1024, 256>>>(p.i8Scales, s8, seed + 3, 1e-4f, 2e-4f);
  CHECK(cudaGetLastError());
  return p;
}

void freePool(Pool& p) {
  cudaFree(p.i4);
  cudaFree(p.i4Scales);
  cudaFree(p.i8);
  cudaFree(p.i8Scales);
}

// Microseconds per call of run(i) over iters calls (after a warm-up pass over the pool).
double timeCalls(int iters, int warm, const std::function<void(int)>& run) {
  for (int i = 0; i < warm; ++i)
    run(i);
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  CHECK(cudaEventRecord(a, stream()));
  for (int i = 0; i < iters; ++i)
    run(i);
  CHECK(cudaEventRecord(b, stream()));
  CHECK(cudaEventSynchronize(b));
  CHECK(cudaGetLastError());
  float ms = 0.f;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 1000.0 * ms / iters;
}

// One line per kernel; baseUs / int8Us > 0: the speed-up over the old int4 kernel and over int8
// (in time per call: int4 moves about half of int8's bytes, so ~x2 vs int8 is the goal).
void report(const char* kernel, const std::string& shape, int tokens, double us, size_t bytes,
            double baseUs, double int8Us = 0) {
  std::printf("%-34s %-22s T=%d %9.2f us %8.1f GB/s", kernel, shape.c_str(), tokens, us,
              double(bytes) / (us * 1e3));
  if (baseUs > 0)
    std::printf("   x%.2f vs old int4", baseUs / us);
  if (int8Us > 0)
    std::printf("   x%.2f vs int8", int8Us / us);
  std::printf("\n");
}

double maxRelDiff(const float* a, const float* b, size_t n) {
  CHECK(cudaDeviceSynchronize()); // the kernels ran on KT's stream, not the legacy one
  std::vector<float> ha(n), hb(n);
  CHECK(cudaMemcpy(ha.data(), a, n * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(hb.data(), b, n * 4, cudaMemcpyDeviceToHost));
  double m = 0;
  for (size_t i = 0; i < n; ++i)
    m = std::max(m, double(std::fabs(ha[i] - hb[i])) / (1.0 + std::fabs(hb[i])));
  return m;
}

template <int T, int R>
void launchNew(int warpsPerBlock, const float* x, const uint8_t* d, const uint16_t* s, int64_t n,
               int64_t k, float* y) {
  const int64_t perBlock = int64_t(warpsPerBlock) * R;
  gemvInt4RowsKernel<T, R>
      <<<unsigned((n + perBlock - 1) / perBlock), warpsPerBlock * 32, 0, stream()>>>(x, d, s, n, k,
                                                                                     true, y);
}

template <int T>
void launchOld(const float* x, const uint8_t* d, const uint16_t* s, int64_t n, int64_t k,
               float* y) {
  oldGemvInt4Kernel<T><<<unsigned((n + 7) / 8), 256, 0, stream()>>>(x, d, s, n, k, true, y);
}

template <int T> void benchGemv(const Pool& p, const float* x, float* y, float* y2, int iters) {
  const std::string shape = std::to_string(p.rows) + "x" + std::to_string(p.cols);
  const int64_t n = p.rows, k = p.cols;
  auto m = [&](int i) { return int64_t(i) % p.count; };
  const int warm = int(p.count);
  const double i8 = timeCalls(
      iters, warm, [&](int i) { gemvInt8(x, T, p.i8At(m(i)), p.i8ScalesAt(m(i)), n, k, y); });
  const double old = timeCalls(
      iters, warm, [&](int i) { launchOld<T>(x, p.i4At(m(i)), p.i4ScalesAt(m(i)), n, k, y); });
  const double now = timeCalls(
      iters, warm, [&](int i) { gemvInt4(x, T, p.i4At(m(i)), p.i4ScalesAt(m(i)), n, k, y); });
  report("gemvInt8", shape, T, i8, p.int8Bytes(), 0);
  report("int4 old (warp per row)", shape, T, old, p.int4Bytes(), 0, i8);
  report("gemvInt4 (new, shipped pick)", shape, T, now, p.int4Bytes(), old, i8);
  struct Variant {
    const char* name;
    int warps;
    void (*launch)(int, const float*, const uint8_t*, const uint16_t*, int64_t, int64_t, float*);
  };
  const Variant variants[] = {{"  new R=1, 4 warps/block", 4, launchNew<T, 1>},
                              {"  new R=2, 4 warps/block", 4, launchNew<T, 2>},
                              {"  new R=2, 8 warps/block", 8, launchNew<T, 2>},
                              {"  new R=4, 2 warps/block", 2, launchNew<T, 4>},
                              {"  new R=4, 4 warps/block", 4, launchNew<T, 4>},
                              {"  new R=4, 8 warps/block", 8, launchNew<T, 4>}};
  for (const Variant& v : variants) {
    const double us = timeCalls(iters, warm, [&](int i) {
      v.launch(v.warps, x, p.i4At(m(i)), p.i4ScalesAt(m(i)), n, k, y);
    });
    report(v.name, shape, T, us, p.int4Bytes(), old, i8);
  }
  launchOld<T>(x, p.i4At(0), p.i4ScalesAt(0), n, k, y);
  gemvInt4(x, T, p.i4At(0), p.i4ScalesAt(0), n, k, y2);
  std::printf("%-34s %-22s T=%d max rel diff new vs old %.2e\n", "  check", shape.c_str(), T,
              maxRelDiff(y2, y, size_t(T * n)));
}

// DeepSeek-V2-Lite's routed experts at decode: 64 experts of gate/up [1408, 2048] and down
// [2048, 1408], top-6, `tokens` tokens with distinct experts, over a pool of layers.
void benchMoe(int tokens, int iters, size_t minBytes) {
  const int64_t E = 64, I = 1408, H = 2048;
  const int topK = 6;
  const int64_t pairs = int64_t(tokens) * topK;
  Pool gate = makePool(E * I, H, minBytes / 3, 11), up = makePool(E * I, H, minBytes / 3, 12),
       down = makePool(E * H, I, minBytes / 3, 13);
  const int64_t layers = std::min({gate.count, up.count, down.count});
  // Per call i: layer i % layers, experts drawn without repeats inside a token.
  const int64_t draws = 64;
  std::vector<int32_t> ids(size_t(draws * pairs));
  uint32_t h = 12345;
  for (int64_t d = 0; d < draws; ++d)
    for (int t = 0; t < tokens; ++t)
      for (int j = 0; j < topK; ++j) {
        int32_t e;
        bool repeat;
        do {
          h = h * 1664525u + 1013904223u;
          e = int32_t((h >> 8) % E);
          repeat = false;
          for (int q = 0; q < j; ++q)
            repeat |= ids[size_t(d * pairs + t * topK + q)] == e;
        } while (repeat);
        ids[size_t(d * pairs + t * topK + j)] = e;
      }
  int32_t* dIds = deviceArray<int32_t>(ids.size());
  CHECK(cudaMemcpy(dIds, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  float* x = deviceArray<float>(size_t(tokens * H));
  fillFloats<<<64, 256>>>(x, size_t(tokens * H), 99, -1.f, 1.f);
  float *act = deviceArray<float>(size_t(pairs * I)), *y = deviceArray<float>(size_t(pairs * H)),
        *y2 = deviceArray<float>(size_t(pairs * H));
  auto stack = [&](const Pool& p, int64_t layer, bool int4) {
    ExpertStack s;
    s.rows = p.rows / E;
    s.cols = p.cols;
    s.numExperts = int(E);
    if (int4) {
      s.dtype = int(ExpertDType::Int4);
      s.data = p.i4At(layer);
      s.groupScales = p.i4ScalesAt(layer);
    } else {
      s.dtype = int(ExpertDType::Int8);
      s.data = p.i8At(layer);
      s.scales = p.i8ScalesAt(layer);
    }
    return s;
  };
  // Weight bytes of one call: every pair's gate, up and down rows.
  const size_t b4 = size_t(pairs) * (gate.int4Bytes() + up.int4Bytes() + down.int4Bytes()) / E;
  const size_t b8 = size_t(pairs) * (gate.int8Bytes() + up.int8Bytes() + down.int8Bytes()) / E;
  auto newCall = [&](int i, bool int4) {
    const int64_t l = i % layers;
    const int32_t* e = dIds + (i % draws) * pairs;
    moeGateUpDecode(x, tokens, topK, e, stack(gate, l, int4), stack(up, l, int4), act);
    moeDownDecode(act, pairs, e, stack(down, l, int4), y);
  };
  auto oldCall = [&](int i) {
    const int64_t l = i % layers;
    const int32_t* e = dIds + (i % draws) * pairs;
    oldGateUpInt4<<<dim3(unsigned((I + 7) / 8), unsigned(pairs)), 256, 0, stream()>>>(
        x, topK, e, stack(gate, l, true), stack(up, l, true), act);
    oldDownInt4<<<dim3(unsigned((H + 7) / 8), unsigned(pairs)), 256, 0, stream()>>>(
        act, e, stack(down, l, true), y);
  };
  const int warm = int(layers);
  const std::string shape = "64x(1408x2048) top-6";
  const double i8 = timeCalls(iters, warm, [&](int i) { newCall(i, false); });
  const double old = timeCalls(iters, warm, oldCall);
  const double now = timeCalls(iters, warm, [&](int i) { newCall(i, true); });
  report("moe decode int8 (gateUp+down)", shape, tokens, i8, b8, 0);
  report("moe decode int4 old", shape, tokens, old, b4, 0, i8);
  report("moe decode int4 new", shape, tokens, now, b4, old, i8);
  oldCall(0);
  CHECK(cudaMemcpyAsync(y2, y, size_t(pairs * H) * 4, cudaMemcpyDeviceToDevice, stream()));
  newCall(0, true);
  CHECK(cudaStreamSynchronize(stream()));
  std::printf("%-34s %-22s T=%d max rel diff new vs old %.2e\n", "  check", shape.c_str(), tokens,
              maxRelDiff(y, y2, size_t(pairs * H)));
  cudaFree(dIds);
  cudaFree(x);
  cudaFree(act);
  cudaFree(y);
  cudaFree(y2);
  freePool(gate);
  freePool(up);
  freePool(down);
}

} // namespace

int main(int argc, char** argv) {
  int iters = 200;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--iters N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  int dev = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    std::fprintf(stderr, "kt_bench_int4_decode: no GPU\n");
    return 1;
  }
  std::printf("%s, %d SMs, L2 %d MB; %d calls per case, pools >= 256 MB\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, iters);
  const size_t minBytes = size_t(256) << 20;
  const int64_t maxK = 2048;
  float* x = deviceArray<float>(size_t(8 * maxK));
  fillFloats<<<64, 256>>>(x, size_t(8 * maxK), 7, -1.f, 1.f);
  const int64_t maxN = 102400;
  float *y = deviceArray<float>(size_t(8 * maxN)), *y2 = deviceArray<float>(size_t(8 * maxN));
  struct Shape {
    int64_t n, k;
  };
  const Shape shapes[] = {{2048, 2048}, {3072, 2048}, {1408, 2048}, {102400, 2048}};
  for (const Shape& s : shapes) {
    std::printf("\n");
    Pool p = makePool(s.n, s.k, minBytes, uint32_t(s.n));
    benchGemv<1>(p, x, y, y2, iters);
    if (!quick) {
      benchGemv<2>(p, x, y, y2, iters);
      benchGemv<4>(p, x, y, y2, iters);
      benchGemv<8>(p, x, y, y2, iters);
    }
    freePool(p);
  }
  std::printf("\n");
  benchMoe(1, iters, size_t(1) << 30);
  if (!quick)
    benchMoe(4, iters, size_t(1) << 30);
  cudaFree(x);
  cudaFree(y);
  cudaFree(y2);
  return 0;
}
