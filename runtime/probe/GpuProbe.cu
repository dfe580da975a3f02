// The GPU half of kt-rt probe (compiled only when nvcc exists; GpuProbeNone.cpp otherwise).
// Per GPU: memory, HBM bandwidth (device-to-device copy), GEMV efficiency and GEMM throughput per
// format through cuBLAS, and the pinned host link (bandwidth of large copies, latency of tiny
// ones, the cost of launching an empty kernel), and the two runtime numbers the cost model needs
// for the CUDA backend: the host time per launch of the runtime's own kernel mix issued back to
// back (one routed expert: gather, three cuBLAS linears with their bf16 rounding, SwiGLU,
// scatter-add) and the rate of its attention kernel (kernels/cuda/Attention.cu) with many blocks
// (a prefill) and with one block per head (a decode).
//
// cuBLAS is opened with dlopen rather than linked: kt-rt must start on machines without the CUDA
// toolkit (cudart is linked statically for the same reason); without cuBLAS the GEMM numbers are
// skipped with a note and the rest is still measured.
#include "kernels/cuda/Blas.h"
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/PrefillAttention.h"
#include "runtime/exec/cuda/ActivationMoves.h"
#include "runtime/exec/cuda/MoeGrouped.h"
#include "runtime/probe/GpuDecodeProbe.h"
#include "runtime/probe/Probe.h"
#include "runtime/support/ThreadPool.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

namespace kt::probe {

namespace cudamoe = kt::cudaops;

namespace {

__global__ void emptyKernel() {}

// Operands of the compute-bound measurements hold random values, as real weights and activations
// do: tensor-core products of all-zero operands draw far less power, so the GPU holds higher
// clocks than in a real prefill (until session 10 every operand here was cudaMemset to 0, and the
// all-GPU DeepSeek-V2-Lite prefill's grouped expert kernels ran ~18% under the probe's rate:
// docs/cost-model.md, tenth device run).
enum class Fill { F32, BF16, F16, I8 };

__global__ void fillRandomKernel(void* p, size_t n, Fill kind, float scale, uint32_t seed) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint64_t h = (uint64_t(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed; // splitmix64's finalizer
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    const float v = scale * (float(uint32_t(h >> 40)) * (2.0f / 16777216.0f) - 1.0f); // [-s, s)
    switch (kind) {
    case Fill::F32:
      static_cast<float*>(p)[i] = v;
      break;
    case Fill::BF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v);
      break;
    case Fill::F16:
      static_cast<__half*>(p)[i] = __float2half(v);
      break;
    case Fill::I8:
      static_cast<int8_t*>(p)[i] = int8_t(int32_t(h & 0xff) - 128);
      break;
    }
  }
}

// `count` elements of `kind` at `p`, uniform in [-scale, scale) (int8: every byte value).
void fillRandom(void* p, size_t count, Fill kind, float scale, uint32_t seed) {
  if (!p || count == 0)
    return;
  const unsigned blocks = unsigned(std::min<size_t>(4096, (count + 255) / 256));
  fillRandomKernel<<<blocks, 256>>>(p, count, kind, scale, seed);
  cudaDeviceSynchronize(); // done before any stream's timed work reads it
}

// Keeps the GPU busy for `cycles` clock cycles (one thread), so that kernels queued behind it run
// back to back once it ends, whatever the host does meanwhile.
__global__ void spinKernel(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

// The cuBLAS entry points the probe uses, resolved at run time.
struct Cublas {
  void* lib = nullptr;
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  // Spelled out: C++ builds of cublas_api.h overload cublasGemmEx, so decltype cannot pick one.
  using GemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                      int, int, const void*, const void*, cudaDataType_t, int,
                                      const void*, cudaDataType_t, int, const void*, void*,
                                      cudaDataType_t, int, cublasComputeType_t, cublasGemmAlgo_t);
  GemmExFn gemmEx = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;

  bool open(std::string* why) {
    for (const char* name : {"libcublas.so", "libcublas.so.13", "libcublas.so.12"})
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL)))
        break;
    if (!lib) {
      *why = "cuBLAS not found (libcublas.so): GEMM throughput not measured";
      return false;
    }
    create = reinterpret_cast<decltype(create)>(dlsym(lib, "cublasCreate_v2"));
    destroy = reinterpret_cast<decltype(destroy)>(dlsym(lib, "cublasDestroy_v2"));
    gemmEx = reinterpret_cast<decltype(gemmEx)>(dlsym(lib, "cublasGemmEx"));
    sgemm = reinterpret_cast<decltype(sgemm)>(dlsym(lib, "cublasSgemm_v2"));
    if (!create || !destroy || !gemmEx || !sgemm) {
      *why = "libcublas lacks cublasGemmEx/cublasSgemm_v2: GEMM throughput not measured";
      return false;
    }
    return true;
  }
};

// Seconds of one call of fn (CUDA events around it).
template <typename F> double timeOnce(F fn) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  fn();
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return double(ms) * 1e-3;
}

// Times `fn` with CUDA events: best of `reps` after one warm-up, in seconds.
template <typename F> double timeBest(int reps, F fn) {
  double best = 1e30;
  for (int r = 0; r <= reps; ++r) {
    const double t = timeOnce(fn);
    if (r > 0)
      best = std::min(best, t);
  }
  return best;
}

double medianUs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Host clock: what a caller waits, launch and synchronization included.
template <typename F> double hostMedianUs(int calls, F fn) {
  std::vector<double> us;
  for (int i = 0; i < calls; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return medianUs(us);
}

struct GemmCase {
  const char* format;
  cudaDataType_t ab, c;
  cublasComputeType_t compute;
  size_t elementBytes;
};

// TFLOP/s of an m x n x k GEMM in each format, and GEMV (n = 1) efficiency against `bwGBs`.
void measureBlas(const Cublas& blas, bool quick, double bwGBs, GpuResult* g,
                 std::map<std::string, double>* gemvEff) {
  cublasHandle_t h;
  if (blas.create(&h) != CUBLAS_STATUS_SUCCESS)
    return;
  const int dim = quick ? 4096 : 8192;
  const GemmCase cases[] = {
      {"f32", CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, 4},
      {"bf16", CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F, 2},
      {"f16", CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F, 2},
      {"int8", CUDA_R_8I, CUDA_R_32I, CUBLAS_COMPUTE_32I, 1},
  };
  void *A = nullptr, *B = nullptr, *C = nullptr;
  size_t bytes = size_t(dim) * dim * 4;
  if (cudaMalloc(&A, bytes) != cudaSuccess || cudaMalloc(&B, bytes) != cudaSuccess ||
      cudaMalloc(&C, bytes) != cudaSuccess) {
    cudaFree(A);
    cudaFree(B);
    blas.destroy(h);
    return;
  }
  for (const GemmCase& c : cases) {
    const Fill fill = c.ab == CUDA_R_32F    ? Fill::F32
                      : c.ab == CUDA_R_16BF ? Fill::BF16
                      : c.ab == CUDA_R_16F  ? Fill::F16
                                            : Fill::I8;
    fillRandom(A, bytes / c.elementBytes, fill, 1.0f, 1);
    fillRandom(B, bytes / c.elementBytes, fill, 1.0f, 2);
    float alphaF = 1, betaF = 0;
    int32_t alphaI = 1, betaI = 0;
    bool isInt = c.compute == CUBLAS_COMPUTE_32I;
    const void* alpha = isInt ? static_cast<const void*>(&alphaI) : &alphaF;
    const void* beta = isInt ? static_cast<const void*>(&betaI) : &betaF;
    auto gemm = [&](int m, int n, int k) {
      return blas.gemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, alpha, A, c.ab, k, B, c.ab, k, beta,
                         C, c.c, m, c.compute, CUBLAS_GEMM_DEFAULT);
    };
    if (gemm(dim, dim, dim) != CUBLAS_STATUS_SUCCESS) {
      cudaGetLastError();
      continue; // format not supported on this GPU
    }
    double secs = timeBest(3, [&] { gemm(dim, dim, dim); });
    g->gemmTflops[c.format] = 2.0 * dim * double(dim) * dim / secs / 1e12;
    // GEMV: a [rows, k] weight (A, transposed) times one token, rows*k*elem bytes from HBM.
    int rows = dim, k = int(std::min<size_t>(bytes / c.elementBytes / size_t(rows), 65536));
    k = k / 16 * 16;
    if (gemm(rows, 1, k) != CUBLAS_STATUS_SUCCESS) { // e.g. int8 wants n % 4 == 0 on some GPUs
      cudaGetLastError();
      continue;
    }
    double gs = timeBest(5, [&] { gemm(rows, 1, k); });
    double gbs = double(rows) * k * double(c.elementBytes) / gs / 1e9;
    if (bwGBs > 0)
      (*gemvEff)[c.format] = std::min(1.0, gbs / bwGBs);
  }
  cudaFree(A);
  cudaFree(B);
  cudaFree(C);
  blas.destroy(h);
}

// The runtime's attention kernel: GFLOP/s (per-pair FLOPs as compiler/cost counts them) of a
// prefill of `len` tokens and of one decode token over `ctx` cached positions. MLA: absorbed form,
// 16 heads, latent 512 + rope 64 (DeepSeek-V2-Lite); GQA: 32 heads over 8 KV heads of 128.
//
// Then the decode as the runtime runs it, split over the keys (partials scratch, the KV capacity
// = the context), at several context lengths: the split kernel's rate depends on how many keys
// each block gets, so the cost model interpolates this curve rather than scaling the one-block
// rate.
//
// And the prefill by prompt length (`prefillGflops`): a causal prefill of L tokens gives each
// block L/2 keys on average, so its rate moves with L; the cost model interpolates this curve by
// the step's tokens per sequence.
void measureAttention(bool mla, bool quick, double* fullGflops, double* blockGflops,
                      std::map<int64_t, double>* decodeGflops,
                      std::map<int64_t, double>* prefillGflops) {
  const int heads = mla ? 16 : 32, kvHeads = mla ? 1 : 8;
  const int d1 = mla ? 512 : 128, d2 = mla ? 64 : 0, dv = mla ? 512 : 128;
  const int64_t ctx = quick ? 1024 : 4096;
  const std::vector<int64_t> decodeContexts =
      quick ? std::vector<int64_t>{512, 4096} : std::vector<int64_t>{128, 512, 2048, 8192};
  const std::vector<int64_t> prefillLengths =
      quick ? std::vector<int64_t>{256, 1024} : std::vector<int64_t>{512, 1024, 2048, 4096};
  // len: the longest prefill (the buffers' size); attention_gflops is still the 512-token one.
  const int64_t len = prefillLengths.back(), fullLen = quick ? 256 : 512;
  const int64_t positions = std::max({len, ctx, decodeContexts.back()});
  const int64_t kRow = int64_t(kvHeads) * d1, vRow = int64_t(kvHeads) * dv;
  float *q1 = nullptr, *q2 = nullptr, *k1 = nullptr, *k2 = nullptr, *v = nullptr, *out = nullptr;
  bool ok = cudaMalloc(&q1, size_t(len) * heads * d1 * 4) == cudaSuccess &&
            cudaMalloc(&q2, size_t(len) * heads * std::max(d2, 1) * 4) == cudaSuccess &&
            cudaMalloc(&k1, size_t(positions) * kRow * 4) == cudaSuccess &&
            cudaMalloc(&k2, size_t(positions) * std::max(d2, 1) * 4) == cudaSuccess &&
            cudaMalloc(&v, size_t(positions) * vRow * 4) == cudaSuccess &&
            cudaMalloc(&out, size_t(len) * heads * dv * 4) == cudaSuccess;
  if (ok) {
    fillRandom(q1, size_t(len) * heads * d1, Fill::F32, 1.0f, 3);
    fillRandom(q2, size_t(len) * heads * std::max(d2, 1), Fill::F32, 1.0f, 4);
    fillRandom(k1, size_t(positions) * kRow, Fill::F32, 1.0f, 5);
    fillRandom(k2, size_t(positions) * std::max(d2, 1), Fill::F32, 1.0f, 6);
    fillRandom(v, size_t(positions) * vRow, Fill::F32, 1.0f, 7);
    // len is set per measurement below.
    cuda::AttentionArgs a =
        mla ? cuda::mlaAttentionArgs(q1, q2, d2, k1, k2, out, heads, d1, d2, 0, 0.05f)
            : cuda::gqaAttentionArgs(q1, k1, v, out, heads, kvHeads, d1, 0, 0.05f);
    // compiler/cost's per-pair FLOPs: GQA 4 x heads x head_dim; MLA 2 x heads x (latent + rope)
    // + 2 x heads x latent.
    const double perPair = mla ? 2.0 * heads * (d1 + d2) + 2.0 * heads * dv : 4.0 * heads * d1;
    double secs = 0;
    // Prefills as the runtime runs them (runtime/exec/cuda/LongPrefill): from
    // kPrefillGemmMinTokens tokens on through cuBLAS (PrefillAttention.h), else the kernel.
    std::string err;
    std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
    for (int64_t l : prefillLengths) { // prefill: l tokens, causal, no cache before them
      a.len = l;
      a.pos0 = 0;
      float* scores = nullptr;
      const bool gemm =
          blas && cuda::usePrefillGemm(a) &&
          cudaMalloc(&scores, size_t(cuda::prefillGemmScratchFloats(a)) * 4) == cudaSuccess;
      secs = timeBest(l >= 2048 ? 2 : 3, [&] {
        if (!gemm || !cuda::prefillAttentionGemm(*blas, a, scores, &err))
          cuda::attention(a);
      });
      cudaFree(scores);
      (*prefillGflops)[l] = double(l) * double(l + 1) / 2 * perPair / secs / 1e9;
    }
    *fullGflops = prefillGflops->count(fullLen) ? prefillGflops->at(fullLen) : 0;
    a.len = 1; // decode: one token over ctx positions, `heads` blocks
    a.pos0 = ctx - 1;
    secs = timeBest(quick ? 5 : 20, [&] { cuda::attention(a); });
    *blockGflops = double(ctx) * perPair / secs / 1e9 / heads;
    const int64_t partialFloats = cuda::attentionPartialFloats(heads, 1, dv);
    float* partials = nullptr;
    if (partialFloats > 0 &&
        cudaMalloc(&partials, size_t(partialFloats) * sizeof(float)) == cudaSuccess) {
      a.partials = partials;
      a.partialFloats = partialFloats;
      // Decode as the runtime's attention op runs a step (runtime/exec/cuda/AttentionOps.cpp):
      // the token's rows appended to a paged cache (pages of kProbePageTokens positions through
      // a page table, the pool's capacity as maxKeys), then the split kernel and its merge, with
      // L2 flushed before every call (a decode step streams a token of weights between two
      // visits of a layer's cache); the median call. The contiguous, L2-resident cache timed
      // before read 512-529 GFLOP/s for DeepSeek-V2-Lite's MLA at 512 keys where the runtime's
      // step reached ~310 (docs/cost-model.md, eighth device run).
      constexpr int64_t kProbePageTokens = 16, kPoolPositions = 4096; // the runtime's defaults
      const int64_t firstRow = mla ? d1 : kRow, secondRow = mla ? d2 : vRow;
      const int64_t cap = std::max(kPoolPositions, (decodeContexts.back() / kProbePageTokens + 1) *
                                                       kProbePageTokens);
      const int64_t numPages = cap / kProbePageTokens;
      const int64_t pageFloats = kProbePageTokens * (firstRow + secondRow);
      float* pageData = nullptr;
      uint64_t* table = nullptr;
      void* flush = nullptr;
      const size_t flushBytes = size_t(96) << 20; // > the H100's 50 MB L2
      if (cudaMalloc(&pageData, size_t(numPages * pageFloats) * sizeof(float)) == cudaSuccess &&
          cudaMalloc(&table, size_t(numPages) * sizeof(uint64_t)) == cudaSuccess &&
          cudaMalloc(&flush, flushBytes) == cudaSuccess) {
        fillRandom(pageData, size_t(numPages * pageFloats), Fill::F32, 1.0f, 8);
        std::vector<uint64_t> addresses(static_cast<size_t>(numPages));
        for (int64_t i = 0; i < numPages; ++i)
          addresses[size_t(i)] = reinterpret_cast<uint64_t>(pageData + i * pageFloats);
        cudaMemcpy(table, addresses.data(), addresses.size() * sizeof(uint64_t),
                   cudaMemcpyHostToDevice);
        const cuda::KvPages kv{table, kProbePageTokens};
        const int64_t secondOffset = kProbePageTokens * firstRow;
        cuda::AttentionArgs paged = a;
        cuda::usePages(paged, kv, 0, secondOffset, cap);
        for (int64_t c : decodeContexts) {
          paged.pos0 = c - 1;
          std::vector<double> secsOfCalls;
          for (int r = 0; r <= (quick ? 5 : 20); ++r) {
            cudaMemsetAsync(flush, r & 0xff, flushBytes);
            const double t = timeOnce([&] {
              // q1 stands in for the token's new rows (its values do not matter).
              cuda::appendRows(nullptr, kv, 0, firstRow, cap, q1, firstRow + secondRow, firstRow, 1,
                               nullptr, c - 1);
              cuda::appendRows(nullptr, kv, secondOffset, secondRow, cap, q1 + firstRow,
                               firstRow + secondRow, secondRow, 1, nullptr, c - 1);
              cuda::attention(paged);
            });
            if (r > 0) // the first call warms the kernels up
              secsOfCalls.push_back(t);
          }
          std::sort(secsOfCalls.begin(), secsOfCalls.end());
          (*decodeGflops)[c] = double(c) * perPair / secsOfCalls[secsOfCalls.size() / 2] / 1e9;
        }
      }
      cudaFree(pageData);
      cudaFree(table);
      cudaFree(flush);
      cudaFree(partials);
    }
  }
  cudaFree(q1);
  cudaFree(q2);
  cudaFree(k1);
  cudaFree(k2);
  cudaFree(v);
  cudaFree(out);
  cudaGetLastError();
}

// Device buffers of the grouped MoE measurements, freed together. Zeros: cuBLAS's speed does not
// depend on the values.
struct DeviceBuffers {
  std::vector<void*> all;
  bool ok = true;
  void* get(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      ok = false;
      return nullptr;
    }
    cudaMemset(p, 0, bytes);
    all.push_back(p);
    return p;
  }
  template <class T> T* get(int64_t count) {
    return static_cast<T*>(get(size_t(count) * sizeof(T)));
  }
  ~DeviceBuffers() {
    for (void* p : all)
      cudaFree(p);
    cudaGetLastError();
  }
};

// A MoE layer's stacks and a chunk's scratch for up to `maxTokens` tokens whose slot rows are at
// most `maxSlotRows`, as the runtime's groupedExperts sizes them.
struct GroupedBuffers {
  DeviceBuffers d;
  void *gate = nullptr, *up = nullptr, *down = nullptr; // f32-sized: bf16 uses the first half
  float *x = nullptr, *out = nullptr, *weights = nullptr;
  int32_t *experts = nullptr, *index = nullptr;
  int32_t* hostIndex = nullptr; // page-locked, as the runtime's
  cudamoe::GroupedScratch scratch;
  size_t stackElems = 0; // elements of one of gate, up, down
  GroupedBuffers(int E, int K, int64_t H, int64_t I, int64_t maxTokens, int64_t maxSlotRows,
                 int64_t maxIndexInts) {
    stackElems = size_t(E) * size_t(I * H);
    gate = d.get(stackElems * 4);
    up = d.get(stackElems * 4);
    down = d.get(stackElems * 4);
    x = d.get<float>(maxTokens * H);
    out = d.get<float>(maxTokens * H);
    weights = d.get<float>(maxTokens * K);
    fillRandom(x, size_t(maxTokens * H), Fill::F32, 1.0f, 11);
    fillRandom(weights, size_t(maxTokens * K), Fill::F32, 0.5f, 12);
    experts = d.get<int32_t>(maxTokens * K);
    index = d.get<int32_t>(maxIndexInts);
    scratch = {d.get<float>(maxSlotRows * H), d.get<float>(maxSlotRows * I),
               d.get<float>(maxSlotRows * I), d.get<float>(maxSlotRows * H),
               d.get<float>(maxTokens * K * H)};
    if (cudaMallocHost(&hostIndex, size_t(maxIndexInts) * 4) != cudaSuccess) {
      cudaGetLastError();
      hostIndex = nullptr;
      d.ok = false;
    }
  }
  // The expert stacks as `bf16` or f32 values (the buffers are f32-sized; bf16 uses the first
  // half), at a trained model's weight scale.
  void fillWeights(bool bf16) {
    const Fill f = bf16 ? Fill::BF16 : Fill::F32;
    fillRandom(gate, stackElems, f, 0.05f, 13);
    fillRandom(up, stackElems, f, 0.05f, 14);
    fillRandom(down, stackElems, f, 0.05f, 15);
  }
  ~GroupedBuffers() {
    if (hostIndex)
      cudaFreeHost(hostIndex);
  }
  bool ok() const { return d.ok; }
};

// Seconds of one chunk as the runtime runs it (best of 3 after a warm-up, CUDA events): with
// `upload`, the index (fillChunkIndex's, in page-locked memory) goes up by one async copy inside
// the timed span (else once before it), then runGroupedChunk (the gather, the rounding, three
// products, SwiGLU, the gather back, the combine). The routing choices are already on the GPU
// (b.experts), as in the runtime. 0 and *err when a step fails.
double timeChunk(cuda::Blas& blas, GroupedBuffers& b, const cudamoe::ExpertStacks& w,
                 const cudamoe::ChunkGrouping& g, int64_t H, bool upload, std::string* err) {
  cudamoe::GroupedChunk c = cudamoe::chunkOver(g, b.index);
  c.x = b.x;
  c.H = H;
  c.weights = b.weights;
  c.experts = b.experts;
  c.out = b.out;
  const size_t indexBytes = size_t(g.indexInts()) * 4;
  bool fine = upload || cuda::toDeviceAsync(b.index, b.hostIndex, indexBytes, err);
  const double secs = timeBest(3, [&] {
    fine = fine && (!upload || cuda::toDeviceAsync(b.index, b.hostIndex, indexBytes, err)) &&
           cudamoe::runGroupedChunk(blas, w, c, b.scratch, err);
  });
  if (fine && cudaDeviceSynchronize() != cudaSuccess) {
    *err = std::string("grouped MoE chunk: ") + cudaGetErrorString(cudaGetLastError());
    fine = false;
  }
  return fine ? secs : 0;
}

// The grouped prefill MoE (runtime/exec/cuda/MoeGrouped) as the runtime runs a chunk, over 64
// experts of DeepSeek-V2-Lite's shape (1408 x 2048) in bf16 and f32, top-8 routing arranged so that
// every expert gets exactly `rows` rows (no padding), GFLOP/s of the experts' matrix FLOPs by rows
// per expert (best of 3) -> the profile's grouped_gemm_gflops (the cost model's fallback when the
// profile lacks grouped_moe_gflops, measured below under real routing).
void measureGroupedGemm(bool quick, GpuResult* g) {
  std::string err;
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
  if (!blas)
    return;
  const int E = 64, K = 8;
  const int64_t H = 2048, I = 1408;
  const std::vector<int64_t> rowsList =
      quick ? std::vector<int64_t>{16, 128} : std::vector<int64_t>{8, 32, 128, 512};
  const int64_t maxT = rowsList.back() * E / K, maxPairs = maxT * K;
  GroupedBuffers b(E, K, H, I, maxT, maxPairs, 2 * maxPairs + E);
  for (const int64_t rows : rowsList) {
    if (!b.ok())
      break;
    // Token t takes experts (8t + j) % 64: each expert gets rows = 8T / 64 tokens, in token order.
    const int64_t T = rows * E / K;
    std::vector<int32_t> chosen(static_cast<size_t>(T * K));
    for (int64_t p = 0; p < T * K; ++p)
      chosen[size_t(p)] = int32_t(p % E);
    const cudamoe::ChunkGrouping grouping =
        cudamoe::countChunk(chosen.data(), T, K, E, cudamoe::GroupedLayout::Padded);
    cudamoe::fillChunkIndex(grouping, chosen.data(), 0, nullptr, b.hostIndex);
    cudaMemcpy(b.experts, chosen.data(), chosen.size() * 4, cudaMemcpyHostToDevice);
    for (const bool bf16 : {true, false}) {
      b.fillWeights(bf16);
      const cudamoe::ExpertStacks w{b.gate, b.up, b.down, bf16, I};
      if (const double secs = timeChunk(*blas, b, w, grouping, H, /*upload=*/false, &err); secs > 0)
        g->groupedGemmGflops[bf16 ? "bf16" : "f32"][rows] =
            2.0 * 3.0 * double(T * K) * double(H) * double(I) / secs / 1e9;
    }
  }
}

// Random top-k routing: each token takes K distinct experts drawn uniformly (a partial
// Fisher-Yates shuffle over a fixed-seed std::mt19937, so every run times the same chunks).
std::vector<int32_t> randomRouting(int64_t tokens, int K, int E, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> order(static_cast<size_t>(E)), chosen(static_cast<size_t>(tokens * K));
  for (int e = 0; e < E; ++e)
    order[size_t(e)] = e;
  for (int64_t t = 0; t < tokens; ++t)
    for (int j = 0; j < K; ++j) {
      const size_t pick = size_t(j) + size_t(rng() % uint32_t(E - j));
      std::swap(order[size_t(j)], order[pick]);
      chosen[size_t(t * K + j)] = order[size_t(j)];
    }
  return chosen;
}

// Skewed top-k routing (grouped_moe_skewed_gflops): expert e's popularity is
// exp(kSkewSigma * z_e), z_e ~ N(0, 1) drawn once per `popularitySeed`, and each token draws K
// distinct experts in proportion to it. At sigma 1.5 the busiest quarter of 64 experts takes
// ~63% of the pairs (the busiest ~6x the mean), as the deep layers of the random-weight
// DeepSeek-V2-Lite the device benchmark runs (docs/cost-model.md, eleventh device run).
constexpr double kSkewSigma = 1.5;
std::vector<int32_t> skewedRouting(int64_t tokens, int K, int E, uint32_t popularitySeed,
                                   uint32_t drawSeed) {
  std::mt19937 popularityRng(popularitySeed), rng(drawSeed);
  std::normal_distribution<double> normal;
  std::vector<double> popularity(static_cast<size_t>(E));
  for (double& p : popularity)
    p = std::exp(kSkewSigma * normal(popularityRng));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<int32_t> chosen(static_cast<size_t>(tokens * K));
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> left = popularity; // a chosen expert drops out for this token
    double total = std::accumulate(left.begin(), left.end(), 0.0);
    for (int j = 0; j < K; ++j) {
      double r = unit(rng) * total;
      int pick = -1;
      for (int e = 0; e < E; ++e) {
        if (left[size_t(e)] <= 0)
          continue;
        pick = e; // the last one left if rounding leaves r above 0
        r -= left[size_t(e)];
        if (r <= 0)
          break;
      }
      chosen[size_t(t * K + j)] = pick;
      total -= left[size_t(pick)];
      left[size_t(pick)] = 0;
    }
  }
  return chosen;
}

// Share of a chunk's pairs (its per-expert counts) that the busiest quarter of the experts took:
// compiler/cost's busiestQuarterShare, which the runtime cannot link, for the same measure.
double busiestQuarterShare(std::vector<int32_t> count) {
  const int64_t total = std::accumulate(count.begin(), count.end(), int64_t(0));
  const size_t quarter = std::max<size_t>(1, count.size() / 4);
  std::partial_sort(count.begin(), count.begin() + long(quarter), count.end(),
                    std::greater<int32_t>());
  return total > 0
             ? double(std::accumulate(count.begin(), count.begin() + long(quarter), int64_t(0))) /
                   double(total)
             : 0;
}

// The whole grouped chunk under random routing (grouped_moe_gflops, issue #6): the runtime's
// padding to each chunk's busiest expert, the real routing's uneven counts and cuBLAS's kernels
// at odd row counts are all in the time, which the uniform curve above cannot see. Two layers of
// the real shapes (hidden 2048): DeepSeek-V2-Lite's 64 experts of 1408, top-6
// (grouped_moe_gflops) and Qwen3-30B-A3B's 128 of 768, top-8 (grouped_moe_gflops_i768); chunks of
// 32..1024 tokens, keyed by the MEAN rows per expert T*K/E; GFLOP/s of the useful FLOPs
// 2*3*T*K*H*I (padding shows up as a lower rate). Two layouts (MoeGrouping.h): the runtime's
// default (KT_CUDA_MOE_GEMM) under the curve names, padded (or bucketed) under grouped_moe_alt_*
// (the profile's diagnostics). Then the same chunk under skewedRouting in the default layout
// (grouped_moe_skewed_gflops[_i768]), and both routings' busiest-quarter shares (the mean over
// chunks of 256 tokens or more: grouped_moe_skew), between which the cost model places a layer by
// its expert stats.
//
// The host's grouping (countChunk + fillChunkIndex) is outside the timed span: CUDA events see
// GPU time only, and the grouping is host work done after the routing readback (which the cost
// model prices as the layer's synchronisation) while the GPU waits. It is timed apart with the
// host clock (median of 5, grouped_moe_host_us: the cost model adds it to each grouped chunk) so a
// device run shows whether it matters next to the chunk's GPU time.
void measureGroupedMoe(const ProbeOptions& o, int device, GpuResult* g) {
  std::string err;
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
  if (!blas)
    return;
  cudamoe::GroupedLayout layout = cudamoe::GroupedLayout::Padded;
  if (!cudamoe::groupedLayoutFromEnv(&layout, &err)) {
    if (o.progress)
      o.progress("gpu:" + std::to_string(device) + ": grouped MoE not measured: " + err);
    return;
  }
  // The comparison: the padded layout, or bucketed when the padded one is timed.
  const cudamoe::GroupedLayout other = layout == cudamoe::GroupedLayout::Padded
                                           ? cudamoe::GroupedLayout::Bucketed
                                           : cudamoe::GroupedLayout::Padded;
  g->groupedMoeLayout = cudamoe::groupedLayoutName(layout);
  const int64_t H = 2048;
  struct Shape {
    int E, K;
    int64_t I;
    const char* name;
  };
  const std::vector<int64_t> tokensList =
      o.quick ? std::vector<int64_t>{128, 1024} : std::vector<int64_t>{32, 64, 128, 256, 512, 1024};
  for (const Shape shape : {Shape{64, 6, 1408, "64 experts of 1408 x 2048, top-6"},
                            Shape{128, 8, 768, "128 experts of 768 x 2048, top-8"}}) {
    const bool small = shape.I == 768;
    // Every chunk's routing and both layouts' groupings first, to size the buffers.
    std::vector<std::vector<int32_t>> routing, skewed;
    // grouped[0]: the default layout, [1]: the other one, [2]: the skewed routing, default layout.
    std::vector<cudamoe::ChunkGrouping> grouped[3];
    // The routings' busiest-quarter shares: the mean over the chunks of 256 tokens or more of
    // each chunk's share, as kt-tune measures one prefill window's (512 tokens by default).
    double uniformShares = 0, skewedShares = 0;
    int sharedChunks = 0;
    int64_t maxSlotRows = 0, maxIndex = 0;
    for (const int64_t T : tokensList) {
      routing.push_back(randomRouting(T, shape.K, shape.E, uint32_t(1000 + T + shape.E)));
      skewed.push_back(
          skewedRouting(T, shape.K, shape.E, uint32_t(77 + shape.E), uint32_t(2000 + T + shape.E)));
      for (int l = 0; l < 3; ++l) {
        grouped[l].push_back(cudamoe::countChunk((l == 2 ? skewed : routing).back().data(), T,
                                                 shape.K, shape.E, l == 1 ? other : layout));
        maxSlotRows = std::max(maxSlotRows, grouped[l].back().slotRows());
        maxIndex = std::max(maxIndex, grouped[l].back().indexInts());
      }
      if (T >= 256) {
        uniformShares += busiestQuarterShare(grouped[0].back().count);
        skewedShares += busiestQuarterShare(grouped[2].back().count);
        ++sharedChunks;
      }
    }
    if (sharedChunks > 0) {
      g->groupedMoeShareUniform[small] = uniformShares / sharedChunks;
      g->groupedMoeShareSkewed[small] = skewedShares / sharedChunks;
    }
    GroupedBuffers b(shape.E, shape.K, H, shape.I, tokensList.back(), maxSlotRows, maxIndex);
    if (!b.ok()) {
      if (o.progress)
        o.progress("gpu:" + std::to_string(device) + ": grouped MoE (" + shape.name +
                   ") not measured: out of GPU memory");
      continue;
    }
    for (size_t i = 0; i < tokensList.size(); ++i) {
      const int64_t T = tokensList[i];
      const std::vector<int32_t>& chosen = routing[i];
      if (cudaMemcpy(b.experts, chosen.data(), chosen.size() * 4, cudaMemcpyHostToDevice) !=
          cudaSuccess) {
        cudaGetLastError();
        break;
      }
      const double flops = 2.0 * 3.0 * double(T * shape.K) * double(H) * double(shape.I);
      const int64_t meanRows =
          std::max<int64_t>(1, (T * shape.K + shape.E / 2) / shape.E); // the curve's key
      std::string line = "gpu:" + std::to_string(device) + ": grouped MoE chunk, " + shape.name +
                         ", " + std::to_string(T) + " tokens (" + std::to_string(meanRows) +
                         " rows per expert, busiest " + std::to_string(grouped[0][i].most) + "):";
      // Host grouping time (not in the curve): the median of 5 countChunk + fillChunkIndex.
      std::vector<double> hostUs;
      for (int r = 0; r < 5; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const cudamoe::ChunkGrouping c =
            cudamoe::countChunk(chosen.data(), T, shape.K, shape.E, layout);
        cudamoe::fillChunkIndex(c, chosen.data(), 0, nullptr, b.hostIndex);
        hostUs.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      (small ? g->groupedMoeHostUsI768 : g->groupedMoeHostUs)[meanRows] = medianUs(hostUs);
      // The default layout (the curves), the other one (diagnostics), then the skewed routing's
      // chunk of the same size in the default layout (grouped_moe_skewed_gflops).
      for (int l = 0; l < 3; ++l) {
        const cudamoe::ChunkGrouping& grouping = grouped[l][i];
        const std::vector<int32_t>& routed = l == 2 ? skewed[i] : chosen;
        if (l == 2) {
          if (cudaMemcpy(b.experts, routed.data(), routed.size() * 4, cudaMemcpyHostToDevice) !=
              cudaSuccess) {
            cudaGetLastError();
            break;
          }
          line += " skewed (busiest " + std::to_string(grouping.most) + "):";
        }
        cudamoe::fillChunkIndex(grouping, routed.data(), 0, nullptr, b.hostIndex);
        for (const bool bf16 : {true, false}) {
          b.fillWeights(bf16);
          const cudamoe::ExpertStacks w{b.gate, b.up, b.down, bf16, shape.I};
          const double secs = timeChunk(*blas, b, w, grouping, H, /*upload=*/true, &err);
          const char* format = bf16 ? "bf16" : "f32";
          line +=
              std::string(" ") + cudamoe::groupedLayoutName(grouping.layout) + " " + format + " ";
          if (secs <= 0) {
            line += "failed (" + err + ")";
            continue;
          }
          auto& curve = l == 0 ? (small ? g->groupedMoeGflopsI768 : g->groupedMoeGflops)
                        : l == 1
                            ? (small ? g->groupedMoeAltGflopsI768 : g->groupedMoeAltGflops)
                            : (small ? g->groupedMoeSkewedGflopsI768 : g->groupedMoeSkewedGflops);
          curve[format][meanRows] = flops / secs / 1e9;
          char rate[64];
          std::snprintf(rate, sizeof rate, "%.1f TFLOP/s (%.3f ms);", flops / secs / 1e12,
                        secs * 1e3);
          line += rate;
        }
      }
      char host[48];
      std::snprintf(host, sizeof host, " host grouping %.1f us", medianUs(hostUs));
      if (o.progress)
        o.progress(line + host);
    }
  }
}

// Host microseconds per launch of the runtime's kernels issued back to back, as a decode issues
// its routed experts: per expert a gather, gate/up/down through cuda::Blas (bf16 weights: each a
// rounding kernel and a GEMM), SwiGLU and a scatter-add, on a tiny model (the GPU finishes each
// kernel before the next is issued, so the host's issue rate is what is timed) -> launchUs.
// Then host and GPU apart, as in a prefill whose kernels are long enough for the host to issue
// while the GPU runs: the same experts queued behind a kernel that keeps the GPU busy (fewer
// launches than the launch queue holds, so the host never waits) give the host's issue time per
// launch (launchIssueUs) and, timed by events, the GPU's time per kernel run back to back
// (kernelFloorUs). Medians of 5.
void measureLaunches(bool quick, int device, GpuResult* result) {
  double& launchUs = result->launchUs;
  std::string err;
  std::unique_ptr<cuda::Blas> blas = cuda::Blas::create(&err);
  if (!blas)
    return;
  const int64_t H = 64, I = 32, tokens = 1;
  const int experts = quick ? 50 : 200;
  float *x = nullptr, *xe = nullptr, *g = nullptr, *u = nullptr, *y = nullptr, *out = nullptr;
  void* w = nullptr;
  int32_t* rows = nullptr;
  bool ok = cudaMalloc(&x, H * 4) == cudaSuccess && cudaMalloc(&xe, H * 4) == cudaSuccess &&
            cudaMalloc(&g, I * 4) == cudaSuccess && cudaMalloc(&u, I * 4) == cudaSuccess &&
            cudaMalloc(&y, H * 4) == cudaSuccess && cudaMalloc(&out, H * 4) == cudaSuccess &&
            cudaMalloc(&w, size_t(H * I) * 2) == cudaSuccess && cudaMalloc(&rows, 4) == cudaSuccess;
  if (ok) {
    cudaMemset(x, 0, H * 4);
    cudaMemset(w, 0, size_t(H * I) * 2);
    cudaMemset(rows, 0, 4);
    auto expert = [&] {
      cuda::gatherRows(x, H, rows, tokens, xe);
      blas->linear(xe, tokens, w, /*wBf16=*/true, I, H, g, &err);
      blas->linear(xe, tokens, w, true, I, H, u, &err);
      cuda::swiglu(g, u, g, tokens * I);
      blas->linear(g, tokens, w, true, H, I, y, &err);
      cuda::scatterAddRows(y, H, rows, nullptr, tokens, out);
    };
    const double launchesPerExpert = 1 + 3 * 2 + 1 + 1;
    expert(); // cuBLAS heuristics and scratch allocation
    cudaDeviceSynchronize();
    std::vector<double> per;
    for (int r = 0; r < 5; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      for (int e = 0; e < experts; ++e)
        expert();
      cudaDeviceSynchronize();
      double total =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      per.push_back(total / (experts * launchesPerExpert));
    }
    launchUs = medianUs(per);

    int khz = 0;
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device);
    const int queued = 40; // 360 launches: well under the launch queue's ~1000 entries
    cudaEvent_t start = nullptr, stop = nullptr;
    if (khz > 0 && cudaEventCreate(&start) == cudaSuccess &&
        cudaEventCreate(&stop) == cudaSuccess) {
      std::vector<double> issue, gpuPer;
      for (int r = 0; r < 5; ++r) {
        spinKernel<<<1, 1>>>(20LL * khz); // 20 ms: far longer than issuing 360 launches
        cudaEventRecord(start);
        auto t0 = std::chrono::steady_clock::now();
        for (int e = 0; e < queued; ++e)
          expert();
        const double host =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count();
        cudaEventRecord(stop);
        float ms = 0;
        if (cudaEventSynchronize(stop) != cudaSuccess ||
            cudaEventElapsedTime(&ms, start, stop) != cudaSuccess || host > 15000)
          continue; // the spin ended before the host did: not a measurement of either
        issue.push_back(host / (queued * launchesPerExpert));
        gpuPer.push_back(double(ms) * 1000.0 / (queued * launchesPerExpert));
      }
      result->launchIssueUs = medianUs(issue);
      result->kernelFloorUs = medianUs(gpuPer);
    }
    if (start)
      cudaEventDestroy(start);
    if (stop)
      cudaEventDestroy(stop);
  }
  cudaFree(x);
  cudaFree(xe);
  cudaFree(g);
  cudaFree(u);
  cudaFree(y);
  cudaFree(out);
  cudaFree(w);
  cudaFree(rows);
  cudaGetLastError();
}

} // namespace

// An activation moved at a step that changes device, through the runtime's own functions
// (ActivationMoves.h): a 2048 x 2048 f32 prefill activation from a pageable vector through the
// pinned staging `h0` to `d0`, and back into a freshly sized vector as CudaBackend::toHost sizes
// it. The cost model prices a hybrid's host steps by these rates (docs/cost-model.md, tenth
// device run: the pageable copies had cost 20x the pinned DMA's time).
namespace {
void measureActivationMoves(const ProbeOptions& o, void* d0, void* h0, GpuResult* g) {
  const size_t n = size_t(2048) * 2048, bytes = n * 4;
  const int threads = o.threadsPerNode > 0 ? o.threadsPerNode
                                           : int(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  std::vector<float> host(n, 1.0f);
  std::string err;
  double s = timeBest(5, [&] { moveToDevice(d0, host.data(), bytes, h0, &pool, &err); });
  g->moveH2dGBs = double(bytes) / s / 1e9;
  s = timeBest(5, [&] {
    std::vector<float> fresh;
    fresh.resize(n); // as Activation::resizeForOverwrite grows an empty vector
    moveToHost(fresh.data(), d0, bytes, h0, &pool, &err);
  });
  g->moveD2hGBs = double(bytes) / s / 1e9;
}
} // namespace

bool probeGpus(const ProbeOptions& o, std::vector<GpuResult>* out, std::string* note) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    *note = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e)
                             : "the CUDA driver reports no GPUs";
    cudaGetLastError();
    return false;
  }
  Cublas blas;
  std::string blasWhy;
  bool haveBlas = blas.open(&blasWhy);
  if (!haveBlas)
    *note = blasWhy;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaSetDevice(i) != cudaSuccess || cudaGetDeviceProperties(&p, i) != cudaSuccess)
      continue;
    if (o.progress)
      o.progress("gpu:" + std::to_string(i) + ": " + p.name + ": bandwidth, link, GEMM");
    GpuResult g;
    g.index = i;
    g.name = p.name;
    g.memoryBytes = p.totalGlobalMem;
    g.smCount = p.multiProcessorCount;

    // HBM: a device-to-device copy reads and writes every byte.
    size_t big = size_t(o.quick ? 256 : 1024) << 20;
    void *d0 = nullptr, *d1 = nullptr, *h0 = nullptr;
    if (cudaMalloc(&d0, big) == cudaSuccess && cudaMalloc(&d1, big) == cudaSuccess) {
      cudaMemset(d0, 0, big);
      double s = timeBest(3, [&] { cudaMemcpy(d1, d0, big, cudaMemcpyDeviceToDevice); });
      g.bandwidthGBs = 2.0 * double(big) / s / 1e9;
    }
    // Pinned host link.
    size_t linkBytes = size_t(o.quick ? 64 : 256) << 20;
    if (d0 && cudaMallocHost(&h0, linkBytes) == cudaSuccess) {
      std::memset(h0, 0, linkBytes);
      double s = timeBest(3, [&] { cudaMemcpy(d0, h0, linkBytes, cudaMemcpyHostToDevice); });
      g.h2dGBs = double(linkBytes) / s / 1e9;
      s = timeBest(3, [&] { cudaMemcpy(h0, d0, linkBytes, cudaMemcpyDeviceToHost); });
      g.d2hGBs = double(linkBytes) / s / 1e9;
      g.latencyUs = hostMedianUs(200, [&] { cudaMemcpy(d0, h0, 4, cudaMemcpyHostToDevice); });
      measureActivationMoves(o, d0, h0, &g);
    }
    g.launchSyncUs = hostMedianUs(500, [&] {
      emptyKernel<<<1, 1>>>();
      cudaDeviceSynchronize();
    });
    if (o.progress)
      o.progress("gpu:" + std::to_string(i) + ": runtime kernels: launch rate, attention");
    measureLaunches(o.quick, i, &g);
    measureAttention(/*mla=*/false, o.quick, &g.gqaAttentionGflops, &g.gqaAttentionBlockGflops,
                     &g.gqaDecodeGflops, &g.gqaPrefillGflops);
    measureAttention(/*mla=*/true, o.quick, &g.mlaAttentionGflops, &g.mlaAttentionBlockGflops,
                     &g.mlaDecodeGflops, &g.mlaPrefillGflops);
    if (o.progress)
      o.progress("gpu:" + std::to_string(i) +
                 ": decode-shaped kernel chains (graph and eager), 1-token products, MoE decode");
    measureDecodeChains(o.quick, &g);
    measureGroupedGemm(o.quick, &g);
    cudaFreeHost(h0);
    cudaFree(d0);
    cudaFree(d1);
    std::map<std::string, double> gemvEff;
    if (haveBlas)
      measureBlas(blas, o.quick, g.bandwidthGBs, &g, &gemvEff);
    g.gemvEfficiency = gemvEff;
    // Last: its ragged layout is the newest cuBLAS path here, so a fault there cannot spoil the
    // numbers above.
    if (o.progress)
      o.progress("gpu:" + std::to_string(i) +
                 ": grouped MoE chunks under random routing (grouped_moe_gflops)");
    measureGroupedMoe(o, i, &g);
    cudaGetLastError();
    out->push_back(g);
  }
  return !out->empty();
}

} // namespace kt::probe
