// kt-rt serve: the OpenAI-compatible HTTP API (runtime/serve) over one plan.
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/serve/OpenAiApi.h"
#include "runtime/support/Error.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"
#include "tools/kt-rt/SamplingFlags.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>

namespace kt::cli {

namespace {

std::atomic<bool> gStop{false};
void onSignal(int) {
  gStop = true;
}

} // namespace

int cmdServe(int argc, char** argv) {
  Args args(argc, argv, 2,
            samplingFlags({"--host", "--port", "-n", "--max-new-tokens", "--threads", "--numa",
                           "--model-name"}),
            {});
  if (args.positional().size() != 1) {
    std::fprintf(stderr,
                 "usage: kt-rt serve PLAN [--host 127.0.0.1] [--port 8000] [--model-name NAME] "
                 "[-n 256] [sampling defaults]\n"
                 "  POST /v1/completions, POST /v1/chat/completions (\"stream\": true for "
                 "server-sent events), GET /v1/models, GET /health; one request at a time\n%s",
                 kSamplingHelp);
    return 2;
  }
  const std::string planPath = args.positional()[0];
  const int64_t port = args.getInt("--port", 8000);
  if (port < 0 || port > 65535)
    throw Error("--port must be in 0..65535 (0: any free port)");
  serve::ApiOptions o;
  o.modelName = args.get("--model-name", std::filesystem::path(planPath).stem().string());
  o.defaultMaxTokens = int(args.getInt("-n", args.getInt("--max-new-tokens", 256)));
  if (o.defaultMaxTokens < 1)
    throw Error("-n must be >= 1");
  o.defaultSampling = parseSampling(args, 1.0); // a request's own fields override these
  o.stop = &gStop;                              // Ctrl-C also ends a request in progress
  Model model(planPath, int(args.getInt("--threads", 0)), args.get("--numa", "auto"));
  auto tok = planTokenizer(model.plan());
  serve::OpenAiApi api(model, *tok, o);
  serve::HttpServer server(args.get("--host", "127.0.0.1"), int(port));
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::fprintf(stderr,
               "[kt-rt serve] %s (%s, %lld positions) on http://%s:%d/v1 as model '%s'; Ctrl-C "
               "stops\n",
               planPath.c_str(), model.info().arch()->c_str(),
               (long long)model.info().max_position(), args.get("--host", "127.0.0.1").c_str(),
               server.port(), o.modelName.c_str());
  server.run([&](const serve::HttpRequest& r, serve::HttpResponder& out) { api.handle(r, out); },
             gStop);
  std::fprintf(stderr, "[kt-rt serve] stopped\n");
  return 0;
}

} // namespace kt::cli
