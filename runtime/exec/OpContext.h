#pragma once
// What an op implementation sees while it runs one plan step: its inputs, outputs, weights by
// slot, the batch, the KV cache and the thread pool.
#include "kernels/cpu/Matrix.h"
#include "runtime/exec/Batch.h"
#include "runtime/exec/KvCache.h"
#include "runtime/exec/LoraWeights.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/schema/plan_generated.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kt {

class ThreadPool;
class DeviceBackend;

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
  // The shape for an op that writes every element itself: no zero-fill (zeroing a prefill's
  // 512 x 2048 output on one thread took about as long as 16 Xeon threads then took to compute
  // it: the add, rms_norm and tap ops of the ninth device run's profiles). Elements beyond the
  // old size start at zero; the others keep stale values until written.
  void resizeForOverwrite(int64_t r, int64_t c) {
    rows = r;
    cols = c;
    f.resize(size_t(r * c));
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
  // The backend that owns the step's memory when it runs off the host (CUDA); null on the CPU.
  DeviceBackend* backend = nullptr;
  // The plan's unmerged LoRA adapters (kt-compile --adapter-unmerged); null when it has none.
  const LoraWeights* lora = nullptr;
  // While profiling (kt-rt bench --profile): adds host seconds of a part of this step, reported as
  // "entry/op:part"; null otherwise.
  const std::function<void(const char* part, double seconds)>* hostPart = nullptr;
  void timedPart(const char* part, double seconds) const {
    if (hostPart)
      (*hostPart)(part, seconds);
  }

  Activation& in(int i) { return buffers[step.inputs()->Get(uint32_t(i))]; }
  Activation& out(int i) { return buffers[step.outputs()->Get(uint32_t(i))]; }
  bool has(int slot) const { return step.weights()->Get(uint32_t(slot)) >= 0; }
  cpu::MatrixView w(int slot) const { return weights.matrix(step.weights()->Get(uint32_t(slot))); }
  cpu::MatrixView expert(int slot, int64_t e) const {
    return weights.slice(step.weights()->Get(uint32_t(slot)), e);
  }
  // The adapter on weight slot `slot` (of routed expert `expert` for stacked weights), or null.
  const cpu::grad::Lora* adapter(int slot, int64_t expert = 0) const {
    return lora ? lora->get(step, slot, expert) : nullptr;
  }
  bool hasAdapters() const { return lora && LoraWeights::any(step); }
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

// A backend with its own memory (the CUDA backend). The executor tells it where each step runs so
// that it can move the step's inputs there first, and asks for the entry's output on the host.
// Host Activations always carry every buffer's rows/cols; their vectors are stale while the
// backend holds the current value.
class DeviceBackend {
public:
  virtual ~DeviceBackend() = default;
  virtual bool runs(plan::DeviceKind kind) const = 0;
  virtual void registerOps(OpRegistry& registry) = 0;
  // Start of an entry point run: every buffer's value is on the host (the inputs) or nowhere.
  virtual void beginRun(std::vector<Activation>& buffers) = 0;
  // Before `step` runs on this backend (onBackend) or on the host: moves its inputs there.
  // Returns the bytes moved (0: every input was there already).
  virtual size_t beforeStep(const plan::Step& step, bool onBackend,
                            std::vector<Activation>& buffers) = 0;
  // Makes buffers[index] current on the host (the entry's output).
  virtual void toHost(uint32_t index, std::vector<Activation>& buffers) = 0;
  // Called once per run after beginRun, with the executor's loop over the steps as `runSteps`.
  // The backend may run the entry itself (the CUDA backend replays a captured graph of a decode
  // step) and return true; false: the executor runs the steps. `plain`: no taps and no per-op
  // profiling, so the steps need not run one by one on the host.
  virtual bool runEntry(const plan::EntryPoint& ep, const Batch& batch, bool plain,
                        std::vector<Activation>& buffers, const std::function<void()>& runSteps) {
    (void)ep, (void)batch, (void)plain, (void)buffers, (void)runSteps;
    return false;
  }
  // One line per device: what it is and the memory it uses (weights, activations, KV cache).
  virtual std::string summary() const = 0;
  // Told when a KvCache slot is reset or its KvCache destroyed (the executor attaches it to the
  // KvCache of every run): a backend that keeps KV memory per slot frees it. Null: not needed.
  virtual std::shared_ptr<KvSlotListener> kvListener() { return nullptr; }

  // Hybrid steps (a GPU step whose routed experts run on the CPU): how long the GPU sat idle
  // waiting for the CPU, summed since resetOverlap(). kt-rt bench reports it per decode token.
  // Whole host steps of a plan with GPU steps (e.g. MoE layers the partitioner kept on the CPU)
  // count too: their inputs come back by a synchronous copy, so the GPU has nothing queued while
  // they run (an upper bound when a host step does not depend on the GPU step before it).
  struct Overlap {
    double gpuIdleSeconds = 0; // host-side wait minus the GPU work queued meanwhile
    double cpuSeconds = 0;     // CPU work inside hybrid steps and in host steps
    double gpuBusySeconds = 0; // GPU work (shared / GPU-resident experts) overlapping it
    // Between two hybrid steps of one run: the host's time from the first's CPU result queued
    // back to the second's routing readback (issuing the GPU's work in between: attention, norms,
    // the router), and that readback's wait for the GPU's queue. With cpuSeconds they split a
    // hybrid decode step's wall time into host issue, GPU drain and CPU experts.
    double hostIssueSeconds = 0, readbackWaitSeconds = 0;
    int64_t hybridSteps = 0, hostSteps = 0;
    // Launches queued on the device (kernels, copies, library calls; a graph replay counts its
    // nodes) and by the host (a replay counts once), and the graph replays among them.
    int64_t deviceLaunches = 0, hostLaunches = 0, graphReplays = 0;
  };
  virtual Overlap overlap() const { return {}; }
  virtual void resetOverlap() {}
  // The executor reports each host step's wall time in a plan this backend takes part in.
  virtual void addHostStep(double seconds) { (void)seconds; }
  // Device time per step while profiling (kt-rt bench --profile): the executor brackets each of
  // the backend's steps with timeStep(key, true) / timeStep(key, false) (key "entry/op"; the ops
  // may time parts of themselves under "entry/op:part"), and after the run deviceTimes() waits for
  // the queue and adds each key's device seconds since the last call. Host wall times alone would
  // charge a GPU op that synchronizes (the MoE's routing readback) with the work queued before it,
  // and synchronizing around every op would serialize the host's launches with the GPU.
  virtual void timeStep(const std::string& key, bool start) { (void)key, (void)start; }
  virtual void deviceTimes(std::map<std::string, double>* seconds) { (void)seconds; }
};

} // namespace kt
