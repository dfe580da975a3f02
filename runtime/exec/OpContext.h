#pragma once
// What an op implementation sees while it runs one plan step: its inputs, outputs, weights by
// slot, the batch, the KV cache and the thread pool.
#include "kernels/cpu/Matrix.h"
#include "runtime/exec/Batch.h"
#include "runtime/exec/KvCache.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/schema/plan_generated.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kt {

class ThreadPool;

// An activation: row-major [rows, cols], f32 (or i32 for ids/positions).
struct Activation {
  std::vector<float> f;
  std::vector<int32_t> i;
  int64_t rows = 0, cols = 0;
  void resize(int64_t r, int64_t c) {
    rows = r;
    cols = c;
    f.assign(size_t(r * c), 0.f);
  }
};

struct OpContext {
  const plan::Step& step;
  const Batch& batch;
  const WeightStore& weights;
  KvCache& kv;
  ThreadPool& pool;
  std::vector<Activation>& buffers;
  // Called for kt.tap steps when the caller asked for intermediate values.
  const std::function<void(const std::string&, const Activation&)>* tapSink;

  Activation& in(int i) { return buffers[step.inputs()->Get(uint32_t(i))]; }
  Activation& out(int i) { return buffers[step.outputs()->Get(uint32_t(i))]; }
  bool has(int slot) const { return step.weights()->Get(uint32_t(slot)) >= 0; }
  cpu::MatrixView w(int slot) const { return weights.matrix(step.weights()->Get(uint32_t(slot))); }
  cpu::MatrixView expert(int slot, int64_t e) const {
    return weights.slice(step.weights()->Get(uint32_t(slot)), e);
  }
  std::string where() const;
};

using OpFn = void (*)(OpContext&);

// Kernels are chosen per (op, device kind): a new backend registers its own table.
class OpRegistry {
public:
  void add(plan::OpKind op, plan::DeviceKind device, OpFn fn) { fns_[{op, device}] = fn; }
  OpFn find(plan::OpKind op, plan::DeviceKind device) const {
    auto it = fns_.find({op, device});
    return it == fns_.end() ? nullptr : it->second;
  }

private:
  std::map<std::pair<plan::OpKind, plan::DeviceKind>, OpFn> fns_;
};

void registerCpuOps(OpRegistry& registry);

} // namespace kt
