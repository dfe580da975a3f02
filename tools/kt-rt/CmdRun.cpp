// kt-rt run (one prompt, streamed) and kt-rt chat (interactive, multi-turn).
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/generate/Session.h"
#include "runtime/generate/TextStream.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"
#include "tools/kt-rt/SamplingFlags.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace kt::cli {

namespace {

std::atomic<bool> gInterrupted{false};
void onSigint(int) {
  gInterrupted = true;
}

void installSigint() {
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; // no SA_RESTART: a blocked read returns so the prompt loop can exit
  sigaction(SIGINT, &sa, nullptr);
}

// Decoded text to stdout as it is produced.
void printText(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void summary(const TurnStats& st) {
  std::fprintf(stderr,
               "\n[%lld prompt tokens (%lld cached), prefill %.1f tok/s, %lld new tokens, decode "
               "%.1f tok/s%s]\n",
               (long long)st.promptTokens, (long long)st.reusedTokens, st.prefillTokPerSec(),
               (long long)st.newTokens, st.decodeTokPerSec(),
               st.cancelled      ? ", interrupted"
               : st.stoppedByEos ? ", end of text"
                                 : "");
}

SessionLimits limitsFrom(const Args& args, const Model& model, const tok::Tokenizer& tok) {
  SessionLimits l;
  l.maxNewTokens = int(args.getInt("-n", args.getInt("--max-new-tokens", 256)));
  if (l.maxNewTokens < 1)
    throw Error("-n must be >= 1");
  if (!args.has("--ignore-eos")) {
    l.stopIds = tok.stopIds();
    if (model.info().eos_ids())
      for (int id : *model.info().eos_ids())
        l.stopIds.push_back(id);
  }
  return l;
}

const std::set<std::string> kTextFlags = {"-n",       "--max-new-tokens", "--threads", "--numa",
                                          "--system", "--stop",           "-p",        "--prompt"};

} // namespace

int cmdRun(int argc, char** argv) {
  Args args(argc, argv, 2, samplingFlags(kTextFlags), {"--chat", "--ignore-eos"});
  if (args.positional().size() != 1 || !(args.has("-p") || args.has("--prompt"))) {
    std::fprintf(stderr,
                 "usage: kt-rt run PLAN -p TEXT [-n 256] [--chat [--system S]] [--stop STR ...] "
                 "[--ignore-eos]\n%s",
                 kSamplingHelp);
    return 2;
  }
  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  auto tok = planTokenizer(model.plan());
  std::string prompt = args.has("-p") ? args.get("-p") : args.get("--prompt");
  std::vector<int32_t> ids;
  if (args.has("--chat")) {
    std::vector<tok::ChatMessage> msgs;
    if (args.has("--system"))
      msgs.push_back({"system", args.get("--system")});
    msgs.push_back({"user", prompt});
    ids = tok->encodeChat(msgs, true);
  } else {
    ids = tok->encode(prompt, /*addSpecial=*/true);
    std::fputs(prompt.c_str(), stdout); // completion mode: the reply continues the prompt
  }
  Sampler sampler(parseSampling(args, 0.0));
  Session session(model);
  installSigint();
  TextStream out(*tok, ids, args.all("--stop"), printText);
  TurnStats st = session.generate(
      ids, limitsFrom(args, model, *tok), sampler, [&](int32_t id) { return out.push(id); },
      [] { return gInterrupted.load(); });
  out.finish();
  summary(st);
  if (model.backend()) // GPU plans: what the GPU holds after the run
    std::fprintf(stderr, "[%s]\n", model.backend()->summary().c_str());
  return 0;
}

int cmdChat(int argc, char** argv) {
  Args args(argc, argv, 2, samplingFlags(kTextFlags), {"--ignore-eos"});
  if (args.positional().size() != 1) {
    std::fprintf(stderr, "usage: kt-rt chat PLAN [-n 256] [--system S] [--stop STR ...]\n%s",
                 kSamplingHelp);
    return 2;
  }
  Model model(args.positional()[0], int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  auto tok = planTokenizer(model.plan());
  // Chat models sample by default; greedy (--temperature 0) stays available.
  Sampler sampler(parseSampling(args, 0.7));
  SessionLimits limits = limitsFrom(args, model, *tok);
  Session session(model);
  installSigint();
  const bool templated = tok->hasChatTemplate();
  const bool tty = isatty(STDIN_FILENO);
  std::fprintf(stderr,
               "[kt-rt chat: %s, %s; Ctrl-C stops a reply, Ctrl-D or Ctrl-C at the prompt quits]\n",
               model.info().arch()->c_str(),
               templated ? ("chat template: " + tok->chatFamily()).c_str()
                         : "no chat template: plain continuation");
  std::vector<tok::ChatMessage> msgs;
  if (args.has("--system"))
    msgs.push_back({"system", args.get("--system")});
  std::string transcript; // plain mode: the running text
  for (;;) {
    if (tty)
      std::fprintf(stderr, "> ");
    std::string line;
    gInterrupted = false;
    if (!std::getline(std::cin, line) || gInterrupted)
      break;
    if (line.empty())
      continue;
    std::vector<int32_t> ids;
    if (templated) {
      msgs.push_back({"user", line});
      ids = tok->encodeChat(msgs, true);
    } else {
      transcript += (transcript.empty() ? "" : "\n") + line;
      ids = tok->encode(transcript, true);
    }
    TextStream out(*tok, ids, args.all("--stop"), printText);
    TurnStats st = session.generate(
        ids, limits, sampler, [&](int32_t id) { return out.push(id); },
        [] { return gInterrupted.load(); });
    out.finish();
    summary(st);
    if (templated)
      msgs.push_back({"assistant", out.text()});
    else
      transcript += out.text();
  }
  std::fprintf(stderr, "\n");
  return 0;
}

} // namespace kt::cli
