#include "runtime/exec/cuda/ExpertStream.h"

#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "kernels/cuda/PackedWiden.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"

#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace kt::cudaops {

namespace {
constexpr int kSlots[3] = {plan::slots::Gate, plan::slots::Up, plan::slots::Down};
constexpr const char* kNames[3] = {"gate", "up", "down"};

size_t align256(size_t n) {
  return (n + 255) & ~size_t(255);
}

bool isTrainEntry(const plan::EntryPoint& ep) {
  return ep.name() && ep.name()->str() == "train_step";
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A packed expert is a plain copy into pinned memory (8.7 MB int8 for DeepSeek-V2-Lite): one
// thread's memcpy from the page cache runs at a few GB/s, several threads near memory speed.
void copyParallel(void* dst, const void* src, size_t bytes, ThreadPool& pool) {
  constexpr size_t kChunk = size_t(256) << 10; // 11 chunks of a 2.9 MB int8 matrix
  const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
  pool.parallelFor(chunks, 1, [&](int64_t c0, int64_t c1) {
    const size_t b0 = size_t(c0) * kChunk, b1 = std::min(bytes, size_t(c1) * kChunk);
    std::memcpy(static_cast<char*>(dst) + b0, static_cast<const char*>(src) + b0, b1 - b0);
  });
}
} // namespace

ExpertStream::ExpertStream(const LoadedPlan& plan, const WeightStore& weights, uint16_t device,
                           GpuFormat format, const std::string& gpuName)
    : device_(device), format_(format), gpuName_(gpuName) {
  const plan::Plan& p = plan.root();
  for (const plan::EntryPoint* ep : *p.entry_points()) {
    if (isTrainEntry(*ep))
      continue;
    for (const plan::Step* s : *ep->steps()) {
      const plan::MoeAttrs* a = s->attrs_as_MoeAttrs();
      if (s->op() != plan::OpKind::Moe || !a || a->prefill_offload_min_tokens() <= 0 ||
          a->prefill_offload_device() != int32_t(device))
        continue;
      const std::string what =
          plan.origin() + ": step '" + s->name()->str() + "' (prefill offload)";
      int64_t rows[3], cols[3];
      cpu::MatrixView v[3];
      for (int m = 0; m < 3; ++m) {
        const int32_t id = s->weights()->Get(uint32_t(kSlots[m]));
        const plan::Weight& w = weights.weight(id);
        if (w.shape()->size() != 3 || w.shape()->Get(0) != a->num_experts())
          throw Error(what + ": routed " + kNames[m] + " '" + w.name()->str() +
                      "' is not a stack of " + std::to_string(a->num_experts()) +
                      " [rows, cols] experts");
        rows[m] = w.shape()->Get(1);
        cols[m] = w.shape()->Get(2);
        v[m] = weights.slice(id, 0); // packed or not, like every expert of the stack
      }
      if (rows[1] != rows[0] || cols[1] != cols[0] || cols[2] != rows[0] || rows[2] != cols[0])
        throw Error(what + ": routed gate [" + std::to_string(rows[0]) + ", " +
                    std::to_string(cols[0]) + "], up [" + std::to_string(rows[1]) + ", " +
                    std::to_string(cols[1]) + "] and down [" + std::to_string(rows[2]) + ", " +
                    std::to_string(cols[2]) + "] do not fit together");
      const Layout l = layout(v);
      hostBytes_ = std::max(hostBytes_, l.copied);
      devBytes_ = std::max(devBytes_, l.total);
    }
  }
  if (devBytes_ == 0)
    return;
  const std::string what = gpuName_ + ": prefill-offload staging (2 x " +
                           std::to_string(devBytes_ >> 10) + " KiB on the GPU, 2 x " +
                           std::to_string(hostBytes_ >> 10) + " KiB pinned)";
  std::string err;
  copyStream_ = cuda::createStream(&err);
  check(copyStream_ != nullptr, what, err);
  for (Slot& s : slots_) {
    s.dev = cuda::allocate(devBytes_, &err);
    check(s.dev != nullptr, what, err);
    s.host = cuda::allocatePinned(hostBytes_, &err);
    check(s.host != nullptr, what, err);
    check(cuda::createEvent(&s.copied, &err) && cuda::createEvent(&s.free, &err), what, err);
  }
}

ExpertStream::~ExpertStream() {
  std::string err;
  cuda::synchronize(&err); // no copy or GEMM may still read a slot
  for (Slot& s : slots_) {
    cuda::release(s.dev);
    cuda::releasePinned(s.host);
    cuda::destroyEvent(&s.copied);
    cuda::destroyEvent(&s.free);
  }
  if (copyStream_)
    cuda::destroyStream(copyStream_);
}

void ExpertStream::check(bool ok, const std::string& what, const std::string& err) const {
  if (!ok)
    throw Error(what + ": " + err);
}

ExpertStream::Layout ExpertStream::layout(const cpu::MatrixView v[3]) const {
  Layout l;
  size_t at = 0;
  for (int m = 0; m < 3; ++m) { // what crosses PCIe
    l.packed[m] = v[m].packed >= 0;
    l.blob[m] = l.data[m] = l.scales[m] = at;
    l.blobBytes[m] = packedBlobBytes(v[m]);
    if (l.packed[m]) {
      at = align256(at + l.blobBytes[m]);
      continue;
    }
    at = align256(at + gpuDataBytes(format_, v[m].rows, v[m].cols));
    l.scales[m] = at;
    at = align256(at + gpuScaleBytes(format_, v[m].rows, v[m].cols));
  }
  l.copied = at;
  for (int m = 0; m < 3; ++m) // the packed matrices widened on the GPU
    if (l.packed[m]) {
      l.data[m] = l.scales[m] = at;
      at = align256(at + gpuDataBytes(widenedFormat(format_), v[m].rows, v[m].cols));
    }
  l.total = at;
  return l;
}

bool ExpertStream::streams(const plan::Step& step, int64_t tokens) const {
  const plan::MoeAttrs* a = step.attrs_as_MoeAttrs();
  return devBytes_ > 0 && a && a->prefill_offload_min_tokens() > 0 &&
         a->prefill_offload_device() == int32_t(device_) &&
         tokens >= a->prefill_offload_min_tokens();
}

const ExpertStream::Expert& ExpertStream::stage(OpContext& c, int64_t e) {
  Slot& s = slots_[next_ % 2];
  const std::string what =
      c.where() + " on " + gpuName_ + ": streaming expert " + std::to_string(e);
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  check(cuda::waitEvent(s.free, &err), what, err); // the GPU is done with this slot's last expert
  stats_.waitSeconds += since(t0);
  t0 = std::chrono::steady_clock::now();
  cpu::MatrixView v[3];
  for (int m = 0; m < 3; ++m)
    v[m] = c.expert(kSlots[m], e);
  const Layout l = layout(v);
  if (l.copied > hostBytes_ || l.total > devBytes_)
    throw Error(what + ": needs " + std::to_string(l.copied) + " pinned and " +
                std::to_string(l.total) + " GPU bytes, the slots hold " +
                std::to_string(hostBytes_) + " and " + std::to_string(devBytes_));
  GpuWeight* views[3] = {&s.view.gate, &s.view.up, &s.view.down};
  auto* host = static_cast<char*>(s.host);
  auto* dev = static_cast<char*>(s.dev);
  for (int m = 0; m < 3; ++m) {
    GpuWeight& g = *views[m];
    g = GpuWeight{};
    g.data = dev + l.data[m];
    g.rows = v[m].rows;
    g.cols = v[m].cols;
    if (l.packed[m]) { // the packed bytes as they are; the GPU widens them below
      copyParallel(host + l.blob[m], v[m].data, l.blobBytes[m], c.pool);
      g.bf16 = widenedFormat(format_) == GpuFormat::BF16;
      continue;
    }
    int64_t bad = -1;
    if (!packForGpu(v[m], format_, host + l.data[m], host + l.scales[m], &c.pool, &bad))
      throw Error(what + ": " + kNames[m] + " row " + std::to_string(bad) +
                  " has non-finite values; --gpu-quant int4 needs finite weights");
    g.bf16 = format_ == GpuFormat::BF16;
    if (format_ == GpuFormat::Int8)
      g.scales = reinterpret_cast<float*>(dev + l.scales[m]);
    if (format_ == GpuFormat::Int4)
      g.groupScales = reinterpret_cast<uint16_t*>(dev + l.scales[m]);
  }
  stats_.packSeconds += since(t0);
  // The copy runs on its own stream (it may overlap the previous expert's GEMMs); the compute
  // stream waits for it on the GPU, not on the host, then widens the packed matrices (queued
  // before the GEMMs that read them, and before free[s], so the next copy into the slot waits).
  check(cuda::toDeviceAsyncOn(copyStream_, s.dev, s.host, l.copied, &err) &&
            cuda::recordEventOn(s.copied, copyStream_, &err) &&
            cuda::streamWaitEvent(nullptr, s.copied, &err),
        what, err);
  for (int m = 0; m < 3; ++m)
    if (l.packed[m])
      cuda::widenPacked(
          cuda::packedGeom(cpu::quant::WeightFormat(v[m].packed), v[m].rows, v[m].cols),
          reinterpret_cast<const uint8_t*>(dev + l.blob[m]),
          widenedFormat(format_) == GpuFormat::BF16, dev + l.data[m]);
  ++stats_.experts;
  stats_.bytes += l.copied;
  staged_ = &s;
  return s.view;
}

void ExpertStream::done(const OpContext& c) {
  std::string err;
  if (staged_)
    check(cuda::recordEventOn(staged_->free, nullptr, &err), c.where() + " on " + gpuName_, err);
  staged_ = nullptr;
  ++next_;
}

} // namespace kt::cudaops
