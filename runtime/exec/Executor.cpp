#include "runtime/exec/Executor.h"

#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"

#include <chrono>
#include <cstdio>

namespace kt {

std::string OpContext::where() const {
  return "step '" + (step.name() ? step.name()->str() : std::string("?")) + "'";
}

Executor::Executor(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
                   DeviceBackend* backend)
    : plan_(plan), weights_(weights), pool_(pool), backend_(backend) {
  registerCpuOps(registry_);
  if (backend_)
    backend_->registerOps(registry_);
  // Refuse a plan up front if any of its steps has no kernel here (e.g. a GPU plan on a CPU build).
  // train_step is run by kt_train's TrainExecutor (kt-rt train), not by this executor.
  for (const plan::EntryPoint* ep : *plan.root().entry_points()) {
    if (ep->name() && ep->name()->str() == "train_step")
      continue;
    // The CUDA ops have no adapter path: refuse rather than silently run the base model.
    for (const plan::Step* s : *ep->steps())
      if (LoraWeights::any(*s) &&
          plan.root().devices()->Get(s->device())->kind() != plan::DeviceKind::CPU)
        throw Error(plan.origin() + ": step '" + s->name()->str() + "' on " +
                    plan.root().devices()->Get(s->device())->name()->str() +
                    " applies unmerged LoRA adapters, which kt-rt runs on the CPU only; compile "
                    "with --adapter DIR --adapter-mode merged for GPU placements");
    for (const plan::Step* s : *ep->steps()) {
      auto kind = plan.root().devices()->Get(s->device())->kind();
      if (!registry_.find(s->op(), kind) && kind == plan::DeviceKind::GPU)
        throw Error(plan.origin() + ": plan needs a GPU (step '" + s->name()->str() + "' runs on " +
                    plan.root().devices()->Get(s->device())->name()->str() +
                    "), but this kt-rt was built without CUDA");
      if (!registry_.find(s->op(), kind))
        throw Error(plan.origin() + ": step '" + s->name()->str() + "' runs " +
                    plan::opSignature(s->op())->name + " on device '" +
                    plan.root().devices()->Get(s->device())->name()->str() +
                    "', which this kt-rt has no kernels for");
    }
  }
  if (LoraWeights::neededBy(plan))
    lora_ = std::make_unique<LoraWeights>(plan, weights);
}

Activation
Executor::run(const std::string& entry, const Batch& batch, KvCache& kv,
              const std::function<void(const std::string&, const Activation&)>* tapSink) {
  const plan::EntryPoint* ep = plan_.entryPoint(entry);
  if (!ep)
    throw Error(plan_.origin() + ": plan has no entry point '" + entry + "'");
  const plan::Plan& p = plan_.root();
  const int64_t tokens = batch.tokens();
  if (tokens == 0)
    throw Error("empty batch");
  if (int64_t(batch.positions.size()) != tokens)
    throw Error("batch: positions and ids differ in length");
  int64_t covered = 0;
  for (const SequenceChunk& c : batch.chunks) {
    if (c.slot < 0 || c.slot >= kv.numSlots())
      throw Error("batch: sequence slot " + std::to_string(c.slot) + " out of range");
    if (c.start != covered || c.len <= 0)
      throw Error("batch: sequence chunks must tile the batch in order");
    if (c.pos0 > kv.length(c.slot))
      throw Error("batch: sequence in slot " + std::to_string(c.slot) + " starts at position " +
                  std::to_string(c.pos0) + " but only " + std::to_string(kv.length(c.slot)) +
                  " positions are cached");
    if (c.pos0 + c.len > p.model()->max_position())
      throw Error("batch: sequence in slot " + std::to_string(c.slot) + " would reach position " +
                  std::to_string(c.pos0 + c.len) + ", beyond the model's maximum of " +
                  std::to_string(p.model()->max_position()));
    covered += c.len;
  }
  if (covered != tokens)
    throw Error("batch: sequence chunks cover " + std::to_string(covered) + " of " +
                std::to_string(tokens) + " tokens");
  for (int32_t id : batch.ids)
    if (id < 0 || id >= p.model()->vocab_size())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(p.model()->vocab_size() - 1) + ")");
  for (int64_t r : batch.outputRows)
    if (r < 0 || r >= tokens)
      throw Error("batch: output row " + std::to_string(r) + " out of range");

  std::vector<Activation> buffers(p.buffers()->size());
  Activation& ids = buffers[ep->inputs()->Get(0)];
  ids.i = batch.ids;
  ids.rows = tokens;
  ids.cols = 1;
  Activation& pos = buffers[ep->inputs()->Get(1)];
  pos.i = batch.positions;
  pos.rows = tokens;
  pos.cols = 1;

  if (backend_) {
    kv.listen(backend_->kvListener()); // the backend's own KV memory follows the slots' resets
    backend_->beginRun(buffers);
  }
  auto runSteps = [&] {
    for (const plan::Step* s : *ep->steps()) {
      const plan::DeviceKind kind = p.devices()->Get(s->device())->kind();
      // A step on the backend's device gets its inputs moved there (and host steps get theirs
      // back).
      const bool onBackend = backend_ && backend_->runs(kind);
      if (backend_ && !profiling_) {
        backend_->beforeStep(*s, onBackend, buffers);
      } else if (backend_) { // --profile: the moves across the link, in an entry of their own
        auto m0 = std::chrono::steady_clock::now();
        if (const size_t moved = backend_->beforeStep(*s, onBackend, buffers); moved > 0) {
          OpTime& slot = profile_[entry + (onBackend ? "/move-to-device" : "/move-to-host")];
          slot.seconds +=
              std::chrono::duration<double>(std::chrono::steady_clock::now() - m0).count();
          ++slot.calls;
          slot.bytes += double(moved);
        }
      }
      OpContext ctx{*s,         batch,   weights_, kv,
                    pool_,      buffers, tapSink,  onBackend ? backend_ : nullptr,
                    lora_.get()};
      // While profiling: the step's key, and the parts an op times on the host ("key:part").
      std::string key = profiling_ ? entry + "/" + plan::opSignature(s->op())->name : "";
      if (profiling_ && profileByLayer_ && s->layer() >= 0) {
        char layer[16];
        std::snprintf(layer, sizeof layer, "@%02d", s->layer());
        key += layer;
      }
      std::function<void(const char*, double)> partSink;
      if (profiling_) {
        partSink = [this, &key](const char* part, double secs) {
          OpTime& slot = profile_[key + ":" + part];
          slot.seconds += secs;
          ++slot.calls;
        };
        ctx.hostPart = &partSink;
      }
      OpFn fn = registry_.find(s->op(), kind);
      // A host step of a GPU plan: the GPU waits for it (kt-rt bench's GPU idle time).
      const bool gpuWaits = backend_ && !onBackend;
      if (!profiling_ && !gpuWaits) {
        fn(ctx);
        continue;
      }
      if (profiling_ && onBackend)
        backend_->timeStep(key, true); // device time too (DeviceBackend::timeStep)
      auto t0 = std::chrono::steady_clock::now();
      fn(ctx);
      if (profiling_ && onBackend)
        backend_->timeStep(key, false);
      const double dt =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (gpuWaits)
        backend_->addHostStep(dt);
      if (profiling_) {
        OpTime& slot = profile_[key];
        slot.seconds += dt;
        ++slot.calls;
      }
    }
  };
  // A backend may run the whole entry itself (CUDA graph replay of a decode step).
  const bool plain = !profiling_ && !(tapSink && *tapSink);
  if (!backend_ || !backend_->runEntry(*ep, batch, plain, buffers, runSteps))
    runSteps();
  if (backend_ && profiling_) {
    std::map<std::string, double> device;
    backend_->deviceTimes(&device);
    for (const auto& [k, secs] : device)
      profile_[k].deviceSeconds += secs;
  }
  if (backend_)
    backend_->toHost(ep->outputs()->Get(0), buffers);
  for (const SequenceChunk& c : batch.chunks)
    kv.setLength(c.slot, c.pos0 + c.len);
  return std::move(buffers[ep->outputs()->Get(0)]);
}

} // namespace kt
