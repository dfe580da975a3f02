#include "runtime/train/Trainer.h"

#include "runtime/exec/WeightStore.h"
#include "runtime/io/MappedFile.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/Error.h"
#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/train/TrainExecutor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

namespace kt::train {

namespace {

const char* kStateFile = "trainer_state.json";
const char* kOptimizerFile = "optimizer.safetensors";

std::string duration(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  return buf;
}

std::vector<std::string>
strings(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (v)
    for (const flatbuffers::String* s : *v)
      out.push_back(s->str());
  return out;
}

} // namespace

int64_t peakRssBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_maxrss) * 1024;
}

Trainer::Trainer(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
                 const tok::Tokenizer* tokenizer, TrainOptions options)
    : plan_(plan), weights_(weights), pool_(pool), tokenizer_(tokenizer), opt_(std::move(options)) {
  if (opt_.batch < 1 || opt_.gradAccum < 1)
    throw Error("--batch and --grad-accum must be at least 1");
  if (opt_.steps <= 0 && opt_.epochs < 1)
    throw Error("--epochs must be at least 1 (or give --steps)");
  if (opt_.outDir.empty())
    throw Error("--out ADAPTER_DIR is required");
  if (opt_.maxSeqLen > plan.root().model()->max_position())
    throw Error("--max-seq-len " + std::to_string(opt_.maxSeqLen) +
                " exceeds the model's maximum position " +
                std::to_string(plan.root().model()->max_position()));
  adapters_ = std::make_unique<AdapterSet>(plan.root());
  if (adapters_->size() == 0)
    throw Error(plan.origin() + ": plan has no LoRA adapters (compile it with --train lora)");
  exec_ = std::make_unique<TrainExecutor>(plan, weights, pool, *adapters_);

  // Optimizer: the plan's defaults, overridden by flags.
  adamw_ = exec_->planOptimizer();
  if (opt_.lr)
    adamw_.lr = *opt_.lr;
  if (opt_.beta1)
    adamw_.beta1 = *opt_.beta1;
  if (opt_.beta2)
    adamw_.beta2 = *opt_.beta2;
  if (opt_.eps)
    adamw_.eps = *opt_.eps;
  if (opt_.weightDecay)
    adamw_.weightDecay = *opt_.weightDecay;
  if (opt_.clip)
    adamw_.maxGradNorm = *opt_.clip;
  if (!(adamw_.lr >= 0) || !(adamw_.beta1 >= 0 && adamw_.beta1 < 1) ||
      !(adamw_.beta2 >= 0 && adamw_.beta2 < 1) || !(adamw_.eps > 0) || adamw_.maxGradNorm < 0)
    throw Error("optimizer settings out of range (lr >= 0, 0 <= betas < 1, eps > 0, clip >= 0)");

  const plan::Training* tr = plan.root().training();
  peftInfo_.r = tr ? tr->r() : (*adapters_)[0].r;
  peftInfo_.alpha = tr ? tr->alpha() : (*adapters_)[0].alpha;
  peftInfo_.targetModules = tr ? strings(tr->target_modules()) : std::vector<std::string>{};
  peftInfo_.targetParameters = tr ? strings(tr->target_parameters()) : std::vector<std::string>{};
  if (plan.root().model()->source())
    peftInfo_.baseModel = plan.root().model()->source()->str();

  // Initial adapter values.
  if (!opt_.resumeDir.empty()) {
    peftInfo_.templateJson = loadPeftAdapter(opt_.resumeDir, *adapters_);
    loadOptimizerState(opt_.resumeDir + "/" + kOptimizerFile, *adapters_);
    const std::string statePath = opt_.resumeDir + "/" + kStateFile;
    nlohmann::json st = nlohmann::json::parse(readTextFile(statePath), nullptr, false);
    if (!st.is_object() || !st.contains("step") || !st["step"].is_number_integer())
      throw Error(statePath + ": missing or invalid \"step\"");
    startStep_ = st["step"].get<int64_t>();
  } else if (!opt_.initAdapterDir.empty()) {
    peftInfo_.templateJson = loadPeftAdapter(opt_.initAdapterDir, *adapters_);
  } else if (adapters_->initFromPlan(plan.root(), weights) < int(adapters_->size())) {
    adapters_->initPeft(opt_.seed);
    adapters_->initFromPlan(plan.root(), weights);
  }

  // Data.
  std::vector<Example> examples =
      loadJsonl(opt_.dataPath, tokenizer, plan.root().model()->vocab_size());
  RowStats st;
  rows_ = makeRows(examples, opt_.maxSeqLen, opt_.pack, &st);
  if (rows_.empty())
    throw Error(opt_.dataPath + ": no rows with at least 2 tokens");
  if (!opt_.quiet) {
    std::fprintf(stderr,
                 "[train] %s: %lld examples -> %lld rows of <= %lld tokens (%lld tokens, %lld "
                 "with loss)\n",
                 opt_.dataPath.c_str(), (long long)st.examples, (long long)st.rows,
                 (long long)opt_.maxSeqLen, (long long)st.tokens, (long long)st.lossTokens);
    if (st.truncated)
      std::fprintf(stderr,
                   "[train] warning: %lld examples longer than --max-seq-len were truncated (%lld "
                   "tokens dropped)\n",
                   (long long)st.truncated, (long long)st.droppedTokens);
  }
  microsPerEpoch_ = (int64_t(rows_.size()) + opt_.batch - 1) / opt_.batch;
  if (opt_.steps > 0) {
    totalSteps_ = opt_.steps;
    totalMicros_ = totalSteps_ * opt_.gradAccum;
  } else {
    totalMicros_ = opt_.epochs * microsPerEpoch_;
    totalSteps_ = (totalMicros_ + opt_.gradAccum - 1) / opt_.gradAccum;
  }
  if (startStep_ > totalSteps_)
    throw Error(opt_.resumeDir + ": checkpoint is at step " + std::to_string(startStep_) +
                ", beyond this run's " + std::to_string(totalSteps_) + " steps");
}

Trainer::~Trainer() = default;

TrainBatch Trainer::microBatch(int64_t index) const {
  const int64_t epoch = index / microsPerEpoch_, within = index % microsPerEpoch_;
  std::vector<size_t> order = epochOrder(rows_.size(), opt_.seed, epoch, opt_.shuffle);
  std::vector<size_t> which;
  for (int64_t i = within * opt_.batch;
       i < std::min<int64_t>((within + 1) * opt_.batch, int64_t(rows_.size())); ++i)
    which.push_back(order[size_t(i)]);
  int32_t pad = tokenizer_ && tokenizer_->eosId() >= 0 ? tokenizer_->eosId() : 0;
  return makeBatch(rows_, which, pad);
}

void Trainer::saveCheckpoint(const std::string& dir, int64_t step) const {
  savePeftAdapter(dir, *adapters_, peftInfo_);
  saveOptimizerState(dir + "/" + kOptimizerFile, *adapters_);
  nlohmann::json st = {{"step", step},          {"total_steps", totalSteps_},
                       {"seed", opt_.seed},     {"rows", rows_.size()},
                       {"data", opt_.dataPath}, {"plan", plan_.origin()}};
  std::ofstream out(dir + "/" + kStateFile, std::ios::trunc);
  out << st.dump(2) << "\n";
  if (!out)
    throw Error("cannot write " + dir + "/" + kStateFile);
}

// Time per op kind over the whole run, largest first, as ms per trained token and share of the
// run: the forward kinds, their *_grad backward kinds (which recompute the op's forward inside)
// and the optimizer update.
void Trainer::printProfile(double optimizerSeconds, const TrainSummary& sum) const {
  std::vector<std::pair<std::string, TrainExecutor::OpTime>> rows(exec_->profile().begin(),
                                                                  exec_->profile().end());
  rows.push_back({"adamw (optimizer update)", {optimizerSeconds, sum.steps}});
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  const double tokens = double(std::max<int64_t>(sum.tokens, 1));
  std::fprintf(stderr, "[train] profile (%lld tokens, %.2f s):\n", (long long)sum.tokens,
               sum.seconds);
  std::fprintf(stderr, "  %-26s %8s %10s %10s %7s\n", "op", "calls", "seconds", "ms/token",
               "share");
  for (const auto& [name, t] : rows)
    std::fprintf(stderr, "  %-26s %8lld %10.3f %10.3f %6.1f%%\n", name.c_str(), (long long)t.calls,
                 t.seconds, 1e3 * t.seconds / tokens,
                 100.0 * t.seconds / std::max(sum.seconds, 1e-9));
}

TrainSummary Trainer::run() {
  std::unique_ptr<std::ofstream> log;
  if (!opt_.logJson.empty()) {
    log = std::make_unique<std::ofstream>(opt_.logJson,
                                          startStep_ > 0 ? std::ios::app : std::ios::trunc);
    if (!*log)
      throw Error("cannot write --log-json file '" + opt_.logJson + "'");
  }
  if (!opt_.quiet)
    std::fprintf(stderr,
                 "[train] %zu adapters, %lld trainable parameters; %lld optimizer steps of %lld x "
                 "%lld rows; lr %.3g (%s, warmup %lld), clip %g%s\n",
                 adapters_->size(), (long long)adapters_->numParameters(), (long long)totalSteps_,
                 (long long)opt_.gradAccum, (long long)opt_.batch, adamw_.lr,
                 opt_.schedule == Schedule::Cosine ? "cosine" : "constant", (long long)opt_.warmup,
                 adamw_.maxGradNorm,
                 startStep_ ? (", resuming at step " + std::to_string(startStep_)).c_str() : "");
  if (!opt_.quiet)
    std::fprintf(stderr, "[train] steps run on %s\n", exec_->placement().c_str());
  TrainSummary sum;
  exec_->enableProfile(opt_.profile);
  double optimizerSeconds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = startStep_; step < totalSteps_; ++step) {
    const auto ts = std::chrono::steady_clock::now();
    std::vector<TrainBatch> micro;
    int64_t predicted = 0, tokens = 0;
    for (int64_t m = step * opt_.gradAccum; m < std::min((step + 1) * opt_.gradAccum, totalMicros_);
         ++m) {
      micro.push_back(microBatch(m));
      predicted += micro.back().predicted;
      tokens += micro.back().tokens;
    }
    adapters_->zeroGrad();
    LossSum loss;
    if (predicted > 0)
      for (const TrainBatch& b : micro) {
        LossSum l = exec_->accumulate(b, predicted);
        loss.sum += l.sum;
        loss.count += l.count;
      }
    if (predicted == 0 && !opt_.quiet)
      std::fprintf(stderr,
                   "[train] warning: step %lld has no token with a loss (every label ignored); "
                   "no update\n",
                   (long long)(step + 1));
    StepRecord rec;
    rec.step = step + 1;
    rec.loss = loss.count ? loss.sum / double(loss.count) : 0.0;
    rec.gradNorm = adapters_->gradNorm();
    const double clip = clipFactor(rec.gradNorm, adamw_.maxGradNorm);
    if (clip < 1.0)
      adapters_->scaleGrad(clip);
    rec.lr = scheduledLr(opt_.schedule, adamw_.lr, step, opt_.warmup, totalSteps_);
    const auto tu = std::chrono::steady_clock::now();
    if (predicted > 0)
      adapters_->adamw(adamw_, rec.lr, step + 1);
    optimizerSeconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - tu).count();
    if (!std::isfinite(rec.loss) || !std::isfinite(rec.gradNorm))
      throw Error("training diverged at step " + std::to_string(step + 1) + " (loss " +
                  std::to_string(rec.loss) + ", gradient norm " + std::to_string(rec.gradNorm) +
                  "); try a lower --lr or --clip 1");
    const auto now = std::chrono::steady_clock::now();
    rec.seconds = std::chrono::duration<double>(now - ts).count();
    rec.tokens = tokens;
    rec.predicted = predicted;
    sum.tokens += tokens;
    sum.steps++;
    if (sum.steps == 1)
      sum.firstLoss = rec.loss;
    sum.lastLoss = rec.loss;
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const double tokS = double(sum.tokens) / std::max(elapsed, 1e-9);
    if (log) {
      nlohmann::json j = {
          {"step", rec.step},          {"loss", rec.loss},     {"lr", rec.lr},
          {"grad_norm", rec.gradNorm}, {"tokens", rec.tokens}, {"predicted", rec.predicted},
          {"seconds", rec.seconds},    {"tokens_per_s", tokS}, {"elapsed_s", elapsed}};
      if (const TrainDevice* d = exec_->device()) {
        const TrainDeviceMemory m = d->memory();
        j["gpu"] = {{"device", m.device},
                    {"weight_bytes", m.weightBytes},
                    {"adapter_bytes", m.adapterBytes},
                    {"activation_bytes", m.activationBytes},
                    {"scratch_bytes", m.scratchBytes},
                    {"peak_bytes", m.peakBytes}};
      }
      *log << j.dump() << "\n";
      log->flush();
    }
    if (!opt_.quiet) {
      const double eta = elapsed / double(sum.steps) * double(totalSteps_ - step - 1);
      std::fprintf(stderr,
                   "[train] step %lld/%lld  loss %.4f  lr %.3e  grad-norm %.3f  %.0f tok/s  "
                   "elapsed %s  ETA %s\n",
                   (long long)rec.step, (long long)totalSteps_, rec.loss, rec.lr, rec.gradNorm,
                   tokS, duration(elapsed).c_str(), duration(eta).c_str());
    }
    if (opt_.saveEvery > 0 && rec.step % opt_.saveEvery == 0 && rec.step < totalSteps_) {
      const std::string dir = opt_.outDir + "/checkpoint-" + std::to_string(rec.step);
      saveCheckpoint(dir, rec.step);
      if (!opt_.quiet)
        std::fprintf(stderr, "[train] checkpoint %s\n", dir.c_str());
    }
  }
  saveCheckpoint(opt_.outDir, totalSteps_);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.peakRssBytes = peakRssBytes();
  if (!opt_.quiet)
    std::fprintf(stderr,
                 "[train] done: %lld steps, %lld tokens in %s (%.0f tok/s), loss %.4f -> %.4f, "
                 "peak RSS %.0f MiB; adapter in %s\n",
                 (long long)sum.steps, (long long)sum.tokens, duration(sum.seconds).c_str(),
                 double(sum.tokens) / std::max(sum.seconds, 1e-9), sum.firstLoss, sum.lastLoss,
                 double(sum.peakRssBytes) / (1 << 20), opt_.outDir.c_str());
  if (const TrainDevice* d = exec_->device()) {
    const TrainDeviceMemory m = d->memory();
    sum.peakGpuBytes = int64_t(m.peakBytes);
    if (!opt_.quiet)
      std::fprintf(stderr,
                   "[train] GPU %s: peak %.0f MiB = weights %.0f (f32) + adapters %.1f + "
                   "activations %.1f + scratch %.1f MiB (cuBLAS's own workspace not counted)\n",
                   m.device.c_str(), double(m.peakBytes) / (1 << 20),
                   double(m.weightBytes) / (1 << 20), double(m.adapterBytes) / (1 << 20),
                   double(m.activationBytes) / (1 << 20), double(m.scratchBytes) / (1 << 20));
  }
  if (opt_.profile)
    printProfile(optimizerSeconds, sum);
  return sum;
}

} // namespace kt::train
