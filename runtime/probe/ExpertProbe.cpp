// kt-rt probe's expert-path curves (the profile's cpu.expert_rows_gflops[_i768]): the runtime's
// whole routed-expert path at prefill sizes, timed through the very function the CPU moe op and the
// hybrid GPU moe op call (cpuops::routedExpertsOver: gather each expert's rows, prepare the
// activations, gate/up, SwiGLU, down, the weighted combine) over a layer's worth of experts with
// the format's packed weights.
//
// Why not the rows curves (gemm_rows_gflops): those time one matrix's row blocks with every
// thread on it, while a MoE layer's prefill runs many experts' gathers, preparations, three
// products, SwiGLU and the combine in one fused task list. The device's DeepSeek-V2-Lite int8
// prefill reached ~1 TFLOP/s where the rows curve said 4-7 TFLOP/s (docs/cost-model.md, third
// device run).
#include "runtime/probe/Probe.h"
#include "runtime/probe/ProbeData.h"

#include "bench/kernels/BenchUtil.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

namespace kt::probe {

namespace quant = kt::cpu::quant;

namespace {

// Two layers, hidden 2048, as the models have them: DeepSeek-V2-Lite's 64 experts of intermediate
// 1408 with top-6 routing and Qwen3-30B-A3B's 128 experts of 768 with top-8. The path's cost per
// row is not proportional to the matrices' FLOPs (each expert also gathers its rows and prepares
// their activations, and a layer's rows spread over more experts make smaller tasks: Qwen3's
// hybrid prefill ran its experts 4x under a 16-expert curve), so the cost model interpolates
// between the two curves by an expert's size instead of scaling one. Each token picks topK
// distinct experts at random (seeded, uniform): `rows` per expert on average, spread as a real
// prompt's are. An even spread (every expert exactly `rows`, whole 16-row panels) ran ~13% faster
// than a random one on the device Xeon at 48 rows (kt_bench_moe, docs/cost-model.md, ninth device
// run), while a skewed routing ran as fast as a random even one.
constexpr int64_t kHidden = 2048;
struct LayerShape {
  int64_t inter;
  int experts, topK;
};
constexpr LayerShape kShapes[] = {{1408, 64, 6}, {768, 128, 8}};

size_t aligned(size_t bytes) {
  return (bytes + 4095) / 4096 * 4096;
}

void measureShape(const ProbeOptions& o, ThreadPool& pool, const LayerShape& shape,
                  bench::Buffer& blob, CpuResult* out);

} // namespace

const std::vector<int64_t>& expertCurveRows(bool quick) {
  // A P-token prefill gives each expert about P*k/E rows: DeepSeek-V2-Lite 12 at P = 128, 48 at
  // 512, 192 at 2048; Qwen3-30B-A3B 32 at 512, 128 at 2048.
  // 1 row: decode, timed as one token through its top-k experts (measureShape).
  static const std::vector<int64_t> full = {1, 8, 16, 32, 64, 128, 256}, fast = {1, 8, 32, 128};
  return quick ? fast : full;
}

void measureExpertPath(const ProbeOptions& o, int threads, bench::Buffer& blob, CpuResult* out) {
  // The malloc settings an Executor gives the ops: without them every call's gathered rows and
  // intermediates came from fresh mmaps (page faults the runtime does not pay; 4-5x slower at
  // 128 rows per expert).
  cpuops::keepFreedMemoryInHeap();
  ThreadPool pool(threads);
  for (const LayerShape& shape : kShapes)
    measureShape(o, pool, shape, blob, out);
}

namespace {

void measureShape(const ProbeOptions& o, ThreadPool& pool, const LayerShape& shape,
                  bench::Buffer& blob, CpuResult* out) {
  const int64_t inter = shape.inter;
  const int experts = shape.experts, topK = shape.topK;
  const std::vector<float> gate = randomMatrix(inter * kHidden, 21),
                           up = randomMatrix(inter * kHidden, 22),
                           down = randomMatrix(kHidden * inter, 23);
  struct Format {
    quant::WeightFormat packed;
    const char* name;
  };
  for (const Format f :
       {Format{quant::WeightFormat::BF16, "bf16"}, Format{quant::WeightFormat::Int8, "int8"},
        Format{quant::WeightFormat::Int4G32Sym, "int4"}}) {
    const size_t upBytes = quant::packedBytes(f.packed, inter, kHidden);
    const size_t downBytes = quant::packedBytes(f.packed, kHidden, inter);
    const size_t expertStride = 2 * aligned(upBytes) + aligned(downBytes);
    // Copies of one expert side by side, far larger than the caches, taken in turn: the weights
    // come from DRAM as in a prefill that touches every expert of every layer.
    const size_t copies = blob.size / expertStride;
    if (copies < 2)
      continue;
    if (o.progress)
      o.progress(std::string("cpu:numa0: ") + f.name + " routed-expert path by rows per expert (" +
                 std::to_string(experts) + " experts of " + std::to_string(inter) +
                 " x 2048, top-" + std::to_string(topK) + ")");
    quant::packWeights(f.packed, gate.data(), inter, kHidden, blob.data);
    quant::packWeights(f.packed, up.data(), inter, kHidden, blob.data + aligned(upBytes));
    quant::packWeights(f.packed, down.data(), kHidden, inter, blob.data + 2 * aligned(upBytes));
    for (size_t c = 1; c < copies; ++c)
      std::memcpy(blob.data + c * expertStride, blob.data, expertStride);
    auto view = [&](size_t copy, size_t offset, int64_t rows, int64_t cols) {
      cpu::MatrixView v;
      v.data = blob.data + copy * expertStride + offset;
      v.dtype = DType::F32;
      v.rows = rows;
      v.cols = cols;
      v.packed = int32_t(f.packed);
      return v;
    };
    size_t next = 0; // first copy of the next timed layer
    // The median rate of the path at `rows` rows per expert.
    auto measureRows = [&](int64_t rows) {
      // rows == 1 is decode: one token through its top-k experts (the layer's other experts
      // idle), a call taking ~0.1-1 ms, so many calls; larger rows spread over every expert.
      const bool decode = rows == 1;
      const int64_t T = decode ? 1 : (rows * experts + topK - 1) / topK;
      std::vector<int32_t> chosen(static_cast<size_t>(T * topK));
      std::vector<float> weight(chosen.size(), 1.0f / topK);
      std::mt19937 rng(static_cast<uint32_t>(rows));
      std::vector<int32_t> order(static_cast<size_t>(experts));
      for (int64_t t = 0; t < T; ++t) {
        std::iota(order.begin(), order.end(), 0);
        for (int j = 0; j < topK; ++j) { // partial Fisher-Yates: topK distinct experts
          std::swap(order[size_t(j)], order[size_t(j) + rng() % size_t(experts - j)]);
          chosen[size_t(t * topK + j)] = decode ? j : order[size_t(j)];
        }
      }
      const std::vector<float> x = randomMatrix(T * kHidden, 24);
      std::vector<float> y(static_cast<size_t>(T * kHidden));
      const double flops = 2.0 * 3.0 * double(kHidden) * double(inter) * double(T * topK);
      std::vector<double> rates;
      // At least `calls` timed calls and, outside --quick, at least 0.25 s of them: a point is
      // the median call, and three calls of ~1 ms (8 rows on 16 Xeon threads) left two probes of
      // one quiet machine 2.5x apart (docs/cost-model.md, eighth device run).
      const int calls = decode ? (o.quick ? 20 : 60) : o.quick ? 2 : 5;
      const double minSeconds = o.quick ? 0.0 : 0.25, start = bench::nowSeconds();
      for (int c = 0; c <= calls || bench::nowSeconds() - start < minSeconds; ++c) { // 1 warm-up
        const size_t base = next;
        next = (next + (decode ? size_t(topK) : size_t(experts))) % copies;
        auto expert = [&](int e) {
          const size_t copy = (base + size_t(e)) % copies;
          return cpuops::ExpertMatrices{view(copy, 0, inter, kHidden),
                                        view(copy, aligned(upBytes), inter, kHidden),
                                        view(copy, 2 * aligned(upBytes), kHidden, inter)};
        };
        std::fill(y.begin(), y.end(), 0.0f);
        const double t0 = bench::nowSeconds();
        cpuops::routedExpertsOver(pool, expert, experts, chosen.data(), weight.data(), T, topK,
                                  x.data(), kHidden, y.data());
        const double secs = bench::nowSeconds() - t0;
        if (c > 0)
          rates.push_back(flops / secs / 1e9);
      }
      std::sort(rates.begin(), rates.end());
      return rates[rates.size() / 2];
    };
    const std::vector<int64_t>& curveRows = expertCurveRows(o.quick);
    std::vector<double> gflops;
    for (int64_t rows : curveRows)
      gflops.push_back(measureRows(rows));
    // A point well under both neighbours is measured once more: more rows per expert never make
    // the path slower by much, and a busy moment of a shared VM left one point of the dev VM's
    // curve at 542 GFLOP/s between 836 and 850 (run I, docs/cost-model.md), which the model then
    // used for every prompt near it. The second reading stands, low or not.
    for (size_t i = 1; i + 1 < gflops.size(); ++i)
      if (curveRows[i - 1] > 1 && gflops[i] < 0.8 * std::min(gflops[i - 1], gflops[i + 1]))
        gflops[i] = measureRows(curveRows[i]);
    for (size_t i = 0; i < curveRows.size(); ++i) {
      RowsResult r;
      r.format = f.name;
      r.rows = curveRows[i];
      r.gflops = gflops[i];
      r.inter = inter;
      out->expertRates.push_back(r);
    }
  }
}

} // namespace

} // namespace kt::probe
