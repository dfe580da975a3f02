#pragma once
// The OpenAI-compatible HTTP API of kt-rt serve over one model: GET /v1/models, GET /health,
// POST /v1/completions and POST /v1/chat/completions (whole or streamed as server-sent events).
// Requests run one at a time on one Session, so a chat that resends its earlier turns only
// computes the new ones (the reused tokens are reported as usage.prompt_tokens_details
// .cached_tokens). Bad requests get a 400 whose message names the field at fault.
#include "runtime/exec/Model.h"
#include "runtime/generate/Sampler.h"
#include "runtime/generate/Session.h"
#include "runtime/serve/HttpServer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace kt::serve {

struct ApiOptions {
  std::string modelName = "kt";  // reported by /v1/models and in every response
  int defaultMaxTokens = 256;    // when a request gives no max_tokens
  SamplerConfig defaultSampling; // fields a request leaves out (temperature 1: OpenAI's default)
  FILE* log = stderr;            // one line per request (null: silent)
  // Set (e.g. by Ctrl-C) to end the request in progress at its next token; null: never.
  const std::atomic<bool>* stop = nullptr;
  ApiOptions() { defaultSampling.temperature = 1.0; }
};

class OpenAiApi {
public:
  OpenAiApi(Model& model, const tok::Tokenizer& tok, ApiOptions options);
  void handle(const HttpRequest& req, HttpResponder& out);

private:
  void complete(const std::string& body, bool chat, HttpResponder& out);

  Model& model_;
  const tok::Tokenizer& tok_;
  ApiOptions opt_;
  Session session_;
  uint64_t requests_ = 0;
};

} // namespace kt::serve
