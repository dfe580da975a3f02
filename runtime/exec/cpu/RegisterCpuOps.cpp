#include "runtime/exec/cpu/CpuOps.h"

namespace kt {

void registerCpuOps(OpRegistry& r) {
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
