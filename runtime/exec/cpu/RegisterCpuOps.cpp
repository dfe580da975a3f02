#include "runtime/exec/cpu/CpuOps.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace kt {

// The CPU ops allocate their activations per step (a decode step frees and re-allocates the same
// sizes every token). glibc serves blocks above 128 KiB-32 MiB with fresh mmaps and trims the heap
// top on free, so each step paid page faults on zeroed pages (~200k faults in 64 decode steps of
// DeepSeek-V2-Lite). Keeping freed memory in the heap makes later steps reuse warm pages.
void cpuops::keepFreedMemoryInHeap() {
#if defined(__GLIBC__)
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    return true;
  }();
  (void)done;
#endif
}

void registerCpuOps(OpRegistry& r) {
  cpuops::keepFreedMemoryInHeap();
  using plan::DeviceKind;
  using plan::OpKind;
  r.add(OpKind::Embedding, DeviceKind::CPU, cpuops::embedding);
  r.add(OpKind::RmsNorm, DeviceKind::CPU, cpuops::rmsNorm);
  r.add(OpKind::Linear, DeviceKind::CPU, cpuops::linear);
  r.add(OpKind::Rope, DeviceKind::CPU, cpuops::rope);
  r.add(OpKind::Attention, DeviceKind::CPU, cpuops::attention);
  r.add(OpKind::MlaAttention, DeviceKind::CPU, cpuops::mlaAttention);
  r.add(OpKind::Moe, DeviceKind::CPU, cpuops::moe);
  r.add(OpKind::Mlp, DeviceKind::CPU, cpuops::mlp);
  r.add(OpKind::Swiglu, DeviceKind::CPU, cpuops::swiglu);
  r.add(OpKind::Add, DeviceKind::CPU, cpuops::add);
  r.add(OpKind::LmHead, DeviceKind::CPU, cpuops::lmHead);
  r.add(OpKind::Tap, DeviceKind::CPU, cpuops::tap);
}

} // namespace kt
