// The CPU half of kt-rt probe: topology (hwloc), bandwidth per NUMA node, the quantized matmul
// kernels per (ISA, format), and the runtime thread pool's fork/join cost.
//
// Why these numbers: the cost model (compiler/cost/CostModel.h) predicts an op as
// max(flops / gemm_gflops, bytes / (bandwidth * gemv_efficiency)) + op_overhead. So the probe
// measures exactly those: a read-only sweep per node (bandwidth), a 1-token GEMV over packed
// weights far larger than the caches (efficiency = its rate / the read bandwidth), a
// prefill-sized GEMM (GFLOP/s), and an empty parallelFor of the pool the runtime runs ops on.
#include "runtime/probe/Probe.h"
#include "runtime/probe/ProbeData.h"

#include "bench/kernels/BenchUtil.h"
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Linear.h"
#include "kernels/cpu/attention/AttentionSplit.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/ThreadPool.h"
#include "runtime/support/Topology.h"

#include <hwloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>

namespace kt::probe {

namespace quant = kt::cpu::quant;

namespace {

struct Sizes {
  size_t bandwidthArrayBytes; // per array (3 arrays)
  int bandwidthReps;
  size_t gemvBytes; // packed bytes swept per GEMV measurement
  // Expert copies the expert path cycles through (ExpertProbe.cpp): a prefill reads each layer's
  // experts from DRAM once, so the copies must not fit the L3 together, which the GEMV's cap can
  // on a VM that reports its host's L3.
  size_t expertBytes;
  int gemvReps;
  int64_t gemmN, gemmK, gemmT;
  int gemmReps;
};

Sizes sizesFor(bool quick, double l3Bytes) {
  // Data should dwarf the last-level cache, or the "DRAM" rate is a cache rate; but VMs report
  // the whole host's L3 (hundreds of MiB), so the arrays are capped to keep the probe short.
  // _measured.l3_vs_arrays in the profile says when the cap bit.
  const double mib = 1 << 20;
  auto clamp = [](double x, double lo, double hi) { return std::min(hi, std::max(lo, x)); };
  size_t bw = size_t(clamp(4 * l3Bytes, (quick ? 128 : 256) * mib, (quick ? 128 : 256) * mib));
  size_t gemv = size_t(clamp(4 * l3Bytes, (quick ? 64 : 128) * mib, (quick ? 64 : 256) * mib));
  size_t experts = size_t(clamp(4 * l3Bytes, double(gemv), (quick ? 512 : 2048) * mib));
  if (quick)
    return {bw, 1, gemv, experts, 1, 1024, 1024, 128, 6};
  return {bw, 1, gemv, experts, 2, 1024, 2048, 256, 8};
}

// Binds the calling thread (and threads it creates later, which inherit both) to a NUMA node's
// cores and memory. Returns false when hwloc cannot (single-node machines do not need it).
class NodeBinding {
public:
  NodeBinding() { ok_ = hwloc_topology_init(&topo_) == 0 && hwloc_topology_load(topo_) == 0; }
  ~NodeBinding() {
    if (ok_)
      hwloc_topology_destroy(topo_);
  }
  int nodes() const { return ok_ ? hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_NUMANODE) : 0; }
  hwloc_obj_t node(int i) const {
    return hwloc_get_obj_by_type(topo_, HWLOC_OBJ_NUMANODE, unsigned(i));
  }
  bool bind(int i) {
    if (!ok_ || nodes() < 2)
      return false;
    hwloc_obj_t n = node(i);
    bool cpu = hwloc_set_cpubind(topo_, n->cpuset, HWLOC_CPUBIND_THREAD) == 0;
    bool mem = hwloc_set_membind(topo_, n->nodeset, HWLOC_MEMBIND_BIND,
                                 HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) == 0;
    return cpu && mem;
  }
  void unbind() {
    if (!ok_ || nodes() < 2)
      return;
    hwloc_obj_t root = hwloc_get_root_obj(topo_);
    hwloc_set_cpubind(topo_, root->cpuset, HWLOC_CPUBIND_THREAD);
    hwloc_set_membind(topo_, root->nodeset, HWLOC_MEMBIND_DEFAULT,
                      HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET);
  }
  double l1dPerCore() const {
    if (!ok_)
      return 0;
    hwloc_obj_t l1 = hwloc_get_obj_by_type(topo_, HWLOC_OBJ_L1CACHE, 0);
    return l1 && l1->attr ? double(l1->attr->cache.size) : 0;
  }
  // All L3 instances together (EPYC has one per core complex).
  double l3Total() const {
    if (!ok_)
      return 0;
    double total = 0;
    int n = hwloc_get_nbobjs_by_type(topo_, HWLOC_OBJ_L3CACHE);
    for (int i = 0; i < n; ++i)
      if (hwloc_obj_t l3 = hwloc_get_obj_by_type(topo_, HWLOC_OBJ_L3CACHE, unsigned(i)))
        total += l3->attr ? double(l3->attr->cache.size) : 0;
    return total;
  }

private:
  hwloc_topology_t topo_{};
  bool ok_ = false;
};

std::vector<std::string> profileIsas(const Topology& t, quant::Isa runtimeIsa) {
  // What the profile lists: the CPU's extensions, limited to what the runtime will use (KT_ISA).
  std::vector<std::string> isa;
  int best = int(runtimeIsa);
  if (best == int(quant::Isa::Scalar))
    isa.push_back("scalar");
  if (t.avx2 && best >= int(quant::Isa::Avx2))
    isa.push_back("avx2");
  if (t.avx512f && best >= int(quant::Isa::Avx512)) {
    isa.push_back("avx512");
    if (t.avx512bf16)
      isa.push_back("avx512_bf16");
    if (t.avx512vnni)
      isa.push_back("avx512_vnni");
  }
  if (best >= int(quant::Isa::Amx))
    isa.push_back("amx");
  return isa;
}

// The profile's format key of a kernel format (int4 is measured as int4:g32, --cpu-quant int4).
const char* profileFormat(quant::WeightFormat f) {
  switch (f) {
  case quant::WeightFormat::F32:
    return "f32";
  case quant::WeightFormat::BF16:
    return "bf16";
  case quant::WeightFormat::Int8:
    return "int8";
  default:
    return "int4";
  }
}

// Rows [n0, n1) of thread `tid` out of `nt`, split on kRowBlock panels.
void rowsOf(int64_t n, int tid, int nt, int64_t* n0, int64_t* n1) {
  int64_t panels = (n + quant::kRowBlock - 1) / quant::kRowBlock;
  *n0 = std::min(n, panels * tid / nt * quant::kRowBlock);
  *n1 = std::min(n, panels * (tid + 1) / nt * quant::kRowBlock);
}

// Sustained rates are medians: on a shared machine the best run is a lucky moment the runtime
// will not see again, and on a quiet one the two agree.
double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Packed-weight bytes per second of a 1-token GEMV: one packed matrix copied side by side until
// the copies fill `blob` (far larger than the caches), then swept copy after copy so every byte
// comes from DRAM. Each copy is timed on its own, like the 16 MiB blocks of the bandwidth probe.
// The reference is a plain read sweep (bench::readSum) of the very same copies, alternating with
// the GEMV sweeps: on a shared machine both must see the same neighbours for their ratio
// (gemv_efficiency) to mean anything. `blob` is allocated once by the caller: page faults are
// slow on a VM.
void measureGemv(bench::Team& team, quant::Isa isa, quant::WeightFormat f, bench::Buffer& blob,
                 int reps, KernelResult* out) {
  const int64_t n = 1024, k = 2048;
  std::vector<float> w = randomMatrix(n * k, 1);
  const size_t one = quant::packedBytes(f, n, k);
  const size_t stride = (one + 4095) / 4096 * 4096;
  const size_t copies = std::max<size_t>(2, blob.size / stride);
  quant::packWeights(f, w.data(), n, k, blob.data);
  for (size_t c = 1; c < copies; ++c)
    std::memcpy(blob.data + c * stride, blob.data, one);
  std::vector<float> x = randomMatrix(k, 2);
  bench::Buffer act(quant::activationBytes(isa, f, k, 1));
  quant::prepareActivations(isa, f, x.data(), k, 1, act.data);
  std::vector<float> y(static_cast<size_t>(n));
  std::vector<double> sink(static_cast<size_t>(team.size()) * 8);
  const int nt = team.size();
  std::vector<double> gemv, read;
  for (int r = 0; r < reps; ++r) {
    for (size_t c = 0; c < copies; ++c) {
      const uint8_t* p = blob.data + c * stride;
      double t0 = bench::nowSeconds();
      team.run([&](int tid) {
        size_t lo = one * size_t(tid) / size_t(nt) / 64 * 64;
        size_t hi = tid + 1 == nt ? one / 8 * 8 : one * size_t(tid + 1) / size_t(nt) / 64 * 64;
        sink[size_t(tid) * 8] += bench::readSum(p + lo, hi - lo);
      });
      read.push_back(double(one) / (bench::nowSeconds() - t0) / 1e9);
    }
    for (size_t c = 0; c < copies; ++c) {
      const uint8_t* p = blob.data + c * stride;
      double t0 = bench::nowSeconds();
      team.run([&](int tid) {
        int64_t n0, n1;
        rowsOf(n, tid, nt, &n0, &n1);
        if (n0 < n1)
          quant::matmulPrepared(isa, f, p, n, k, act.data, 1, y.data(), n0, n1);
      });
      gemv.push_back(double(one) / (bench::nowSeconds() - t0) / 1e9);
    }
  }
  std::sort(gemv.begin(), gemv.end());
  std::sort(read.begin(), read.end());
  out->gemvGBs = gemv.back();
  out->gemvMedianGBs = gemv[gemv.size() / 2];
  out->readMedianGBs = read[read.size() / 2];
  volatile double keep = sink[0];
  (void)keep;
}

// GFLOP/s of a prefill-sized GEMM (activation preparation included, as in a runtime linear op).
double measureGemm(bench::Team& team, quant::Isa isa, quant::WeightFormat f, int64_t n, int64_t k,
                   int64_t t, int reps) {
  std::vector<float> w = randomMatrix(n * k, 3);
  bench::Buffer packed(quant::packedBytes(f, n, k));
  quant::packWeights(f, w.data(), n, k, packed.data);
  std::vector<float> x = randomMatrix(t * k, 4);
  bench::Buffer act(quant::activationBytes(isa, f, k, t));
  std::vector<float> y(static_cast<size_t>(t * n));
  const int nt = team.size();
  std::vector<double> rates;
  for (int r = 0; r < reps + 1; ++r) { // one warm-up
    double t0 = bench::nowSeconds();
    quant::prepareActivations(isa, f, x.data(), k, t, act.data);
    team.run([&](int tid) {
      int64_t n0, n1;
      rowsOf(n, tid, nt, &n0, &n1);
      if (n0 < n1)
        quant::matmulPrepared(isa, f, packed.data, n, k, act.data, t, y.data(), n0, n1);
    });
    double secs = bench::nowSeconds() - t0;
    if (r > 0)
      rates.push_back(2.0 * double(n) * double(k) * double(t) / secs / 1e9);
  }
  return median(rates);
}

// What one parallel region of the runtime's pool costs beyond its work: every thread gets a
// chunk of `workUs` of spinning; the median of (elapsed - workUs) is the fork/join overhead a
// kt op pays per region (waking the workers, the stragglers' wake-up latency, the join).
// wakeGapUs > 0: before each region the caller sleeps that long, so the workers are asleep
// (past their spin) when the region starts: the wake-up is in the time.
double measureForkJoinUs(int threads, int calls, double wakeGapUs = 0) {
  ThreadPool pool(threads);
  const double workUs = 20;
  auto spin = [&] {
    auto t0 = std::chrono::steady_clock::now();
    while (
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() <
        workUs) {
    }
  };
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    if (wakeGapUs > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(wakeGapUs));
    auto t0 = std::chrono::steady_clock::now();
    pool.parallelFor(threads, 1, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j)
        spin();
    });
    double elapsed =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    us.push_back(std::max(0.0, elapsed - workUs));
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// GFLOP/s of the runtime's causal attention kernels over a prefill of `len` tokens (no cache
// before them), counting FLOPs as the cost model does: per (query, visible position) pair
// 4*heads*headDim for GQA, 2*heads*(latent+rope) + 2*heads*latent for MLA (absorbed form).
// These are f32 vector kernels, not GEMMs: far from the quantized GEMM peak.
void measureAttention(int threads, int64_t len, int reps, double* gqa, double* mla) {
  ThreadPool pool(threads);
  const double pairs = double(len) * double(len + 1) / 2;
  {
    const int heads = 16, kvHeads = 4, dim = 128;
    std::vector<float> q = randomMatrix(len * heads * dim, 5),
                       k = randomMatrix(len * kvHeads * dim, 6),
                       v = randomMatrix(len * kvHeads * dim, 7),
                       out(static_cast<size_t>(len * heads * dim));
    std::vector<double> rates;
    for (int r = 0; r <= reps; ++r) {
      double t0 = bench::nowSeconds();
      cpu::gqaAttention(pool, q.data(), len, heads, kvHeads, dim, k.data(), v.data(), 0,
                        1.0 / std::sqrt(double(dim)), out.data());
      double secs = bench::nowSeconds() - t0;
      if (r > 0)
        rates.push_back(pairs * 4.0 * heads * dim / secs / 1e9);
    }
    *gqa = median(rates);
  }
  {
    const int heads = 16, latent = 512, rope = 64;
    std::vector<float> qa = randomMatrix(len * heads * latent, 8),
                       qp = randomMatrix(len * heads * rope, 9),
                       lat = randomMatrix(len * latent, 10), kp = randomMatrix(len * rope, 11),
                       out(static_cast<size_t>(len * heads * latent));
    std::vector<double> rates;
    for (int r = 0; r <= reps; ++r) {
      double t0 = bench::nowSeconds();
      cpu::mlaAttention(pool, qa.data(), qp.data(), len, heads, latent, rope, lat.data(), kp.data(),
                        0, 1.0 / std::sqrt(double(latent + rope)), out.data());
      double secs = bench::nowSeconds() - t0;
      if (r > 0)
        rates.push_back(pairs * (2.0 * heads * (latent + rope) + 2.0 * heads * latent) / secs /
                        1e9);
    }
    *mla = median(rates);
  }
}

// GFLOP/s of one decode token's attention as the runtime's step runs it over `ctx` cached
// positions (per-pair FLOPs as the cost model counts them): MLA through cpu::mlaDecodeSplit (the
// keys split over the threads; mlaAttention where the split does not apply), GQA through
// gqaAttention (heads over the threads) at Qwen3-30B-A3B's 32 heads over 4 KV heads of 128. A
// decode reads each layer's cache once per token while the weights stream through the caches in
// between, so the calls cycle through cache copies filling `bytes`. Median of at least 20 calls
// and 0.1 s. The device Xeon's DeepSeek-V2-Lite decode spent ~170 us a layer here where the
// 256-token prefill rate (attention_gflops) priced ~30 (tenth device run, from session 9's
// profile).
void measureDecodeAttention(int threads, int64_t ctx, size_t bytes, double* gqa, double* mla) {
  ThreadPool pool(threads);
  auto timeCalls = [&](size_t copies, const std::function<void(size_t)>& call) {
    std::vector<double> secs;
    const double start = bench::nowSeconds();
    for (size_t c = 0; c <= 20 || bench::nowSeconds() - start < 0.1; ++c) { // 1 warm-up
      const double t0 = bench::nowSeconds();
      call(c % copies);
      if (c > 0)
        secs.push_back(bench::nowSeconds() - t0);
    }
    return median(secs);
  };
  {
    const int heads = 32, kvHeads = 4, dim = 128;
    const size_t row = size_t(kvHeads) * dim, copy = 2 * size_t(ctx) * row; // k, then v
    const size_t copies = std::max<size_t>(2, bytes / 4 / copy);
    std::vector<float> cache(copies * copy, 0.01f), q(size_t(heads) * dim, 0.02f),
        out(size_t(heads) * dim);
    const double secs = timeCalls(copies, [&](size_t c) {
      const float* k = cache.data() + c * copy;
      cpu::gqaAttention(pool, q.data(), 1, heads, kvHeads, dim, k, k + size_t(ctx) * row, ctx - 1,
                        1.0 / std::sqrt(double(dim)), out.data());
    });
    *gqa = double(ctx) * 4.0 * heads * dim / secs / 1e9;
  }
  {
    const int heads = 16, latent = 512, rope = 64;
    const size_t copy = size_t(ctx) * (latent + rope); // latent rows, then rope keys
    const size_t copies = std::max<size_t>(2, bytes / 4 / copy);
    std::vector<float> cache(copies * copy, 0.01f), qa(size_t(heads) * latent, 0.02f),
        qp(size_t(heads) * rope, 0.02f), out(size_t(heads) * latent);
    const double scale = 1.0 / std::sqrt(double(latent + rope));
    const double secs = timeCalls(copies, [&](size_t c) {
      const float* lat = cache.data() + c * copy;
      const float* kp = lat + size_t(ctx) * latent;
      if (!cpu::mlaDecodeSplit(pool, qa.data(), qp.data(), heads, latent, rope, lat, kp, ctx, scale,
                               out.data()))
        cpu::mlaAttention(pool, qa.data(), qp.data(), 1, heads, latent, rope, lat, kp, ctx - 1,
                          scale, out.data());
    });
    *mla = double(ctx) * (2.0 * heads * (latent + rope) + 2.0 * heads * latent) / secs / 1e9;
  }
}

// GFLOP/s of the runtime's linear() over an unpacked (checkpoint-dtype) matrix: what plans
// without --cpu-quant, and the matrices no packed kernel reads (MLA's kv_b_proj, routers), get.
double measurePlain(int threads, DType dtype, int64_t n, int64_t k, int64_t t, int reps) {
  ThreadPool pool(threads);
  std::vector<float> w = randomMatrix(n * k, 12), x = randomMatrix(t * k, 13);
  std::vector<uint8_t> bytes(static_cast<size_t>(n * k) * dtypeSize(dtype));
  if (dtype == DType::F32) {
    std::memcpy(bytes.data(), w.data(), bytes.size());
  } else { // bf16: the high half of each f32
    for (size_t i = 0; i < w.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &w[i], 4);
      uint16_t h = uint16_t(u >> 16);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  cpu::MatrixView view;
  view.data = bytes.data();
  view.dtype = dtype;
  view.rows = n;
  view.cols = k;
  std::vector<float> y(static_cast<size_t>(t * n));
  std::vector<double> rates;
  for (int r = 0; r <= reps; ++r) {
    double t0 = bench::nowSeconds();
    cpu::linear(pool, x.data(), t, view, nullptr, y.data());
    double secs = bench::nowSeconds() - t0;
    if (r > 0)
      rates.push_back(2.0 * double(n) * double(k) * double(t) / secs / 1e9);
  }
  return median(rates);
}

void say(const ProbeOptions& o, const std::string& line);

// The row counts of the rows curves: a MoE expert of a P-token prefill gets P*k/E rows
// (DeepSeek-V2-Lite 48 at P = 512, Qwen3-30B-A3B 32), a dense matrix all P.
const std::vector<int64_t>& curveRows(bool quick) {
  static const std::vector<int64_t> full = {8, 16, 32, 64, 128, 512}, fast = {8, 32, 128, 512};
  return quick ? fast : full;
}

// GFLOP/s of the calls the runtime's MoE op makes for an expert (cpu::prepareInput, then
// cpu::linearRows over row blocks of at least 64 rows spread over the pool) with `rows`
// activation rows, `perCall` expert-sized matrices per timed call (the first `copies` views of
// `views`, laid side by side in a blob far larger than the caches and taken in turn, so the
// weights come from DRAM as in a prefill that touches every expert). Median of `calls` calls
// after one warm-up.
double measureRows(ThreadPool& pool, const std::vector<cpu::MatrixView>& views, int64_t rows,
                   int perCall, int calls) {
  const int64_t n = views[0].rows, k = views[0].cols;
  std::vector<float> x = randomMatrix(rows * k, 14);
  std::vector<std::vector<float>> y(static_cast<size_t>(perCall),
                                    std::vector<float>(static_cast<size_t>(rows * n)));
  std::vector<cpu::PreparedInput> in(static_cast<size_t>(perCall));
  // About four tasks per thread over the call's matrices, blocks of 16-row panels (as the MoE op).
  const int64_t perMatrix = std::max<int64_t>(
      1, std::min<int64_t>(n / 64, (int64_t(pool.size()) * 4 + perCall - 1) / perCall));
  const int64_t block = ((n + perMatrix - 1) / perMatrix + 15) / 16 * 16;
  const int64_t blocks = (n + block - 1) / block;
  size_t next = 0;
  std::vector<double> rates;
  for (int c = 0; c <= calls; ++c) {
    std::vector<const cpu::MatrixView*> w;
    for (int j = 0; j < perCall; ++j)
      w.push_back(&views[next++ % views.size()]);
    double t0 = bench::nowSeconds();
    pool.parallelFor(perCall, 1, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j)
        cpu::prepareInput(*w[size_t(j)], x.data(), rows, &in[size_t(j)]);
    });
    pool.parallelFor(perCall * blocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t j = t / blocks, r0 = (t % blocks) * block;
        cpu::linearRows(*w[size_t(j)], in[size_t(j)], y[size_t(j)].data(), r0,
                        std::min(n, r0 + block));
      }
    });
    double secs = bench::nowSeconds() - t0;
    if (c > 0)
      rates.push_back(2.0 * double(n) * double(k) * double(rows) * perCall / secs / 1e9);
  }
  return median(rates);
}

// The rows curves of node 0: every packed format through the runtime's ISA, and the plain loops
// over f32 / bf16 rows, on copies of one 1408 x 2048 matrix (DeepSeek-V2-Lite's expert gate)
// filling `blob`.
void measureRowsCurves(const ProbeOptions& o, int threads, bench::Buffer& blob, CpuResult* out) {
  const int64_t n = 1408, k = 2048;
  const std::vector<float> w = randomMatrix(n * k, 15);
  ThreadPool pool(threads);
  struct Kind {
    int32_t packed; // quant::WeightFormat, or -1 for plain rows of `dtype`
    DType dtype;
    const char* format;
  };
  const std::vector<Kind> kinds = {{int32_t(quant::WeightFormat::F32), DType::F32, "f32"},
                                   {int32_t(quant::WeightFormat::BF16), DType::F32, "bf16"},
                                   {int32_t(quant::WeightFormat::Int8), DType::F32, "int8"},
                                   {int32_t(quant::WeightFormat::Int4G32Sym), DType::F32, "int4"},
                                   {-1, DType::F32, "f32"},
                                   {-1, DType::BF16, "bf16"}};
  for (const Kind& kind : kinds) {
    const bool plain = kind.packed < 0;
    say(o, std::string("cpu:numa0: ") + (plain ? "plain " : "packed ") + kind.format +
               " products by rows per matrix (expert-sized 1408 x 2048)");
    size_t one = plain ? size_t(n * k) * dtypeSize(kind.dtype)
                       : quant::packedBytes(quant::WeightFormat(kind.packed), n, k);
    const size_t stride = (one + 4095) / 4096 * 4096;
    const size_t copies = std::max<size_t>(1, blob.size / stride);
    if (plain) {
      uint8_t* p = blob.data;
      for (size_t i = 0; i < w.size(); ++i) {
        if (kind.dtype == DType::F32) {
          std::memcpy(p + 4 * i, &w[i], 4);
        } else { // bf16: the high half of each f32
          uint32_t u;
          std::memcpy(&u, &w[i], 4);
          uint16_t h = uint16_t(u >> 16);
          std::memcpy(p + 2 * i, &h, 2);
        }
      }
    } else {
      quant::packWeights(quant::WeightFormat(kind.packed), w.data(), n, k, blob.data);
    }
    std::vector<cpu::MatrixView> views(copies);
    for (size_t c = 0; c < copies; ++c) {
      if (c > 0)
        std::memcpy(blob.data + c * stride, blob.data, one);
      views[c].data = blob.data + c * stride;
      views[c].dtype = kind.dtype;
      views[c].rows = n;
      views[c].cols = k;
      views[c].packed = kind.packed;
    }
    // The plain loops are ~10x slower: fewer matrices per call keep the probe short.
    const int perCall = (plain ? 2 : 4) * (o.quick ? 1 : 2);
    for (int64_t rows : curveRows(o.quick)) {
      RowsResult r;
      r.format = kind.format;
      r.plain = plain;
      r.rows = rows;
      r.gflops = measureRows(pool, views, rows, perCall, o.quick ? 2 : 3);
      out->rowsRates.push_back(r);
    }
  }
}

void say(const ProbeOptions& o, const std::string& line) {
  if (o.progress)
    o.progress(line);
}

} // namespace

void probeCpu(const ProbeOptions& o, CpuResult* out) {
  const Topology& t = machineTopology();
  NodeBinding binding;
  const quant::Isa runtimeIsa = quant::detectIsa();
  out->model = t.cpuModel;
  out->cores = t.cores;
  out->threads = t.threads;
  out->isa = profileIsas(t, runtimeIsa);
  out->l1dPerCore = binding.l1dPerCore();
  out->l2PerCore = double(t.l2Bytes);
  out->l3PerNode = binding.l3Total() / double(std::max<size_t>(1, t.numa.size()));
  const Sizes sz = sizesFor(o.quick, std::max(out->l3PerNode, double(t.l3Bytes)));

  std::vector<uint64_t> hwlocMemory;
  for (const NumaNode& tn : t.numa)
    hwlocMemory.push_back(tn.memoryBytes);
  const std::vector<uint64_t> nodeMemory =
      decideNodeMemory(hwlocMemory, machineMemoryBytes(), &out->memoryNote);
  if (!out->memoryNote.empty())
    say(o, "memory: " + out->memoryNote);

  for (size_t i = 0; i < t.numa.size(); ++i) {
    const NumaNode& tn = t.numa[i];
    NodeResult n;
    n.index = int(i);
    n.osIndex = tn.index;
    n.cores = tn.cores > 0 ? tn.cores : std::max(1, t.cores);
    n.threadsUsed = o.threadsPerNode > 0 ? std::min(o.threadsPerNode, n.cores) : n.cores;
    n.memoryBytes = nodeMemory[i];
    binding.bind(int(i));
    out->arrayBytes = double(sz.bandwidthArrayBytes);
    say(o, "cpu:numa" + std::to_string(i) + ": memory bandwidth, " + std::to_string(n.threadsUsed) +
               " threads, 3 x " + std::to_string(sz.bandwidthArrayBytes >> 20) + " MiB arrays");
    {
      bench::Team team(n.threadsUsed, /*pin=*/false);
      bench::Bandwidth bw = bench::measureBandwidth(team, sz.bandwidthArrayBytes, sz.bandwidthReps);
      n.readGBs = bw.readGBs;
      n.triadGBs = bw.triadGBs;
      n.readMedianGBs = bw.readMedianGBs;
    }
    out->nodes.push_back(n);
    if (i != 0) {
      binding.unbind();
      continue;
    }
    // Kernels and the pool are measured on node 0 only: every node has the same cores.
    bench::Team team(n.threadsUsed, /*pin=*/false);
    bench::Buffer blob(sz.gemvBytes);
    for (quant::Isa isa : quant::kAllIsas) {
      bool measure =
          isa == runtimeIsa || (int(isa) >= int(quant::Isa::Avx2) && int(isa) <= int(runtimeIsa));
      if (!measure || !quant::isaSupported(isa))
        continue;
      for (quant::WeightFormat f : {quant::WeightFormat::F32, quant::WeightFormat::BF16,
                                    quant::WeightFormat::Int8, quant::WeightFormat::Int4G32Sym}) {
        // AMX only changes bf16/int8 GEMMs; its GEMV and other formats are the AVX-512 code.
        bool amx = isa == quant::Isa::Amx;
        if (amx && f != quant::WeightFormat::BF16 && f != quant::WeightFormat::Int8)
          continue;
        KernelResult k;
        k.isa = quant::isaName(isa);
        k.format = profileFormat(f);
        say(o, std::string("cpu:numa0: ") + k.isa + " " + quant::formatName(f) + " GEMV and GEMM");
        if (!amx)
          measureGemv(team, isa, f, blob, sz.gemvReps, &k);
        k.gemmGflops = measureGemm(team, isa, f, sz.gemmN, sz.gemmK, sz.gemmT, sz.gemmReps);
        out->kernels.push_back(k);
      }
    }
    measureRowsCurves(o, n.threadsUsed, blob, out);
    if (sz.expertBytes > blob.size) {
      bench::Buffer expertBlob(sz.expertBytes);
      measureExpertPath(o, n.threadsUsed, expertBlob, out);
    } else {
      measureExpertPath(o, n.threadsUsed, blob, out);
    }
    binding.unbind();
  }
  const int threads0 = out->nodes.empty() ? 1 : out->nodes[0].threadsUsed;
  say(o, "cpu:numa0: attention kernels (GQA, MLA)");
  measureAttention(threads0, o.quick ? 128 : 256, o.quick ? 3 : 5, &out->gqaAttentionGflops,
                   &out->mlaAttentionGflops);
  // By prompt length, for prefills (the model reads it in log2 between points): Qwen3-30B-A3B's
  // 512-token prefill attention ran at ~290 GFLOP/s on the device Xeon where the 256-token rate
  // read ~380 (ninth device run).
  say(o, "cpu:numa0: prefill attention by prompt length");
  for (int64_t len :
       o.quick ? std::vector<int64_t>{128, 512} : std::vector<int64_t>{128, 512, 2048})
    measureAttention(threads0, len, len >= 2048 ? 2 : 3, &out->gqaPrefillGflops[len],
                     &out->mlaPrefillGflops[len]);
  // One decode token by cached positions, as the runtime's step (split over the keys for MLA).
  say(o, "cpu:numa0: decode attention by cached positions");
  const size_t decodeBytes = size_t(
      std::clamp(4 * out->l3PerNode, 64.0 * (1 << 20), (o.quick ? 256.0 : 1024.0) * (1 << 20)));
  for (int64_t ctx :
       o.quick ? std::vector<int64_t>{512, 2048} : std::vector<int64_t>{128, 512, 2048, 8192})
    measureDecodeAttention(threads0, ctx, decodeBytes, &out->gqaDecodeGflops[ctx],
                           &out->mlaDecodeGflops[ctx]);
  say(o, "cpu:numa0: unpacked f32/bf16 linear");
  out->plainF32Gflops = measurePlain(threads0, DType::F32, 512, 1024, 64, o.quick ? 3 : 5);
  out->plainBf16Gflops = measurePlain(threads0, DType::BF16, 512, 1024, 64, o.quick ? 3 : 5);
  // 1 token over a matrix of 64 / 128 MiB (bf16) and twice that in f32, beyond a real L3: weight
  // bytes per second = GFLOP/s x element bytes / 2 (one multiply-add per element).
  say(o, "cpu:numa0: unpacked f32/bf16 GEMV (1 token)");
  const int64_t gemvRows = o.quick ? 4096 : 8192, gemvCols = 8192;
  out->plainBf16GemvGBs =
      measurePlain(threads0, DType::BF16, gemvRows, gemvCols, 1, o.quick ? 3 : 5) * 2 / 2;
  out->plainF32GemvGBs =
      measurePlain(threads0, DType::F32, gemvRows, gemvCols, 1, o.quick ? 3 : 5) * 4 / 2;
  say(o, "thread pool fork/join");
  // The lowest median of three batches: a neighbour that deschedules one worker inflates a
  // batch's median (one device probe read 92 us where the same instance kind reads 4.3-4.5 and
  // its own wake-up after a sleep 44), and every CPU op of a prediction pays this time.
  out->forkJoinUs = measureForkJoinUs(threads0, o.quick ? 200 : 1000);
  for (int batch = 1; batch < 3; ++batch)
    out->forkJoinUs = std::min(out->forkJoinUs, measureForkJoinUs(threads0, o.quick ? 100 : 500));
  // After a 1 ms sleep of the caller (20x the pool's default spin): the workers sleep.
  out->wakeUs = measureForkJoinUs(threads0, o.quick ? 50 : 200, 1000);
}

std::map<std::string, double> gemvEfficiency(const CpuResult& cpu) {
  // The runtime's GEMV is the best measured ISA's (what detectIsa() picks). Efficiency is the
  // ratio of medians: the GEMV's rate over the read rate measured just before it (or node 0's
  // when that is missing). On a shared machine the best single matrix or block is a lucky
  // moment, and two lucky moments need not match.
  std::map<std::string, double> eff;
  double nodeRead = cpu.nodes.empty() ? 0 : cpu.nodes[0].readMedianGBs;
  std::map<std::string, std::pair<int, double>> best; // format -> (isa rank, efficiency)
  for (const KernelResult& k : cpu.kernels) {
    double read = k.readMedianGBs > 0 ? k.readMedianGBs : nodeRead;
    if (k.gemvMedianGBs <= 0 || read <= 0)
      continue;
    quant::Isa isa;
    int rank = quant::parseIsa(k.isa, &isa) ? int(isa) : 0;
    auto it = best.find(k.format);
    if (it == best.end() || rank > it->second.first)
      best[k.format] = {rank, k.gemvMedianGBs / read};
  }
  for (const auto& [format, v] : best)
    eff[format] = std::min(1.0, v.second);
  return eff;
}

} // namespace kt::probe
