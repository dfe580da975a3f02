#include "compiler/cost/GpuInt8.h"

#include <algorithm>
#include <cmath>

namespace kt::cost {

QuantSpec gpuQuantSpec(GpuQuant q) {
  QuantSpec s;
  if (q == GpuQuant::Int8)
    s.format = WeightFormat::Int8;
  else if (q == GpuQuant::Int4)
    s = {WeightFormat::Int4, kGpuInt4Group, true};
  return s;
}

bool parseGpuComputeDtype(const std::string& name, GpuDtype* dtype, GpuQuant* quant) {
  const std::string suffix = "+int4";
  const bool int4 = name.size() > suffix.size() &&
                    name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (!parseGpuDtype(int4 ? name.substr(0, name.size() - suffix.size()) + "+int8" : name, dtype))
    return false;
  *quant = int4                                                          ? GpuQuant::Int4
           : *dtype == GpuDtype::F32Int8 || *dtype == GpuDtype::BF16Int8 ? GpuQuant::Int8
                                                                         : GpuQuant::None;
  return true;
}

void GpuInt8Work::add(int64_t rows, int64_t cols, double countedLaunches, WeightFormat format) {
  const double blockRows =
      std::max(1.0, std::min(double(rows), std::floor(kInt8WidenWeights / double(cols))));
  const bool int4 = format == WeightFormat::Int4;
  matrices += 1;
  rowBlocks += std::ceil(double(rows) / blockRows);
  weights += double(rows) * double(cols);
  outputs += double(rows);
  counted += countedLaunches;
  if (int4) {
    int4Matrices += 1;
    int4Weights += double(rows) * double(cols);
    int4Outputs += double(rows);
  }
  bytes += matrixBytes(rows, cols, gpuQuantSpec(int4 ? GpuQuant::Int4 : GpuQuant::Int8));
}

GpuInt8Work GpuInt8Work::minus(const GpuInt8Work& before) const {
  GpuInt8Work d;
  d.matrices = matrices - before.matrices;
  d.rowBlocks = rowBlocks - before.rowBlocks;
  d.weights = weights - before.weights;
  d.outputs = outputs - before.outputs;
  d.counted = counted - before.counted;
  d.int4Matrices = int4Matrices - before.int4Matrices;
  d.int4Weights = int4Weights - before.int4Weights;
  d.int4Outputs = int4Outputs - before.int4Outputs;
  d.bytes = bytes - before.bytes;
  return d;
}

double GpuInt8Work::extraLaunches(double tokens) const {
  if (empty() || tokens <= 0)
    return 0;
  // GEMV: one launch per 8 rows; widening: per row block the widening kernel, the activations'
  // bf16 rounding and the GEMM, then one column scaling per int8 matrix (int4 widens with its
  // scales applied).
  double launches = widens(tokens) ? 3 * rowBlocks + (matrices - int4Matrices)
                                   : matrices * std::ceil(tokens / kInt8GemvTokensPerLaunch);
  return launches - counted;
}

} // namespace kt::cost
