#pragma once
// How close approximate logits are to exact ones, row by row: top-1 agreement, mean KL(exact ||
// approx) of the softmaxes, and the largest absolute difference. Used by the quantized-CPU and GPU
// plan tests, whose bf16/int formats are checked by agreement rather than by max |diff|.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kt::testing_util {

struct LogitAgreement {
  double top1 = 0;   // fraction of rows whose argmax agrees
  double kl = 0;     // mean over rows
  double maxAbs = 0; // over every logit
};

// exact and approx hold rows of `vocab` logits; rows = exact.size() / vocab (approx may be longer).
inline LogitAgreement compareLogits(const std::vector<float>& exact,
                                    const std::vector<float>& approx, int64_t vocab) {
  LogitAgreement a;
  const int64_t rows = int64_t(exact.size()) / vocab;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = exact.data() + r * vocab;
    const float* q = approx.data() + r * vocab;
    int64_t ap = std::max_element(p, p + vocab) - p, aq = std::max_element(q, q + vocab) - q;
    a.top1 += ap == aq;
    double mp = *std::max_element(p, p + vocab), mq = *std::max_element(q, q + vocab), zp = 0,
           zq = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      zp += std::exp(p[v] - mp);
      zq += std::exp(q[v] - mq);
    }
    for (int64_t v = 0; v < vocab; ++v) {
      double lp = p[v] - mp - std::log(zp), lq = q[v] - mq - std::log(zq);
      a.kl += std::exp(lp) * (lp - lq);
      a.maxAbs = std::max(a.maxAbs, double(std::fabs(p[v] - q[v])));
    }
  }
  a.top1 /= double(rows);
  a.kl /= double(rows);
  return a;
}

} // namespace kt::testing_util
