#pragma once
// kt-rt probe's decode chains (GpuDecodeProbe.cu): what one decode token costs the GPU, measured
// on the runtime's own kernels run back to back as a decode runs them, replayed as a CUDA graph
// and issued eagerly. Compiled only with CUDA.
#include "runtime/probe/Probe.h"

namespace kt::probe {

// Fills g->decodeGraphKernelUs, decodeEagerKernelUs, decodeGemvGBs and decodeMoeGBs (left 0 /
// empty when a step fails: no stream, no cuBLAS, a failed capture).
void measureDecodeChains(bool quick, GpuResult* g);

// The streaming rate of `bytes` read by `launches` kernels that took `seconds` together, beyond
// `kernelUs` per launch (the chain's per-kernel cost); the denominator is kept at a quarter of
// `seconds` at least, so that timing noise on small matrices cannot make the rate explode.
inline double rateBeyondKernels(double bytes, double seconds, double launches, double kernelUs) {
  const double stream = seconds - launches * kernelUs * 1e-6;
  return bytes / (stream > 0.25 * seconds ? stream : 0.25 * seconds) / 1e9;
}

} // namespace kt::probe
