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

// Tokens per task when an unpacked matrix's rows alone are too few to share among the threads,
// and rows per task of an unpacked matrix.
constexpr int64_t kPlainTokenBlock = 32;
constexpr int64_t kPlainRowUnit = 16;

// dots[r][t] = w[r] . x[t] for NR rows and NT tokens at once. Each output keeps eight partial
// sums over lanes i % 8 and combines them the same way for any NR, NT (and the one-dot case), so
// results do not depend on the blocking; the NR x NT x 8 independent sums let the compiler keep
// many FMAs in flight instead of one chain per dot (a router's 128 x 2048 over 512 tokens took
// 3.5 ms a layer on 16 Xeon threads with one chain).
template <int NR, int NT>
static inline void dotBlock(const float* const* w, const float* const* x, int64_t k,
                            float dots[NR][NT]) {
  float s[NR][NT][8] = {};
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t)
        for (int j = 0; j < 8; ++j)
          s[r][t][j] += w[r][i + j] * x[t][i + j];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      const float* p = s[r][t];
      float acc = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
      for (int64_t j = i; j < k; ++j)
        acc += w[r][j] * x[t][j];
      dots[r][t] = acc;
    }
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
// Rows [r0, r1) of an unpacked weight against tokens [t0, t1): blocks of 2 rows x 4 tokens
// (14 of AVX2's 16 vector registers), the leftover tokens 4 rows at a time.
void plainRows(const MatrixView& w, const PreparedInput& in, float* y, int64_t r0, int64_t r1,
               int64_t t0, int64_t t1) {
  constexpr int kRows = 4;
  const int64_t n = w.rows, k = w.cols;
  thread_local std::vector<float> rowBuf;
  rowBuf.resize(size_t(kRows * k));
  const float* x[4];
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
    int64_t t = t0;
    for (; t + 4 <= t1; t += 4) {
      for (int j = 0; j < 4; ++j)
        x[j] = in.x + (t + j) * k;
      for (int r = 0; r < nr; r += 2) {
        float d[2][4];
        if (r + 1 < nr) {
          dotBlock<2, 4>(wr + r, x, k, d);
        } else {
          float d1[1][4];
          dotBlock<1, 4>(wr + r, x, k, d1);
          std::copy(d1[0], d1[0] + 4, d[0]);
        }
        for (int i = 0; i < std::min(2, nr - r); ++i)
          for (int j = 0; j < 4; ++j)
            y[(t + j) * n + rb + r + i] = d[i][j];
      }
    }
    for (; t < t1; ++t) {
      x[0] = in.x + t * k;
      if (nr == kRows) { // a decode token: the four rows' sums in flight together
        float d[kRows][1];
        dotBlock<kRows, 1>(wr, x, k, d);
        for (int r = 0; r < kRows; ++r)
          y[t * n + rb + r] = d[r][0];
        continue;
      }
      for (int r = 0; r < nr; ++r) {
        float d[1][1];
        dotBlock<1, 1>(wr + r, x, k, d);
        y[t * n + rb + r] = d[0][0];
      }
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
  prepareInput(w, x, tokens, &in);
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
