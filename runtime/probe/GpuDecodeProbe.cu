// kt-rt probe: what one decode token costs the GPU, on the runtime's own kernels.
//
// Why: a DeepSeek-V2-Lite decode token replays 738 kernels in 5.7 ms (7.7 us each) and takes
// 8.5 ms eagerly (11.5 us each), while the probe's older numbers (kernel_floor_us, timed on a
// tiny expert's kernels queued behind a spin kernel; launch_overhead_us) said 2.3 and 6.0 us
// plus the bytes at HBM speed (docs/cost-model.md, fourth device run). A decode is a chain of
// dependent, mostly single-wave kernels: one-block norms, 1-token GEMVs of a few MB that do not
// reach the HBM rate, the fused MoE decode kernels. So the probe runs such chains as the decode
// runs them — on a stream of its own, captured and replayed as a CUDA graph, and issued eagerly —
// and derives what the cost model needs:
//   decodeGraphKernelUs / decodeEagerKernelUs  GPU time per small kernel of the chain (norm, add,
//       SwiGLU, sigmoid, routing, combine, rope, KV append, bf16 rounding) per replay / per eager
//       issue of it (host issue included);
//   decodeGemvGBs   per format, by matrix bytes: the weight bytes per second of a 1-token product
//       (Blas::linear / linearInt8, as the runtime's linear op calls them) beyond the per-kernel
//       cost, in a graph-replayed chain of distinct matrices (so the bytes come from HBM, not L2);
//   decodeMoeGBs    the same for the fused MoE decode kernels (moeGateUpDecode + moeDownDecode,
//       one token's top-k pairs), by one expert's bytes, at Qwen3-30B-A3B's and DeepSeek-V2-Lite's
//       expert shapes.
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Graph.h"
#include "kernels/cuda/Int4Format.h"
#include "kernels/cuda/Memory.h"
#include "runtime/probe/GpuDecodeProbe.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace kt::probe {

namespace {

// A zeroed device allocation, freed on scope exit.
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess) {
      cudaFree(p);
      p = nullptr;
      cudaGetLastError();
    }
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A chain captured once and replayed: median seconds per replay (events on the probe's stream)
// and the graph's nodes (the kernels and library calls it holds). {0, 0} when capture fails.
struct Timed {
  double seconds = 0;
  double nodes = 0;
};
Timed replayed(const std::function<void()>& chain, int reps) {
  std::string err;
  chain(); // outside the capture: cuBLAS heuristics, scratch buffers
  if (!cuda::synchronizeStream(&err) || !cuda::beginCapture(&err))
    return {};
  chain();
  void* exec = nullptr;
  size_t nodes = 0;
  if (!cuda::endCapture(&exec, &nodes, &err) || !exec)
    return {};
  cudaStream_t stream = static_cast<cudaStream_t>(cuda::currentStream());
  cudaEvent_t a = nullptr, b = nullptr;
  std::vector<double> secs;
  if (cudaEventCreate(&a) == cudaSuccess && cudaEventCreate(&b) == cudaSuccess) {
    for (int r = 0; r <= reps; ++r) { // the first replay uploads the graph: not timed
      cudaEventRecord(a, stream);
      if (!cuda::launchGraph(exec, &err))
        break;
      cudaEventRecord(b, stream);
      float ms = 0;
      if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&ms, a, b) != cudaSuccess)
        break;
      if (r > 0)
        secs.push_back(double(ms) * 1e-3);
    }
  }
  if (a)
    cudaEventDestroy(a);
  if (b)
    cudaEventDestroy(b);
  cuda::destroyGraph(exec);
  cudaGetLastError();
  return {median(secs), double(nodes)};
}

// The same chain issued eagerly: host wall-clock from the first launch until the stream is done.
double eager(const std::function<void()>& chain, int reps) {
  std::string err;
  chain();
  if (!cuda::synchronizeStream(&err))
    return 0;
  std::vector<double> secs;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    chain();
    if (!cuda::synchronizeStream(&err))
      return 0;
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(secs);
}

// Shapes of a decode layer (DeepSeek-V2-Lite: hidden 2048, expert intermediate 1408, 64 experts,
// top-6, 16 heads with a 64-wide rope part, a 576-float MLA cache row).
constexpr int64_t kHidden = 2048, kInter = 1408, kCacheRow = 576, kCapacity = 4096;
constexpr int kRouted = 64, kTopK = 6, kHeads = 16, kRopeDim = 64, kLayers = 24;

// The small kernels of a decode: per layer a norm, a residual add, SwiGLU, the router's sigmoid,
// the routing, the combine, a rope, a KV-cache append and a bf16 rounding, each on the previous
// one's data, for kLayers layers.
void smallKernels(bool quick, GpuResult* g) {
  DeviceBuffer x(kHidden * 4), y(kHidden * 4), w(kHidden * 4), gu(2 * kInter * 4),
      logits(kRouted * 4), experts(kTopK * 4), weights(kTopK * 4), routed(kTopK * kHidden * 4),
      q(kHeads * kCacheRow * 4), positions(4), invFreq(kRopeDim * 4),
      cache(kCapacity * kCacheRow * 4), xb(kHidden * 2);
  for (const DeviceBuffer* b : {&x, &y, &w, &gu, &logits, &experts, &weights, &routed, &q,
                                &positions, &invFreq, &cache, &xb})
    if (!b->p)
      return;
  cuda::RoutingArgs route;
  route.numExperts = kRouted;
  route.topK = kTopK;
  auto chain = [&] {
    for (int l = 0; l < kLayers; ++l) {
      cuda::rmsNormRows(x.as<float>(), kHidden, 1, kHidden, w.as<float>(), 1e-6f, y.as<float>(),
                        kHidden);
      cuda::add(x.as<float>(), y.as<float>(), x.as<float>(), kHidden);
      cuda::swiglu(gu.as<float>(), gu.as<float>() + kInter, gu.as<float>(), kInter);
      cuda::sigmoidInPlace(logits.as<float>(), kRouted);
      cuda::moeRoute(logits.as<float>(), nullptr, 1, route, experts.as<int32_t>(),
                     weights.as<float>());
      cuda::moeCombine(routed.as<float>(), weights.as<float>(), experts.as<int32_t>(), nullptr,
                       kRouted, 1, kTopK, kHidden, y.as<float>(), nullptr, x.as<float>());
      cuda::rope(q.as<float>(), 1, kHeads, kHeads * kCacheRow, kCacheRow, kCacheRow - kRopeDim,
                 positions.as<int32_t>(), invFreq.as<float>(), kRopeDim, 1.0f, false);
      cuda::appendRows(cache.as<float>(), kCacheRow, kCapacity, q.as<float>(), kCacheRow, kCacheRow,
                       1, positions.as<int32_t>(), 0);
      cuda::toBf16(x.as<float>(), xb.as<uint16_t>(), kHidden);
    }
  };
  const Timed t = replayed(chain, quick ? 5 : 20);
  if (t.nodes <= 0 || t.seconds <= 0)
    return;
  g->decodeGraphKernelUs = t.seconds * 1e6 / t.nodes;
  const double e = eager(chain, quick ? 5 : 20);
  if (e > 0)
    g->decodeEagerKernelUs = e * 1e6 / t.nodes;
}

// 1-token products over distinct [n, 2048] matrices of `bytes` each, in a pool of `pool` bytes.
void gemvChains(bool quick, size_t pool, GpuResult* g) {
  std::string err;
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
  if (!blas)
    return;
  const int64_t k = kHidden;
  const std::vector<int64_t> mib =
      quick ? std::vector<int64_t>{1, 4, 16} : std::vector<int64_t>{1, 2, 4, 8, 16, 64};
  // Outputs and int8 scales: at most 64 MiB / 2048 = 32768 rows.
  // int4: its rows' f16 group scales, at most 64 MiB / 1 KiB a row x 16 groups x 2 bytes.
  DeviceBuffer weights(pool), x(size_t(k) * 4), y(size_t(1) << 20), scales(size_t(1) << 20),
      groups(size_t(4) << 20);
  if (!weights.p || !x.p || !y.p || !scales.p || !groups.p)
    return;
  struct Format {
    const char* name;
    size_t elementBytes; // int4: 0 (rows of int4RowBytes)
  };
  for (const Format f :
       {Format{"f32", 4}, Format{"bf16", 2}, Format{"int8", 1}, Format{"int4", 0}}) {
    for (int64_t m : mib) {
      const size_t bytes = size_t(m) << 20;
      const size_t rowBytes =
          f.elementBytes ? size_t(k) * f.elementBytes : size_t(cuda::int4RowBytes(k));
      const int64_t n = int64_t(bytes / rowBytes);
      const int count = int(std::min<size_t>(32, pool / bytes));
      if (count < 2)
        continue;
      const std::string name = f.name;
      auto chain = [&] {
        for (int i = 0; i < count; ++i) {
          const uint8_t* wi = weights.as<uint8_t>() + size_t(i) * bytes;
          if (name == "int8")
            blas->linearInt8(x.as<float>(), 1, reinterpret_cast<const int8_t*>(wi),
                             scales.as<float>(), n, k, y.as<float>(), &err);
          else if (name == "int4")
            blas->linearInt4(x.as<float>(), 1, wi, groups.as<uint16_t>(), n, k, y.as<float>(),
                             &err);
          else
            blas->linear(x.as<float>(), 1, wi, name == "bf16", n, k, y.as<float>(), &err);
        }
      };
      const Timed t = replayed(chain, quick ? 3 : 10);
      if (t.seconds > 0)
        g->decodeGemvGBs[name][int64_t(bytes)] =
            rateBeyondKernels(double(bytes) * count, t.seconds, t.nodes, g->decodeGraphKernelUs);
    }
  }
}

// The fused MoE decode kernels for one token's top-k pairs over distinct experts of an expert
// stack filling at most `pool` bytes, 16 layers per chain.
void moeChains(bool quick, size_t pool, GpuResult* g) {
  struct Shape {
    int64_t inter;
    int topK;
  };
  struct Format {
    const char* name;
    cuda::ExpertDType dtype;
    size_t elementBytes; // int4: 0 (packed rows of int4RowBytes, f16 group scales)
  };
  const int layers = 16;
  for (const Shape s : {Shape{768, 8}, Shape{kInter, kTopK}})
    for (const Format f :
         {Format{"f32", cuda::ExpertDType::F32, 4}, Format{"bf16", cuda::ExpertDType::BF16, 2},
          Format{"int8", cuda::ExpertDType::Int8, 1}, Format{"int4", cuda::ExpertDType::Int4, 0}}) {
      const bool int4 = f.dtype == cuda::ExpertDType::Int4;
      // int4: a matrix is rows x int4RowBytes(cols) either way round (gate/up [inter, H], down
      // [H, inter]); the larger of the two orientations sizes the buffers.
      const size_t matrix = int4 ? size_t(std::max(s.inter * cuda::int4RowBytes(kHidden),
                                                   kHidden * cuda::int4RowBytes(s.inter)))
                                 : size_t(s.inter) * kHidden * f.elementBytes;
      const size_t groupScales = int4 ? size_t(std::max(s.inter * cuda::int4Groups(kHidden),
                                                        kHidden * cuda::int4Groups(s.inter)))
                                      : 0;
      const int stack = int(std::min<size_t>(64, pool / (3 * matrix)));
      if (stack < s.topK)
        continue;
      DeviceBuffer gate(matrix * stack), up(matrix * stack), down(matrix * stack),
          groups(std::max<size_t>(2, groupScales * 2 * size_t(stack))),
          scales(size_t(stack) * size_t(std::max(s.inter, kHidden)) * 4), x(kHidden * 4),
          act(size_t(s.topK) * s.inter * 4), y(size_t(s.topK) * kHidden * 4),
          ids(size_t(layers) * s.topK * 4);
      if (!gate.p || !up.p || !down.p || !groups.p || !scales.p || !x.p || !act.p || !y.p || !ids.p)
        continue;
      // Layer l's pairs take experts l*topK .. l*topK+topK-1 (mod the stack): every layer streams
      // weights the previous ones did not touch, as a decode's layers do.
      std::vector<int32_t> hostIds(size_t(layers) * s.topK);
      for (size_t i = 0; i < hostIds.size(); ++i)
        hostIds[i] = int32_t(i % size_t(stack));
      if (cudaMemcpy(ids.p, hostIds.data(), hostIds.size() * 4, cudaMemcpyHostToDevice) !=
          cudaSuccess)
        continue;
      auto stackOf = [&](const DeviceBuffer& b, int64_t rows, int64_t cols) {
        cuda::ExpertStack e;
        e.data = b.p;
        e.dtype = int(f.dtype);
        e.scales = f.dtype == cuda::ExpertDType::Int8 ? scales.as<float>() : nullptr;
        e.groupScales = int4 ? groups.as<uint16_t>() : nullptr;
        e.rows = rows;
        e.cols = cols;
        e.numExperts = stack;
        return e;
      };
      const cuda::ExpertStack gs = stackOf(gate, s.inter, kHidden),
                              us = stackOf(up, s.inter, kHidden),
                              ds = stackOf(down, kHidden, s.inter);
      auto chain = [&] {
        for (int l = 0; l < layers; ++l) {
          const int32_t* e = ids.as<int32_t>() + l * s.topK;
          cuda::moeGateUpDecode(x.as<float>(), 1, s.topK, e, gs, us, act.as<float>());
          cuda::moeDownDecode(act.as<float>(), s.topK, e, ds, y.as<float>());
        }
      };
      const Timed t = replayed(chain, quick ? 3 : 10);
      // One expert's bytes as the cost model sizes it: its three matrices, int8 with a scale
      // per row, int4 with an f16 scale per row and 128-column group.
      const double expertBytes =
          3.0 * double(matrix) +
          (f.dtype == cuda::ExpertDType::Int8 ? 4.0 * double(2 * s.inter + kHidden) : 0.0) +
          (int4 ? 2.0 * double(2 * s.inter * cuda::int4Groups(kHidden) +
                               kHidden * cuda::int4Groups(s.inter))
                : 0.0);
      if (t.seconds > 0)
        g->decodeMoeGBs[f.name][int64_t(expertBytes)] = rateBeyondKernels(
            expertBytes * s.topK * layers, t.seconds, t.nodes, g->decodeGraphKernelUs);
    }
}

} // namespace

void measureDecodeChains(bool quick, GpuResult* g) {
  // A non-blocking stream of the probe's own, as the CUDA backend uses (graphs cannot capture the
  // legacy default stream).
  std::string err;
  void* previous = cuda::currentStream();
  void* stream = cuda::createStream(&err);
  if (!stream)
    return;
  cuda::setCurrentStream(stream);
  const size_t pool = size_t(quick ? 256 : 512) << 20; // weights: far beyond the 50 MB L2
  smallKernels(quick, g);
  if (g->decodeGraphKernelUs > 0) { // the per-kernel cost the rates below are net of
    gemvChains(quick, pool, g);
    moeChains(quick, pool, g);
  }
  cuda::synchronizeStream(&err);
  cuda::setCurrentStream(previous);
  cuda::destroyStream(stream);
  cudaGetLastError();
}

} // namespace kt::probe
