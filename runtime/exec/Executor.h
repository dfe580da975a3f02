#pragma once
// Runs an entry point of a plan over a batch: allocates activations, dispatches each step to the
// kernel registered for its op and device, and returns the logits.
#include "runtime/exec/LoraWeights.h"
#include "runtime/exec/OpContext.h"
#include "runtime/plan/PlanReader.h"

#include <map>
#include <memory>

namespace kt {

class Executor {
public:
  // `backend` (optional, not owned) runs the steps placed on its device kind.
  Executor(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
           DeviceBackend* backend = nullptr);

  // Runs `entry` ("prefill" or "decode") for `batch`, appending to the KV cache. Returns logits
  // [rows, vocab] for batch.outputRows (or every token). Throws kt::Error on a bad request.
  Activation
  run(const std::string& entry, const Batch& batch, KvCache& kv,
      const std::function<void(const std::string&, const Activation&)>* tapSink = nullptr);

  // Per-op wall time, accumulated over run() calls while enabled (kt-rt bench --profile): key
  // "entry/op" (e.g. "decode/moe"). Costs two clock reads per step. Steps on a device backend
  // also get their device time (deviceSeconds; DeviceBackend::timeStep), and parts of them that
  // the backend's ops time separately appear as "entry/op:part" with device time only.
  struct OpTime {
    double seconds = 0;
    int64_t calls = 0;
    double deviceSeconds = 0;
    double bytes = 0; // the move-to-host / move-to-device entries: activation bytes moved
  };
  // `byLayer`: each decoder layer's steps apart, keyed "entry/op@LL" (kt-rt bench
  // --profile-layers: where in depth a step's time goes, e.g. routing skew that grows with depth).
  void setProfiling(bool on, bool byLayer = false) {
    profiling_ = on;
    profileByLayer_ = byLayer;
  }
  std::map<std::string, OpTime>& profile() { return profile_; }

private:
  bool profiling_ = false;
  bool profileByLayer_ = false;
  std::map<std::string, OpTime> profile_;
  const LoadedPlan& plan_;
  const WeightStore& weights_;
  ThreadPool& pool_;
  OpRegistry registry_;
  DeviceBackend* backend_ = nullptr;
  std::unique_ptr<LoraWeights> lora_; // unmerged adapters of prefill/decode steps, if any
};

} // namespace kt
