// kt-rt train: LoRA fine-tuning of a plan compiled with `kt-compile --train lora` (runtime/train).
#include "runtime/exec/WeightStore.h"
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"
#include "runtime/train/Trainer.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <cstdio>

namespace kt::cli {

namespace {

const char* kUsage =
    "usage: kt-rt train PLAN --data FILE.jsonl --out ADAPTER_DIR [options]\n"
    "  PLAN must have a train_step entry point (kt-compile MODEL -o PLAN --train lora ...).\n"
    "  Steps the plan places on a GPU train there, MoE steps on the CPU next to the experts\n"
    "  (docs/training.md section 7); the summary and --log-json report the GPU's peak memory.\n"
    "  data: one JSON object per line: {\"text\"}, {\"messages\": [...]} (loss on assistant "
    "turns),\n"
    "        {\"instruction\", \"input\", \"output\"} (loss on output), {\"ids\": [...]}\n"
    "  --epochs N (1) | --steps N          passes over the data, or optimizer steps\n"
    "  --lr X --betas B1,B2 --eps X        AdamW (defaults: the plan's; 1e-4, 0.9,0.999, 1e-8)\n"
    "  --weight-decay X                    decoupled weight decay (plan's default: 0)\n"
    "  --schedule cosine|constant (cosine) --warmup N (0)   learning-rate schedule\n"
    "  --clip X                            global gradient-norm clipping (plan's: 1; 0 = off)\n"
    "  --batch B (1) --grad-accum K (1)    rows per micro-batch, micro-batches per step\n"
    "  --max-seq-len L (512) [--pack]      row length; --pack concatenates examples into rows\n"
    "  --no-shuffle --seed S (0)           data order (and the adapters' initial values)\n"
    "  --init-adapter DIR                  start from a PEFT adapter\n"
    "  --resume DIR                        continue from a checkpoint (same data and --steps)\n"
    "  --save-every N                      checkpoint to OUT/checkpoint-STEP every N steps\n"
    "  --log-json FILE                     one JSON object per step (loss, lr, grad_norm, ...)\n"
    "  --threads T --quiet\n"
    "  --profile                           time per op kind at the end (forward, *_grad, adamw)\n";

std::optional<double> optDouble(const Args& a, const std::string& f) {
  if (!a.has(f))
    return std::nullopt;
  return a.getDouble(f, 0);
}

} // namespace

int cmdTrain(int argc, char** argv) {
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
  Args args(argc, argv, 2,
            {"--data",   "--out",          "--epochs",       "--steps",       "--lr",
             "--betas",  "--eps",          "--weight-decay", "--schedule",    "--warmup",
             "--clip",   "--batch",        "--grad-accum",   "--max-seq-len", "--seed",
             "--resume", "--init-adapter", "--log-json",     "--save-every",  "--threads"},
            {"--pack", "--no-shuffle", "--quiet", "--profile"});
  if (args.positional().size() != 1 || !args.has("--data") || !args.has("--out")) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  if (args.has("--epochs") && args.has("--steps"))
    throw Error("give --epochs or --steps, not both");
  train::TrainOptions o;
  o.dataPath = args.get("--data");
  o.outDir = args.get("--out");
  o.epochs = args.getInt("--epochs", 1);
  o.steps = args.getInt("--steps", 0);
  if (args.has("--steps") && o.steps < 1)
    throw Error("--steps must be at least 1");
  o.lr = optDouble(args, "--lr");
  if (args.has("--betas")) {
    const std::string b = args.get("--betas");
    const size_t comma = b.find(',');
    char* e1 = nullptr;
    char* e2 = nullptr;
    if (comma == std::string::npos)
      throw Error("--betas expects B1,B2, got '" + b + "'");
    const std::string s1 = b.substr(0, comma), s2 = b.substr(comma + 1);
    o.beta1 = std::strtod(s1.c_str(), &e1);
    o.beta2 = std::strtod(s2.c_str(), &e2);
    if (s1.empty() || s2.empty() || *e1 || *e2)
      throw Error("--betas expects B1,B2, got '" + b + "'");
  }
  o.eps = optDouble(args, "--eps");
  o.weightDecay = optDouble(args, "--weight-decay");
  o.clip = optDouble(args, "--clip");
  o.schedule = train::parseSchedule(args.get("--schedule", "cosine"));
  o.warmup = args.getInt("--warmup", 0);
  o.batch = args.getInt("--batch", 1);
  o.gradAccum = args.getInt("--grad-accum", 1);
  o.maxSeqLen = args.getInt("--max-seq-len", 512);
  o.pack = args.has("--pack");
  o.shuffle = !args.has("--no-shuffle");
  o.seed = uint64_t(args.getInt("--seed", 0));
  o.resumeDir = args.get("--resume");
  o.initAdapterDir = args.get("--init-adapter");
  o.logJson = args.get("--log-json");
  o.saveEvery = args.getInt("--save-every", 0);
  o.quiet = args.has("--quiet");
  o.profile = args.has("--profile");
  if (o.warmup < 0 || o.saveEvery < 0)
    throw Error("--warmup and --save-every must not be negative");
  if (!o.resumeDir.empty() && !o.initAdapterDir.empty())
    throw Error("give --resume or --init-adapter, not both");

  LoadedPlan plan = LoadedPlan::fromFile(args.positional()[0]);
  WeightStore weights(plan);
  const int threads = int(args.getInt("--threads", 0));
  ThreadPool pool(threads > 0 ? threads : hardwareThreads());
  std::unique_ptr<tok::Tokenizer> tokenizer;
  if (plan.root().tokenizer())
    tokenizer = planTokenizer(plan);
  train::Trainer trainer(plan, weights, pool, tokenizer.get(), o);
  trainer.run();
  return 0;
}

} // namespace kt::cli
