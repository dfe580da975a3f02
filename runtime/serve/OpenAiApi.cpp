#include "runtime/serve/OpenAiApi.h"

#include "runtime/generate/TextStream.h"
#include "runtime/support/Error.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>

namespace kt::serve {

using nlohmann::json;

namespace {

// Invalid UTF-8 (a client's bytes quoted in an error message) is replaced, not thrown on.
std::string dumped(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A request the client got wrong: answered with 400 and this message (naming `param`).
struct BadRequest {
  std::string message, param;
};

void sendError(HttpResponder& out, int status, const std::string& message,
               const std::string& param = "") {
  out.send(status, "application/json", errorBody(status, message, param));
}

// The value of optional field `name` as a number in [lo, hi], else `fallback`.
double number(const json& body, const char* name, double fallback, double lo, double hi) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return fallback;
  if (!it->is_number())
    throw BadRequest{std::string(name) + " must be a number", name};
  double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    throw BadRequest{std::string(name) + " must be in [" + json(lo).dump() + ", " +
                         json(hi).dump() + "], got " + it->dump(),
                     name};
  return v;
}

int64_t integer(const json& body, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return fallback;
  if (!it->is_number_integer())
    throw BadRequest{std::string(name) + " must be an integer", name};
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    throw BadRequest{std::string(name) + " must be in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "], got " + std::to_string(v),
                     name};
  return v;
}

bool flag(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return false;
  if (!it->is_boolean())
    throw BadRequest{std::string(name) + " must be true or false", name};
  return it->get<bool>();
}

std::vector<std::string> stops(const json& body) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null())
    return {};
  if (it->is_string())
    return {it->get<std::string>()};
  std::vector<std::string> out;
  if (it->is_array())
    for (const json& s : *it) {
      if (!s.is_string())
        throw BadRequest{"stop must be a string or an array of strings", "stop"};
      out.push_back(s.get<std::string>());
    }
  else
    throw BadRequest{"stop must be a string or an array of strings", "stop"};
  return out;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content(const json& m, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null())
    return "";
  if (it->is_string())
    return it->get<std::string>();
  if (!it->is_array())
    throw BadRequest{where + " must be a string or an array of text parts", where};
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      throw BadRequest{where + ": only text parts ({\"type\": \"text\", \"text\": ...}) are "
                               "supported",
                       where};
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<tok::ChatMessage> messages(const json& body) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty())
    throw BadRequest{"messages must be a non-empty array of {role, content}", "messages"};
  std::vector<tok::ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw BadRequest{where + " must be an object with a string role", where + ".role"};
    std::string role = m["role"].get<std::string>();
    if (role == "developer") // OpenAI's newer name for the system role
      role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw BadRequest{where + ".role must be system, user or assistant, got '" + role + "'",
                       where + ".role"};
    out.push_back({role, content(m, i)});
  }
  return out;
}

std::vector<int32_t> promptIds(const json& body, const tok::Tokenizer& tok, int64_t vocab) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null())
    throw BadRequest{"prompt is required", "prompt"};
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string())
    p = &(*p)[0]; // ["text"]: one prompt
  if (p->is_string())
    return tok.encode(p->get<std::string>(), /*addSpecial=*/true);
  if (p->is_array() && !p->empty() &&
      std::all_of(p->begin(), p->end(), [](const json& v) { return v.is_number_integer(); })) {
    std::vector<int32_t> ids;
    for (const json& v : *p) {
      int64_t id = v.get<int64_t>();
      if (id < 0 || id >= vocab)
        throw BadRequest{"prompt token id " + std::to_string(id) +
                             " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")",
                         "prompt"};
      ids.push_back(int32_t(id));
    }
    return ids;
  }
  throw BadRequest{"prompt must be a string, an array of one string or an array of token ids "
                   "(one prompt per request)",
                   "prompt"};
}

SamplerConfig sampling(const json& body, const SamplerConfig& d) {
  SamplerConfig s = d;
  s.temperature = number(body, "temperature", d.temperature, 0, 2);
  s.topP = number(body, "top_p", d.topP, 1e-9, 1);
  s.topK = int(integer(body, "top_k", d.topK, 0, 1 << 30));
  s.minP = number(body, "min_p", d.minP, 0, 1);
  s.repetitionPenalty = number(body, "repetition_penalty", d.repetitionPenalty, 1e-6, 100);
  s.seed = uint64_t(integer(body, "seed", int64_t(d.seed), INT64_MIN, INT64_MAX));
  return s;
}

std::string sse(const json& j) {
  return "data: " + dumped(j) + "\n\n";
}

} // namespace

OpenAiApi::OpenAiApi(Model& model, const tok::Tokenizer& tok, ApiOptions options)
    : model_(model), tok_(tok), opt_(std::move(options)), session_(model) {}

void OpenAiApi::handle(const HttpRequest& req, HttpResponder& out) {
  const bool completions = req.path == "/v1/completions";
  const bool chat = req.path == "/v1/chat/completions";
  if (completions || chat) {
    if (req.method != "POST")
      return sendError(out, 405, req.path + " takes POST");
    return complete(req.body, chat, out);
  }
  if (req.path == "/v1/models" || req.path == "/health") {
    if (req.method != "GET")
      return sendError(out, 405, req.path + " takes GET");
    if (req.path == "/health")
      return out.send(200, "application/json", R"({"status": "ok"})");
    json m = {{"id", opt_.modelName},
              {"object", "model"},
              {"created", 0},
              {"owned_by", "kt"},
              {"max_model_len", model_.info().max_position()}};
    return out.send(200, "application/json",
                    dumped(json{{"object", "list"}, {"data", json::array({m})}}));
  }
  sendError(out, 404,
            "no route " + req.method + " " + req.path +
                " (GET /v1/models, GET /health, POST /v1/completions, POST /v1/chat/completions)");
}

void OpenAiApi::complete(const std::string& bodyText, bool chat, HttpResponder& out) {
  const auto started = std::chrono::steady_clock::now();
  json body;
  try {
    body = json::parse(bodyText);
  } catch (const json::parse_error& e) {
    return sendError(out, 400, std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!body.is_object())
    return sendError(out, 400, "the request body must be a JSON object");
  std::vector<int32_t> ids;
  SessionLimits limits;
  SamplerConfig sc;
  std::vector<std::string> stopStrings;
  bool stream = false;
  try {
    const int64_t maxPos = model_.info().max_position();
    ids = chat ? tok_.encodeChat(messages(body), /*addGenerationPrompt=*/true)
               : promptIds(body, tok_, model_.info().vocab_size());
    if (ids.empty())
      throw BadRequest{"the prompt encodes to no tokens", chat ? "messages" : "prompt"};
    const char* maxName =
        chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    limits.maxNewTokens = int(integer(body, maxName, opt_.defaultMaxTokens, 1, 1 << 30));
    if (int64_t(ids.size()) + limits.maxNewTokens > maxPos)
      throw BadRequest{"the prompt's " + std::to_string(ids.size()) + " tokens and " + maxName +
                           " = " + std::to_string(limits.maxNewTokens) + " exceed the model's " +
                           std::to_string(maxPos) + " positions",
                       maxName};
    if (integer(body, "n", 1, 1, 1) != 1) // only n = 1
      throw BadRequest{"n must be 1", "n"};
    sc = sampling(body, opt_.defaultSampling);
    stopStrings = stops(body);
    stream = flag(body, "stream");
    if (!flag(body, "ignore_eos")) { // ignore_eos: an extension (vLLM's) for benchmarks
      limits.stopIds = tok_.stopIds();
      if (model_.info().eos_ids())
        for (int id : *model_.info().eos_ids())
          limits.stopIds.push_back(id);
    }
  } catch (const BadRequest& e) {
    return sendError(out, 400, e.message, e.param);
  }

  const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(++requests_);
  const int64_t created = int64_t(std::time(nullptr));
  const char* object = chat ? "chat.completion" : "text_completion";
  // A streamed chunk carrying `text` (and the finish reason in the last one).
  auto chunk = [&](const std::string& text, const json& finish, bool first) {
    json c = {{"index", 0}, {"finish_reason", finish}};
    if (chat) {
      json delta = json::object();
      if (first)
        delta["role"] = "assistant";
      if (!text.empty() || first)
        delta["content"] = text;
      c["delta"] = delta;
    } else {
      c["text"] = text;
      c["logprobs"] = nullptr;
    }
    return json{{"id", id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", opt_.modelName},
                {"choices", json::array({c})}};
  };
  bool clientGone = false;
  if (stream) {
    clientGone = !out.beginStream("text/event-stream");
    if (chat && !clientGone)
      clientGone = !out.write(sse(chunk("", nullptr, true)));
  }
  TextStream text(tok_, ids, stopStrings, [&](const std::string& piece) {
    if (stream && !clientGone)
      clientGone = !out.write(sse(chunk(piece, nullptr, false)));
  });
  Sampler sampler(sc);
  TurnStats st;
  try {
    st = session_.generate(
        ids, limits, sampler, [&](int32_t tokenId) { return text.push(tokenId); },
        [&] { return clientGone || (opt_.stop && opt_.stop->load()); });
  } catch (const Error& e) {
    session_.reset(); // the cache may hold a half-run step
    if (!stream)
      return sendError(out, 500, std::string("generation failed: ") + e.what());
    if (!clientGone)
      out.write(sse(json{{"error", {{"message", e.what()}, {"type", "server_error"}}}}));
    return;
  }
  text.finish();
  const std::string finish =
      st.stoppedByEos || text.stopped() ? "stop" : (st.cancelled ? "cancelled" : "length");
  const json usage = {{"prompt_tokens", st.promptTokens},
                      {"completion_tokens", st.newTokens},
                      {"total_tokens", st.promptTokens + st.newTokens},
                      {"prompt_tokens_details", {{"cached_tokens", st.reusedTokens}}}};
  if (stream) {
    if (!clientGone) {
      json last = chunk("", finish, false);
      last["usage"] = usage;
      out.write(sse(last));
      out.write("data: [DONE]\n\n");
    }
  } else {
    json choice = {{"index", 0}, {"finish_reason", finish}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", text.text()}};
    else {
      choice["text"] = text.text();
      choice["logprobs"] = nullptr;
    }
    out.send(200, "application/json",
             dumped(json{{"id", id},
                         {"object", object},
                         {"created", created},
                         {"model", opt_.modelName},
                         {"choices", json::array({choice})},
                         {"usage", usage}}));
  }
  if (opt_.log)
    std::fprintf(opt_.log,
                 "[kt-rt serve] %s %s: %lld prompt tokens (%lld cached), %lld new, prefill %.1f "
                 "tok/s, decode %.1f tok/s, %s, %.2f s\n",
                 chat ? "chat" : "completion", id.c_str(), (long long)st.promptTokens,
                 (long long)st.reusedTokens, (long long)st.newTokens, st.prefillTokPerSec(),
                 st.decodeTokPerSec(), clientGone ? "client gone" : finish.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

} // namespace kt::serve
