#include "compiler/cost/GpuInt8.h"

#include <algorithm>
#include <cmath>

namespace kt::cost {

void GpuInt8Work::add(int64_t rows, int64_t cols, double countedLaunches) {
  const double blockRows =
      std::max(1.0, std::min(double(rows), std::floor(kInt8WidenWeights / double(cols))));
  matrices += 1;
  rowBlocks += std::ceil(double(rows) / blockRows);
  weights += double(rows) * double(cols);
  outputs += double(rows);
  counted += countedLaunches;
}

GpuInt8Work GpuInt8Work::minus(const GpuInt8Work& before) const {
  GpuInt8Work d;
  d.matrices = matrices - before.matrices;
  d.rowBlocks = rowBlocks - before.rowBlocks;
  d.weights = weights - before.weights;
  d.outputs = outputs - before.outputs;
  d.counted = counted - before.counted;
  return d;
}

double GpuInt8Work::extraLaunches(double tokens) const {
  if (empty() || tokens <= 0)
    return 0;
  // GEMV: one launch per 8 rows; widening: per row block the widening kernel, the activations'
  // bf16 rounding and the GEMM, then one column scaling per matrix.
  double launches = widens(tokens) ? 3 * rowBlocks + matrices
                                   : matrices * std::ceil(tokens / kInt8GemvTokensPerLaunch);
  return launches - counted;
}

} // namespace kt::cost
