// kt-rt: the KT runtime. Loads a plan written by kt-compile and runs it. Links no MLIR/LLVM.
#include "tools/kt-rt/Commands.h"

#include "runtime/support/Error.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"run", kt::cli::cmdRun,
     "PLAN -p TEXT [-n N] [--chat] [sampling]   stream a continuation (or a chat reply)"},
    {"chat", kt::cli::cmdChat, "PLAN [--system S] [sampling]   interactive multi-turn chat"},
    {"serve", kt::cli::cmdServe,
     "PLAN [--host H] [--port 8000] [-n N] [sampling]   OpenAI-compatible HTTP server"},
    {"inspect", kt::cli::cmdInspect, "PLAN [--steps] [--weights]   print a plan's contents"},
    {"score", kt::cli::cmdScore,
     "PLAN --ids 1,2,3 [--ids ...] --out F.safetensors [--dump-hidden]   logits of whole "
     "sequences"},
    {"tokenize", kt::cli::cmdTokenize,
     "(PLAN | --tokenizer F) (--text S | --text-file F) [--special]   ids as JSON"},
    {"detokenize", kt::cli::cmdDetokenize,
     "(PLAN | --tokenizer F) --ids 1,2,3 [--skip-special]   text of ids"},
    {"perplexity", kt::cli::cmdPerplexity,
     "PLAN --text-file F [--ctx 512] [--max-tokens N]   loss and perplexity"},
    {"bench", kt::cli::cmdBench,
     "PLAN [--prompt-len 128] [--gen-len 32] [--batch B] [--json] [--profile[-layers]]   speed "
     "vs roofline"},
    {"probe", kt::cli::cmdProbe,
     "[-o hw.json] [--quick] [--threads N] [--no-gpu]   measure this machine into a hardware "
     "profile"},
    {"train", kt::cli::cmdTrain,
     "PLAN --data F.jsonl --out DIR [--steps N] [...]   LoRA fine-tuning (train --help)"},
    {"pack", kt::cli::cmdPack,
     "PLAN [--threads N] [--force]   rebuild PLAN.weights (packed sidecar) from the checkpoint"},
    {"devices", kt::cli::cmdDevices,
     "   list CPUs (NUMA nodes, ISA), GPUs and NPUs this kt-rt can use"},
    {"generate", kt::cli::cmdGenerate,
     "PLAN --ids 1,2,3 [--ids ...] -n N [--temperature T] [--json]   decode with the KV cache"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: kt-rt <command> [args]\n\ncommands:\n");
  for (const Command& c : kCommands)
    std::fprintf(out, "  %-10s %s\n", c.name, c.help);
  std::fprintf(out, "\ncommon flags (run, chat, generate, score, perplexity, bench): --threads N "
                    "(default: all cores), --numa auto|off|N (auto: one pinned worker group per "
                    "NUMA node, routed experts split over the nodes)\n");
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0)
      continue;
    try {
      return c.run(argc, argv);
    } catch (const kt::Error& e) {
      std::fprintf(stderr, "kt-rt %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "kt-rt %s: error: out of memory\n", c.name);
      return 1;
    }
  }
  std::fprintf(stderr, "kt-rt: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
