#pragma once
// The LoRA training loop behind `kt-rt train`: data → rows → micro-batches, forward/backward
// through TrainExecutor, gradient accumulation, global-norm clipping, the learning-rate schedule,
// AdamW, a progress line and a JSON log per optimizer step, periodic checkpoints and the final
// adapter in PEFT's format.
//
// Determinism: the order of rows in epoch e is a function of (seed, e) only and every kernel is
// thread-count independent, so a run resumed from a checkpoint continues exactly as the
// uninterrupted run would have (same total --steps / --epochs and the same data).
#include "runtime/train/AdapterSet.h"
#include "runtime/train/Optimizer.h"
#include "runtime/train/PeftIO.h"
#include "runtime/train/TrainData.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace kt {
class LoadedPlan;
class WeightStore;
class ThreadPool;
namespace tok {
class Tokenizer;
}
} // namespace kt

namespace kt::train {

class TrainExecutor;

struct TrainOptions {
  std::string dataPath;
  std::string outDir;
  int64_t epochs = 1;
  int64_t steps = 0; // > 0: this many optimizer steps (cycling through the data), overrides epochs
  // Optimizer: unset fields take the plan's AdamWAttrs.
  std::optional<double> lr, beta1, beta2, eps, weightDecay, clip;
  Schedule schedule = Schedule::Cosine;
  int64_t warmup = 0;
  int64_t batch = 1, gradAccum = 1, maxSeqLen = 512;
  bool pack = false, shuffle = true;
  uint64_t seed = 0;
  std::string resumeDir;      // a checkpoint folder (adapter + optimizer.safetensors + state)
  std::string initAdapterDir; // start from an existing PEFT adapter
  std::string logJson;        // one JSON object per optimizer step
  int64_t saveEvery = 0;      // checkpoint every N optimizer steps into OUT/checkpoint-N
  bool quiet = false;         // no progress line
  bool profile = false;       // print the time per op kind at the end (kt-rt train --profile)
};

struct StepRecord {
  int64_t step = 0; // 1-based optimizer step
  double loss = 0;  // mean CE of the step's predicted positions, before its update
  double lr = 0, gradNorm = 0;
  int64_t tokens = 0, predicted = 0;
  double seconds = 0;
};

struct TrainSummary {
  int64_t steps = 0, tokens = 0;
  double seconds = 0;
  double firstLoss = 0, lastLoss = 0;
  int64_t peakRssBytes = 0;
  int64_t peakGpuBytes = 0; // GPU memory this process allocated at most (0: CPU-only plan)
};

class Trainer {
public:
  Trainer(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
          const tok::Tokenizer* tokenizer, TrainOptions options);
  ~Trainer();

  TrainSummary run();
  AdapterSet& adapters() { return *adapters_; }

private:
  void saveCheckpoint(const std::string& dir, int64_t step) const;
  void printProfile(double optimizerSeconds, const TrainSummary& sum) const;
  TrainBatch microBatch(int64_t index) const;

  const LoadedPlan& plan_;
  const WeightStore& weights_;
  ThreadPool& pool_;
  const tok::Tokenizer* tokenizer_;
  TrainOptions opt_;
  AdamWConfig adamw_;
  std::unique_ptr<AdapterSet> adapters_;
  std::unique_ptr<TrainExecutor> exec_;
  PeftConfigInfo peftInfo_;
  std::vector<Example> rows_;
  int64_t microsPerEpoch_ = 0, totalMicros_ = 0, totalSteps_ = 0, startStep_ = 0;
};

// Peak resident memory of this process (bytes), from getrusage.
int64_t peakRssBytes();

} // namespace kt::train
