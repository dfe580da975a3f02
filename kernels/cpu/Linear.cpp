#include "kernels/cpu/Linear.h"

#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cstdint>

#include <vector>

namespace kt::cpu {

void linearRef(const float* x, int64_t tokens, const MatrixView& w, const float* bias, float* y) {
  const int64_t n = w.rows, k = w.cols;
  if (w.packed >= 0) { // the format's definition: exact dequantization, double accumulation
    quant::matmulRef(quant::WeightFormat(w.packed), w.data, n, k, x, tokens, y);
    if (bias)
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < n; ++r)
          y[t * n + r] += bias[r];
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

// Tokens per task when an unpacked matrix's rows alone are too few to share among the threads.
constexpr int64_t kPlainTokenBlock = 32;

static inline float dot(const float* a, const float* b, int64_t k) {
  // Eight independent partial sums: lets the compiler vectorize without -ffast-math.
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j)
      s[j] += a[i + j] * b[i + j];
  float acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < k; ++i)
    acc += a[i] * b[i];
  return acc;
}

void prepareInput(const MatrixView& w, const float* x, int64_t tokens, PreparedInput* out) {
  out->x = x;
  out->tokens = tokens;
  out->k = w.cols;
  out->packed = w.packed;
  if (w.packed < 0)
    return;
  using namespace quant;
  static const Isa isa = detectIsa();
  const auto fmt = WeightFormat(w.packed);
  out->storage.resize(activationBytes(isa, fmt, w.cols, tokens) + kPackedAlign);
  uint8_t* p = out->storage.data();
  p += (kPackedAlign - reinterpret_cast<uintptr_t>(p) % kPackedAlign) % kPackedAlign;
  prepareActivations(isa, fmt, x, w.cols, tokens, p);
  out->act = p;
}

namespace {
// Rows [r0, r1) of an unpacked weight against tokens [t0, t1).
void plainRows(const MatrixView& w, const PreparedInput& in, float* y, int64_t r0, int64_t r1,
               int64_t t0, int64_t t1) {
  const int64_t n = w.rows, k = w.cols;
  thread_local std::vector<float> rowBuf;
  rowBuf.resize(size_t(k));
  for (int64_t r = r0; r < r1; ++r) {
    const float* wr;
    if (w.dtype == DType::F32) {
      wr = reinterpret_cast<const float*>(w.row(r));
    } else {
      w.rowToF32(r, rowBuf.data());
      wr = rowBuf.data();
    }
    for (int64_t t = t0; t < t1; ++t)
      y[t * n + r] = dot(in.x + t * k, wr, k);
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
  prepareInput(w, x, tokens, &in);
  const int64_t units = (n + quant::kGemvRowUnit - 1) / quant::kGemvRowUnit;
  if (w.packed < 0 && tokens >= 2 * kPlainTokenBlock && units < 2 * pool.size()) {
    // An unpacked matrix of few rows (a router: 64-160 rows) over many tokens: the row units alone
    // would keep one or two threads busy (Qwen3's 128-expert router took 20 ms a layer at 512
    // tokens on a 16-core Xeon), so the tokens are split too. Every output is the same dot as
    // before, so results do not change.
    const int64_t blocks = (tokens + kPlainTokenBlock - 1) / kPlainTokenBlock;
    pool.parallelFor(units * blocks, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t u = i / blocks, t0 = (i % blocks) * kPlainTokenBlock;
        plainRows(w, in, y, u * quant::kGemvRowUnit, std::min(n, (u + 1) * quant::kGemvRowUnit), t0,
                  std::min(tokens, t0 + kPlainTokenBlock));
      }
    });
  } else {
    pool.parallelFor(units, 1, [&](int64_t b, int64_t e) {
      linearRows(w, in, y, b * quant::kGemvRowUnit, std::min(n, e * quant::kGemvRowUnit));
    });
  }
  if (bias)
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < n; ++r)
        y[t * n + r] += bias[r];
}

void linearPair(ThreadPool& pool, const float* x, int64_t tokens, const MatrixView& w1, float* y1,
                const MatrixView& w2, float* y2) {
  PreparedInput in1, in2;
  prepareInput(w1, x, tokens, &in1);
  // The same activations serve both when the weights want the same preparation.
  const bool shared = w2.packed == w1.packed && w2.cols == w1.cols;
  if (!shared)
    prepareInput(w2, x, tokens, &in2);
  const PreparedInput& second = shared ? in1 : in2;
  const int64_t unit = quant::kGemvRowUnit;
  const int64_t units1 = (w1.rows + unit - 1) / unit, units2 = (w2.rows + unit - 1) / unit;
  // Units [0, units1) are W1's rows, the rest W2's; a chunk may span both.
  pool.parallelFor(units1 + units2, 1, [&](int64_t b, int64_t e) {
    if (b < units1)
      linearRows(w1, in1, y1, b * unit, std::min(w1.rows, std::min(e, units1) * unit));
    if (e > units1)
      linearRows(w2, second, y2, (std::max(b, units1) - units1) * unit,
                 std::min(w2.rows, (e - units1) * unit));
  });
}

} // namespace kt::cpu
