#include "kernels/cpu/Linear.h"
#include "kernels/cpu/Norm.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <cmath>

namespace kt::cpuops {

cpu::RopeParams ropeParams(const plan::Rope& r) {
  cpu::RopeParams p;
  switch (r.type()) {
  case plan::RopeType::Default:
    p.type = cpu::RopeType::Default;
    break;
  case plan::RopeType::Linear:
    p.type = cpu::RopeType::Linear;
    break;
  case plan::RopeType::Yarn:
    p.type = cpu::RopeType::Yarn;
    break;
  case plan::RopeType::Llama3:
    p.type = cpu::RopeType::Llama3;
    break;
  }
  p.dim = r.dim();
  p.theta = r.theta();
  p.factor = r.factor();
  p.originalMaxPosition = r.original_max_position();
  p.betaFast = r.beta_fast();
  p.betaSlow = r.beta_slow();
  p.lowFreqFactor = r.low_freq_factor();
  p.highFreqFactor = r.high_freq_factor();
  p.attentionFactor = r.attention_factor();
  p.interleaved = r.interleaved();
  return p;
}

void swigluInPlace(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void smallLoop(ThreadPool& pool, int64_t n, int64_t elements,
               const std::function<void(int64_t, int64_t)>& fn) {
  if (elements < (int64_t(1) << 16))
    fn(0, n);
  else
    pool.parallelFor(n, 1, fn);
}

void embedding(OpContext& c) {
  const Activation& ids = c.in(0);
  cpu::MatrixView table = c.w(0);
  Activation& out = c.out(0);
  out.resize(ids.rows, table.cols);
  for (int64_t t = 0; t < ids.rows; ++t)
    table.rowToF32(ids.i[size_t(t)], out.f.data() + t * table.cols);
}

void rmsNorm(OpContext& c) {
  const Activation& x = c.in(0);
  Activation& out = c.out(0);
  out.resizeForOverwrite(x.rows, x.cols);
  const double eps = c.step.attrs_as_RmsNormAttrs()->eps();
  const cpu::MatrixView w = c.w(0);
  // A prefill's rows over the threads (512 x 2048 took ~1.5 ms on one); each row as before.
  smallLoop(c.pool, x.rows, x.rows * x.cols, [&](int64_t r0, int64_t r1) {
    cpu::rmsNorm(x.f.data() + r0 * x.cols, r1 - r0, x.cols, w, eps, out.f.data() + r0 * x.cols);
  });
}

static void linearInto(OpContext& c, const Activation& x, const cpu::MatrixView& w,
                       const float* bias, Activation& out) {
  if (x.cols != w.cols)
    throw Error(c.where() + ": input has " + std::to_string(x.cols) + " features, weight expects " +
                std::to_string(w.cols));
  out.resize(x.rows, w.rows);
  cpu::linear(c.pool, x.f.data(), x.rows, w, bias, out.f.data());
}

void linear(OpContext& c) {
  if (const cpu::grad::Lora* l = c.adapter(0)) { // unmerged adapter: the training forward
    const Activation& x = c.in(0);
    const cpu::MatrixView w = c.w(0);
    if (x.cols != w.cols)
      throw Error(c.where() + ": input has " + std::to_string(x.cols) +
                  " features, weight expects " + std::to_string(w.cols));
    Activation& out = c.out(0);
    out.resize(x.rows, w.rows);
    cpu::grad::linearForward(c.pool, {w, c.has(1) ? c.w(1) : cpu::MatrixView{}, l}, x.f.data(),
                             x.rows, out.f.data());
    return;
  }
  std::vector<float> bias;
  if (c.has(1)) {
    cpu::MatrixView b = c.w(1);
    bias.resize(size_t(b.cols));
    b.rowToF32(0, bias.data());
  }
  linearInto(c, c.in(0), c.w(0), c.has(1) ? bias.data() : nullptr, c.out(0));
}

void rope(OpContext& c) {
  const Activation& x = c.in(0);
  const Activation& pos = c.in(1);
  Activation& out = c.out(0);
  out = x;
  const auto& a = *c.step.attrs_as_RopeAttrs();
  cpu::RopeParams p = ropeParams(*a.rope());
  std::vector<float> inv = cpu::ropeInvFreq(p);
  const int headDim = a.head_dim();
  if (headDim < p.dim || x.cols % headDim)
    throw Error(c.where() + ": rope over " + std::to_string(x.cols) + " features with head_dim " +
                std::to_string(headDim));
  const int heads = int(x.cols / headDim);
  // The rotated channels are the last rope.dim of each head.
  for (int64_t t = 0; t < x.rows; ++t)
    cpu::applyRope(out.f.data() + t * x.cols, heads, headDim, headDim - p.dim, pos.i[size_t(t)], p,
                   inv);
}

// g = silu(g) * u over rows x width values, a prefill's rows over the threads: a dense layer's
// 512-token prefill has 5.6 M sigmoids (DeepSeek-V2-Lite's 10944-wide MLP), ~40 ms on one thread,
// four times its three GEMMs on 16 Xeon threads.
static void swigluRows(ThreadPool& pool, float* g, const float* u, int64_t rows, int64_t width) {
  smallLoop(pool, rows, rows * width, [&](int64_t r0, int64_t r1) {
    swigluInPlace(g + r0 * width, u + r0 * width, (r1 - r0) * width);
  });
}

void swiglu(OpContext& c) {
  Activation& out = c.out(0);
  out = c.in(0);
  swigluRows(c.pool, out.f.data(), c.in(1).f.data(), out.rows, out.cols);
}

void add(OpContext& c) {
  const Activation& a = c.in(0);
  const Activation& b = c.in(1);
  Activation& out = c.out(0);
  out.resizeForOverwrite(a.rows, a.cols);
  smallLoop(c.pool, a.rows, a.rows * a.cols, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0 * a.cols; i < r1 * a.cols; ++i)
      out.f[size_t(i)] = a.f[size_t(i)] + b.f[size_t(i)];
  });
}

void mlp(OpContext& c) {
  const Activation& x = c.in(0);
  if (c.hasAdapters()) { // unmerged adapters: the training forward (kernels/cpu/grad)
    using namespace plan::slots;
    auto proj = [&](int slot) { return cpu::grad::Projection{c.w(slot), {}, c.adapter(slot)}; };
    Activation& out = c.out(0);
    out.resize(x.rows, c.w(MlpDown).rows);
    cpu::grad::mlpForward(c.pool, {proj(MlpGate), proj(MlpUp), proj(MlpDown)}, x.f.data(), x.rows,
                          out.f.data());
    return;
  }
  Activation g, u;
  linearInto(c, x, c.w(0), nullptr, g);
  linearInto(c, x, c.w(1), nullptr, u);
  swigluRows(c.pool, g.f.data(), u.f.data(), g.rows, g.cols);
  linearInto(c, g, c.w(2), nullptr, c.out(0));
}

void lmHead(OpContext& c) {
  const Activation& x = c.in(0);
  if (c.batch.outputRows.empty()) {
    linearInto(c, x, c.w(0), nullptr, c.out(0));
    return;
  }
  // Only the rows the caller needs (the last token of each sequence while decoding).
  Activation rows;
  rows.resize(int64_t(c.batch.outputRows.size()), x.cols);
  for (size_t r = 0; r < c.batch.outputRows.size(); ++r)
    std::copy_n(x.f.data() + c.batch.outputRows[r] * x.cols, x.cols,
                rows.f.data() + int64_t(r) * x.cols);
  linearInto(c, rows, c.w(0), nullptr, c.out(0));
}

void tap(OpContext& c) {
  const Activation& x = c.in(0);
  Activation& out = c.out(0);
  if (!x.i.empty()) {
    out = x;
  } else { // a prefill's hidden states: copied over the threads (one took ~0.8 ms a layer)
    out.i.clear();
    out.resizeForOverwrite(x.rows, x.cols);
    smallLoop(c.pool, x.rows, x.rows * x.cols, [&](int64_t r0, int64_t r1) {
      std::copy(x.f.begin() + r0 * x.cols, x.f.begin() + r1 * x.cols, out.f.begin() + r0 * x.cols);
    });
  }
  if (c.tapSink && *c.tapSink)
    (*c.tapSink)(c.step.attrs_as_TapAttrs()->name()->str(), c.out(0));
}

} // namespace kt::cpuops
