// GPU versions of runtime/exec/cpu/BasicOps: the same op semantics over GPU-resident buffers.
#include "kernels/cuda/DeviceKernels.h"
#include "kernels/cuda/Memory.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cuda/CudaBackend.h"
#include "runtime/support/Error.h"

namespace kt::cudaops {

namespace {
// Scratch ids of this file's ops (the other op files use 100+ and 200+).
enum Scratch { kGate = 1, kUp, kRows };

const GpuWeight& needWeight(OpContext& c, int slot) {
  const GpuWeight* w = backendOf(c).weight(c, slot);
  if (!w)
    throw Error(c.where() + ": weight slot " + std::to_string(slot) + " is not on the GPU");
  return *w;
}

void checkFeatures(OpContext& c, int64_t have, const GpuWeight& w) {
  if (have != w.cols)
    throw Error(c.where() + ": input has " + std::to_string(have) + " features, weight expects " +
                std::to_string(w.cols));
}
} // namespace

void embedding(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const GpuWeight& table = needWeight(c, 0);
  const int64_t T = c.in(0).rows;
  float* out = b.out(c, 0, T, table.cols);
  cuda::embedding(b.inIds(c, 0), T, table.data, table.bf16, table.cols, out);
  b.checkLaunch(c);
}

void rmsNorm(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const float* xd = b.in(c, 0);
  float* out = b.out(c, 0, x.rows, x.cols);
  cuda::rmsNormRows(xd, x.cols, x.rows, x.cols, needWeight(c, 0).f32(),
                    float(c.step.attrs_as_RmsNormAttrs()->eps()), out, x.cols);
  b.checkLaunch(c);
}

void linear(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const GpuWeight& w = needWeight(c, 0);
  checkFeatures(c, x.cols, w);
  const float* xd = b.in(c, 0);
  linearInto(c, xd, x.rows, w, 0, b.out(c, 0, x.rows, w.rows), b.weight(c, 1));
  b.checkLaunch(c);
}

void rope(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const auto& a = *c.step.attrs_as_RopeAttrs();
  const int headDim = a.head_dim(), dim = a.rope()->dim();
  if (headDim < dim || x.cols % headDim)
    throw Error(c.where() + ": rope over " + std::to_string(x.cols) + " features with head_dim " +
                std::to_string(headDim));
  const float* xd = b.in(c, 0);
  float* out = b.out(c, 0, x.rows, x.cols);
  std::string err;
  b.check(c, cuda::deviceCopy(out, xd, size_t(x.rows * x.cols) * 4, &err), err);
  // The rotated channels are the last rope.dim of each head.
  cuda::rope(out, x.rows, int(x.cols / headDim), x.cols, headDim, headDim - dim, b.inIds(c, 1),
             b.invFreq(c.step, *a.rope()), dim, float(a.rope()->attention_factor()),
             a.rope()->interleaved());
  b.checkLaunch(c);
}

void swiglu(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& g = c.in(0);
  const float* gd = b.in(c, 0);
  const float* ud = b.in(c, 1);
  cuda::swiglu(gd, ud, b.out(c, 0, g.rows, g.cols), g.rows * g.cols);
  b.checkLaunch(c);
}

void add(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& a = c.in(0);
  const float* ad = b.in(c, 0);
  const float* bd = b.in(c, 1);
  cuda::add(ad, bd, b.out(c, 0, a.rows, a.cols), a.rows * a.cols);
  b.checkLaunch(c);
}

void mlp(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const GpuWeight &gate = needWeight(c, 0), &up = needWeight(c, 1), &down = needWeight(c, 2);
  checkFeatures(c, x.cols, gate);
  const float* xd = b.in(c, 0);
  float* g = b.scratchF(kGate, x.rows * gate.rows);
  float* u = b.scratchF(kUp, x.rows * up.rows);
  linearInto(c, xd, x.rows, gate, 0, g);
  linearInto(c, xd, x.rows, up, 0, u);
  cuda::swiglu(g, u, g, x.rows * gate.rows);
  linearInto(c, g, x.rows, down, 0, b.out(c, 0, x.rows, down.rows));
  b.checkLaunch(c);
}

void lmHead(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const GpuWeight& w = needWeight(c, 0);
  checkFeatures(c, x.cols, w);
  const float* xd = b.in(c, 0);
  const std::vector<int64_t>& rows = c.batch.outputRows;
  // Every row in order (decode: one token per sequence) needs no gather.
  bool everyRow = int64_t(rows.size()) == x.rows;
  for (size_t i = 0; everyRow && i < rows.size(); ++i)
    everyRow = rows[i] == int64_t(i);
  if (rows.empty() || everyRow) {
    linearInto(c, xd, x.rows, w, 0, b.out(c, 0, x.rows, w.rows));
  } else {
    // Only the rows the caller needs (the last token of each sequence of a prefill); their ids
    // are uploaded once per distinct list, so a captured step never copies from the host.
    const int32_t* dIds = b.rowIds(rows);
    const int64_t n = int64_t(rows.size());
    float* picked = b.scratchF(kRows, n * x.cols);
    cuda::gatherRows(xd, x.cols, dIds, n, picked);
    linearInto(c, picked, n, w, 0, b.out(c, 0, n, w.rows));
  }
  b.checkLaunch(c);
}

void tap(OpContext& c) {
  CudaBackend& b = backendOf(c);
  const Activation& x = c.in(0);
  const float* xd = b.in(c, 0);
  float* out = b.out(c, 0, x.rows, x.cols);
  std::string err;
  b.check(c, cuda::deviceCopy(out, xd, size_t(x.rows * x.cols) * 4, &err), err);
  if (c.tapSink && *c.tapSink) {
    Activation& o = c.out(0);
    o.f.resize(size_t(x.rows * x.cols));
    b.check(c, cuda::toHost(o.f.data(), out, o.f.size() * 4, &err), err);
    (*c.tapSink)(c.step.attrs_as_TapAttrs()->name()->str(), o);
  }
}

} // namespace kt::cudaops
