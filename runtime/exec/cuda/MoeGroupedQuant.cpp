#include "runtime/exec/cuda/MoeGroupedQuant.h"

#include "kernels/cuda/DeviceKernels.h"
#include "runtime/exec/cuda/CudaBackend.h"

namespace kt::cudaops {

namespace {
// Scratch ids of this file (MoeGrouped.cpp uses 240..245, MoeOp.cpp 200..).
enum Scratch { kWidened = 246, kIdentity };

const char* productName(ExpertProduct p) {
  return p == ExpertProduct::Gate ? "gate" : p == ExpertProduct::Up ? "up" : "down";
}
} // namespace

ExpertStacks expertStacksOf(const GpuWeight& gate, const GpuWeight& up, const GpuWeight& down) {
  ExpertStacks w;
  w.gate = gate.data;
  w.up = up.data;
  w.down = down.data;
  w.bf16 = gate.bf16 && !gate.int8() && !gate.int4();
  w.inter = gate.rows;
  w.int8 = gate.int8();
  w.int4 = gate.int4();
  w.gateScales = gate.scales;
  w.upScales = up.scales;
  w.downScales = down.scales;
  w.gateGroups = gate.groupScales;
  w.upGroups = up.groupScales;
  w.downGroups = down.groupScales;
  return w;
}

int64_t widenedElems(const ExpertStacks& w, int64_t H, int64_t items) {
  return items * w.inter * H;
}

void attachWidening(OpContext& c, const ExpertStacks& w, int64_t H, int64_t slices,
                    GroupedScratch* s) {
  if (!widens(w) || slices <= 0)
    return;
  CudaBackend& b = backendOf(c);
  const int64_t elems = widenedElems(w, H, slices);
  s->widened = static_cast<uint16_t*>(b.scratch(kWidened, size_t(elems) * 2));
  s->widenedElems = elems;
  auto* identity = static_cast<int32_t*>(b.scratch(kIdentity, size_t(slices) * 4));
  cuda::fillSequence(identity, slices);
  s->identity = identity;
}

bool prepareStack(const ExpertStacks& w, ExpertProduct p, const GroupedChunk& g,
                  const GroupedScratch& s, ProductStack* out, std::string* err) {
  const void* stack = p == ExpertProduct::Gate ? w.gate : p == ExpertProduct::Up ? w.up : w.down;
  if (!widens(w)) {
    *out = ProductStack{stack, w.bf16, g.slots};
    return true;
  }
  // Gate and up are [inter, H] per expert, down [H, inter].
  const int64_t n = p == ExpertProduct::Down ? g.H : w.inter,
                k = p == ExpertProduct::Down ? w.inter : g.H;
  if (!s.widened || !s.identity || g.items * n * k > s.widenedElems) {
    if (err)
      *err = std::string("grouped MoE ") + productName(p) + ": " + std::to_string(g.items) +
             " widened " + (w.int8 ? "int8" : "int4") + " experts of [" + std::to_string(n) + ", " +
             std::to_string(k) + "] need " + std::to_string(g.items * n * k) +
             " bf16 weights of scratch, have " + std::to_string(s.widened ? s.widenedElems : 0);
    return false;
  }
  if (w.int8) {
    cuda::int8StackToBf16(static_cast<const int8_t*>(stack), g.slots, g.items, n * k, s.widened);
  } else {
    const uint16_t* groups = p == ExpertProduct::Gate ? w.gateGroups
                             : p == ExpertProduct::Up ? w.upGroups
                                                      : w.downGroups;
    cuda::int4StackToBf16(static_cast<const uint8_t*>(stack), groups, g.slots, g.items, n, k,
                          s.widened);
  }
  *out = ProductStack{s.widened, true, s.identity};
  return true;
}

void finishProduct(const ExpertStacks& w, ExpertProduct p, const GroupedChunk& g, float* y) {
  if (!w.int8)
    return;
  const float* scales = p == ExpertProduct::Gate ? w.gateScales
                        : p == ExpertProduct::Up ? w.upScales
                                                 : w.downScales;
  const int64_t n = p == ExpertProduct::Down ? g.H : w.inter;
  // Item i's rows: i * rowsPerItem.. (Padded) or itemRow0[i].. (Ragged); its scales: slice
  // slots[i] of the stack's (the chunk's own slots, not the widened stack's identity).
  const bool ragged = g.layout == GroupedLayout::Ragged;
  cuda::scaleColumnsStack(y, n, g.items, ragged ? 0 : g.rowsPerItem, ragged ? g.itemRow0 : nullptr,
                          g.slotRows(), scales, g.slots);
}

} // namespace kt::cudaops
