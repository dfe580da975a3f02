#include "kernels/cpu/Linear.h"

#include "kernels/cpu/PlainDot.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <vector>

namespace kt::cpu {

namespace {
// y[t, r] += bias[r] for `tokens` rows of n outputs (no bias: nothing).
void addBias(float* y, int64_t tokens, int64_t n, const float* bias) {
  if (bias)
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < n; ++r)
        y[t * n + r] += bias[r];
}
} // namespace

void linearRef(const float* x, int64_t tokens, const MatrixView& w, const float* bias, float* y) {
  const int64_t n = w.rows, k = w.cols;
  if (w.packed >= 0) { // the format's definition: exact dequantization, double accumulation
    quant::matmulRef(quant::WeightFormat(w.packed), w.data, n, k, x, tokens, y);
    addBias(y, tokens, n, bias);
    return;
  }
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < n; ++r) {
      float acc = 0.f;
      for (int64_t i = 0; i < k; ++i)
        acc += x[t * k + i] * w.at(r, i);
      y[t * n + r] = acc + (bias ? bias[r] : 0.f);
    }
}

// Tokens per task when an unpacked matrix's rows alone are too few to share among the threads,
// and rows per task of an unpacked matrix.
constexpr int64_t kPlainTokenBlock = 32;
constexpr int64_t kPlainRowUnit = 16;

void prepareInput(const MatrixView& w, const float* x, int64_t tokens, PreparedInput* out,
                  ThreadPool* pool) {
  out->x = x;
  out->tokens = tokens;
  out->k = w.cols;
  out->packed = w.packed;
  if (w.packed < 0)
    return;
  using namespace quant;
  static const Isa isa = detectIsa();
  const auto fmt = WeightFormat(w.packed);
  const size_t bytes = activationBytes(isa, fmt, w.cols, tokens);
  out->storage.reset(new uint8_t[bytes + kPackedAlign]);
  uint8_t* p = out->storage.get();
  p += (kPackedAlign - reinterpret_cast<uintptr_t>(p) % kPackedAlign) % kPackedAlign;
  out->act = p;
  // Rows per task: enough that a task's conversion (~k values a row) outweighs its start.
  constexpr int64_t kRowsPerTask = 16;
  if (!pool || pool->size() == 1 || tokens < 2 * kRowsPerTask) {
    prepareActivations(isa, fmt, x, w.cols, tokens, p);
    return;
  }
  // Zero the padding (and everything) in parallel 64 KiB pieces, then convert row blocks.
  constexpr size_t kPiece = size_t(64) << 10;
  pool->parallelFor(int64_t((bytes + kPiece - 1) / kPiece), 1, [&](int64_t b, int64_t e) {
    const size_t lo = size_t(b) * kPiece, hi = std::min(bytes, size_t(e) * kPiece);
    std::memset(p + lo, 0, hi - lo);
  });
  pool->parallelFor((tokens + kRowsPerTask - 1) / kRowsPerTask, 1, [&](int64_t b, int64_t e) {
    prepareActivationRows(isa, fmt, x, w.cols, tokens, b * kRowsPerTask,
                          std::min(tokens, e * kRowsPerTask), p);
  });
}

namespace {
// Rows [r0, r1) of an unpacked weight against tokens [t0, t1), in blocks of 4 rows (converted
// to f32 once) x 4 tokens (PlainDot.h: the same bits for any blocking).
void plainRows(const MatrixView& w, const PreparedInput& in, float* y, int64_t r0, int64_t r1,
               int64_t t0, int64_t t1) {
  constexpr int kRows = kPlainDotMaxRows, kTokens = kPlainDotMaxTokens;
  const int64_t n = w.rows, k = w.cols;
  thread_local std::vector<float> rowBuf;
  rowBuf.resize(size_t(kRows * k));
  for (int64_t rb = r0; rb < r1; rb += kRows) {
    const int nr = int(std::min<int64_t>(kRows, r1 - rb));
    const float* wr[kRows];
    for (int r = 0; r < nr; ++r) {
      if (w.dtype == DType::F32) {
        wr[r] = reinterpret_cast<const float*>(w.row(rb + r));
      } else {
        w.rowToF32(rb + r, rowBuf.data() + r * k);
        wr[r] = rowBuf.data() + r * k;
      }
    }
    for (int64_t tb = t0; tb < t1; tb += kTokens) {
      const int nt = int(std::min<int64_t>(kTokens, t1 - tb));
      const float* x[kTokens];
      for (int t = 0; t < nt; ++t)
        x[t] = in.x + (tb + t) * k;
      float d[kRows * kTokens];
      // 2 x 4 blocks for prefills, 4 x 1 for a decode token.
      if (nt == kTokens) {
        for (int r = 0; r < nr; r += 2)
          plainDotBlock(wr + r, std::min(2, nr - r), x, nt, k, d + r * nt);
      } else {
        plainDotBlock(wr, nr, x, nt, k, d);
      }
      for (int r = 0; r < nr; ++r)
        for (int t = 0; t < nt; ++t)
          y[(tb + t) * n + rb + r] = d[r * nt + t];
    }
  }
}
} // namespace

void linearRows(const MatrixView& w, const PreparedInput& in, float* y, int64_t r0, int64_t r1) {
  const int64_t n = w.rows, k = w.cols;
  if (w.packed >= 0) {
    static const quant::Isa isa = quant::detectIsa();
    quant::matmulPrepared(isa, quant::WeightFormat(w.packed), w.data, n, k, in.act, in.tokens, y,
                          r0, r1);
    return;
  }
  plainRows(w, in, y, r0, r1, 0, in.tokens);
}

// Activations are prepared once (converted to bf16/int8 for packed formats), then the threads
// split the output rows in units of kGemvRowUnit rows (four 16-row panels: the one-token kernel's
// full-speed unit) and each streams its rows of the weight exactly once for all tokens.
void linear(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w,
            const float* bias, float* y) {
  const int64_t n = w.rows;
  PreparedInput in;
  prepareInput(w, x, tokens, &in, &pool);
  if (w.packed < 0) {
    // Unpacked (f32/bf16 as stored: routers, f32 plans): rows in units of kPlainRowUnit, so that a
    // router's 64-160 rows keep several threads busy in decode too, and when those units are few
    // next to the threads, the tokens in blocks as well (Qwen3's 128-expert router took 20 ms a
    // layer at 512 tokens on a 16-core Xeon with the rows alone split). Every output is the same
    // dot whatever the split, so results do not change.
    const int64_t units = (n + kPlainRowUnit - 1) / kPlainRowUnit;
    const int64_t block = tokens >= 2 * kPlainTokenBlock && units < 2 * pool.size()
                              ? kPlainTokenBlock
                              : std::max<int64_t>(tokens, 1);
    const int64_t blocks = (tokens + block - 1) / block;
    pool.parallelFor(units * blocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t u = i / blocks, t0 = (i % blocks) * block;
        plainRows(w, in, y, u * kPlainRowUnit, std::min(n, (u + 1) * kPlainRowUnit), t0,
                  std::min(tokens, t0 + block));
      }
    });
  } else {
    const int64_t units = (n + quant::kGemvRowUnit - 1) / quant::kGemvRowUnit;
    pool.parallelFor(units, 1, [&](int64_t b, int64_t e) {
      linearRows(w, in, y, b * quant::kGemvRowUnit, std::min(n, e * quant::kGemvRowUnit));
    });
  }
  addBias(y, tokens, n, bias);
}

void linearGroup(ThreadPool& pool, const float* x, int64_t tokens, const LinearOut* outs,
                 int count) {
  // Activations prepared once per distinct preparation (packed format and width): Q, K and V of
  // one format share one quantization of x.
  std::vector<PreparedInput> prepared(static_cast<size_t>(count));
  std::vector<const PreparedInput*> input(static_cast<size_t>(count));
  std::vector<int64_t> firstUnit(static_cast<size_t>(count) + 1, 0);
  const int64_t unit = quant::kGemvRowUnit;
  for (int i = 0; i < count; ++i) {
    const MatrixView& w = outs[i].w;
    for (int j = 0; j < i && !input[size_t(i)]; ++j)
      if (outs[j].w.packed == w.packed && outs[j].w.cols == w.cols)
        input[size_t(i)] = input[size_t(j)];
    if (!input[size_t(i)]) {
      prepareInput(w, x, tokens, &prepared[size_t(i)], &pool);
      input[size_t(i)] = &prepared[size_t(i)];
    }
    firstUnit[size_t(i) + 1] = firstUnit[size_t(i)] + (w.rows + unit - 1) / unit;
  }
  // Units [firstUnit[i], firstUnit[i + 1]) are matrix i's rows; a chunk may span several.
  pool.parallelFor(firstUnit[size_t(count)], 1, [&](int64_t b, int64_t e) {
    for (int i = 0; i < count; ++i) {
      const int64_t u0 = std::max(b, firstUnit[size_t(i)]),
                    u1 = std::min(e, firstUnit[size_t(i) + 1]);
      if (u0 < u1)
        linearRows(outs[i].w, *input[size_t(i)], outs[i].y, (u0 - firstUnit[size_t(i)]) * unit,
                   std::min(outs[i].w.rows, (u1 - firstUnit[size_t(i)]) * unit));
    }
  });
  for (int i = 0; i < count; ++i)
    addBias(outs[i].y, tokens, outs[i].w.rows, outs[i].bias);
}

void linearPair(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w1, float* y1,
                const MatrixView& w2, float* y2) {
  const LinearOut outs[2] = {{w1, y1}, {w2, y2}};
  linearGroup(pool, x, tokens, outs, 2);
}

} // namespace kt::cpu
