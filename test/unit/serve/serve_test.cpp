// kt-rt serve's OpenAI-compatible API over HTTP, in process on a free port: the bundled demo
// model's greedy completions equal its reference texts (examples/austen-moe/reference.json, the
// same texts kt-rt run must print), streamed or not; chat turns reuse the cached prefix; bad
// requests get a 400 naming the field; a client that leaves mid-stream does not stop the server.
#include "runtime/generate/PlanTokenizer.h"
#include "runtime/serve/OpenAiApi.h"

#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace kt;
using nlohmann::json;

namespace {

struct Reply {
  int status = 0;
  std::string headers, body;
};

// Sends raw bytes to 127.0.0.1:port and reads until the server closes the connection (every
// response closes it). `readBytes` > 0: hang up after that many bytes instead.
Reply roundTrip(int port, const std::string& raw, size_t readBytes = 0) {
  Reply r;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return r;
  }
  send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
    all.append(buf, size_t(n));
    if (readBytes && all.size() >= readBytes)
      break;
  }
  close(fd);
  size_t end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/1.1 ", 0) == 0)
    r.status = std::atoi(all.c_str() + 9);
  r.headers = all.substr(0, end);
  r.body = end == std::string::npos ? "" : all.substr(end + 4);
  return r;
}

Reply post(int port, const std::string& path, const std::string& body) {
  return roundTrip(port, "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json" +
                             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                             body);
}

// The JSON objects of a server-sent event stream's "data:" lines, and whether it ended in [DONE].
std::vector<json> events(const std::string& body, bool* done) {
  std::vector<json> out;
  *done = false;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    size_t end = body.find("\n\n", at);
    std::string d = body.substr(at + 6, end - at - 6);
    if (d == "[DONE]")
      *done = true;
    else
      out.push_back(json::parse(d));
    at = end;
  }
  return out;
}

class Serve : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    const std::string dir = testing_util::tempDir("kt_serve_", "plan");
    plan_ = dir + "/austen.ktplan";
    auto r =
        testing_util::run(testing_util::kCompile + " " + kExamples + "/austen-moe -o " + plan_);
    ASSERT_EQ(r.code, 0) << r.output;
    model_ = new Model(plan_, 2, "off");
    tok_ = planTokenizer(model_->plan()).release();
    serve::ApiOptions o;
    o.modelName = "austen";
    o.log = nullptr;
    api_ = new serve::OpenAiApi(*model_, *tok_, o);
    serve::HttpLimits limits;
    limits.maxBodyBytes = 1 << 16;
    limits.readTimeoutMs = 2000;
    server_ = new serve::HttpServer("127.0.0.1", 0, limits);
    thread_ = new std::thread([] {
      server_->run([](const serve::HttpRequest& q, serve::HttpResponder& a) { api_->handle(q, a); },
                   stop_);
    });
  }
  static void TearDownTestSuite() {
    stop_ = true;
    if (thread_)
      thread_->join();
    delete thread_;
    delete server_;
    delete api_;
    delete tok_;
    delete model_;
  }
  static int port() { return server_->port(); }
  static json reference() {
    json ref;
    std::ifstream(kExamples + "/austen-moe/reference.json") >> ref;
    return ref;
  }

  inline static const std::string kExamples = KT_EXAMPLES_DIR;
  inline static std::string plan_;
  inline static Model* model_ = nullptr;
  inline static tok::Tokenizer* tok_ = nullptr;
  inline static serve::OpenAiApi* api_ = nullptr;
  inline static serve::HttpServer* server_ = nullptr;
  inline static std::thread* thread_ = nullptr;
  inline static std::atomic<bool> stop_{false};
};

TEST_F(Serve, GreedyCompletionsMatchTheReferenceTexts) {
  const json ref = reference();
  ASSERT_GE(ref["greedy"].size(), 2u) << "examples/austen-moe/reference.json";
  for (const json& g : ref["greedy"]) {
    const std::string prompt = g["prompt"], text = g["text"];
    const std::string want = text.substr(prompt.size()); // the reference echoes its prompt
    json req = {{"prompt", prompt}, {"max_tokens", 32}, {"temperature", 0}, {"ignore_eos", true}};
    Reply r = post(port(), "/v1/completions", req.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    json j = json::parse(r.body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["model"], "austen");
    EXPECT_EQ(j["choices"][0]["text"], want);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], g["prompt_ids"].size());
    EXPECT_EQ(j["usage"]["completion_tokens"], 32);
    EXPECT_EQ(j["usage"]["total_tokens"], g["prompt_ids"].size() + 32);

    // The same prompt as token ids, streamed: the pieces add up to the same text.
    req["prompt"] = g["prompt_ids"];
    req["stream"] = true;
    r = post(port(), "/v1/completions", req.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.headers.find("text/event-stream"), std::string::npos) << r.headers;
    bool done = false;
    std::vector<json> ev = events(r.body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(ev.size(), 2u);
    std::string joined;
    for (const json& e : ev)
      joined += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(joined, want);
    EXPECT_EQ(ev.back()["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(ev.back()["usage"]["completion_tokens"], 32);
  }
}

TEST_F(Serve, StopStringsEndTheTextAndSayStop) {
  json req = {{"prompt", "It is a truth universally acknowledged"},
              {"max_tokens", 32},
              {"temperature", 0},
              {"stop", {"impossible"}}};
  Reply r = post(port(), "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["choices"][0]["text"], ", and it is "); // as kt-rt run --stop impossible prints
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 32);
}

TEST_F(Serve, ChatTurnsReuseTheCachedPrefix) {
  json req = {
      {"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 8}, {"seed", 3}};
  Reply r = post(port(), "/v1/chat/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg["role"], "assistant");
  const int firstPrompt = j["usage"]["prompt_tokens"];
  EXPECT_EQ(firstPrompt, int(tok_->encodeChat({{"user", "Hello"}}, true).size()));
  // The next turn resends the conversation: its first turn comes from the KV cache.
  req["messages"].push_back({{"role", "assistant"}, {"content", msg["content"]}});
  req["messages"].push_back({{"role", "user"}, {"content", "How are you?"}});
  req["stream"] = true;
  r = post(port(), "/v1/chat/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  bool done = false;
  std::vector<json> ev = events(r.body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.front()["object"], "chat.completion.chunk");
  EXPECT_EQ(ev.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_GE(ev.back()["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            firstPrompt - 1);
}

TEST_F(Serve, BadRequestsNameTheFieldAtFault) {
  auto bad = [&](const std::string& path, const std::string& body, int status,
                 const std::string& param, const std::string& mention) {
    Reply r = post(port(), path, body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r.body;
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
    EXPECT_NE(j["error"]["message"].get<std::string>().find(mention), std::string::npos) << r.body;
  };
  bad("/v1/completions", "{bad", 400, "", "not valid JSON");
  bad("/v1/completions", "[1]", 400, "", "JSON object");
  bad("/v1/completions", "{}", 400, "prompt", "prompt is required");
  bad("/v1/completions", R"({"prompt": ["a", "b"]})", 400, "prompt", "one prompt per request");
  bad("/v1/completions", R"({"prompt": [1, 99999999]})", 400, "prompt", "99999999");
  bad("/v1/completions", R"({"prompt": "x", "temperature": -1})", 400, "temperature", "[0");
  bad("/v1/completions", R"({"prompt": "x", "max_tokens": 0})", 400, "max_tokens", "got 0");
  bad("/v1/completions", R"({"prompt": "x", "max_tokens": 5000})", 400, "max_tokens",
      "2048 positions");
  bad("/v1/completions", R"({"prompt": "x", "stream": "yes"})", 400, "stream", "true or false");
  bad("/v1/completions", R"({"prompt": "x", "stop": [1]})", 400, "stop", "array of strings");
  bad("/v1/completions", R"({"prompt": "x", "n": 2})", 400, "n", "[1, 1]");
  bad("/v1/chat/completions", R"({"messages": []})", 400, "messages", "non-empty");
  bad("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "hi"}]})", 400,
      "messages[0].role", "robot");
  bad("/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400,
      "messages[0].content", "text parts");
  bad("/v1/completions", "{\"prompt\": \"\xff\xfe\"}", 400, "", "not valid JSON"); // bad UTF-8
  bad("/v1/nothing", "{}", 404, "", "no route POST /v1/nothing");
  Reply r = roundTrip(port(), "GET /v1/completions HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 405) << r.body;
  r = roundTrip(port(), "garbage\r\n\r\n");
  EXPECT_EQ(r.status, 400) << r.body;
  r = roundTrip(port(), "POST /v1/completions HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n");
  EXPECT_EQ(r.status, 413) << r.body;
  // A body shorter than its Content-Length: the read times out (2 s here), 408.
  r = roundTrip(port(), "POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"prompt\"");
  EXPECT_EQ(r.status, 408) << r.body;
}

TEST_F(Serve, ModelsHealthAndAClientThatLeavesMidStream) {
  Reply r = roundTrip(port(), "GET /v1/models HTTP/1.1\r\n\r\n");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["data"][0]["id"], "austen");
  EXPECT_EQ(j["data"][0]["max_model_len"], 2048);
  r = roundTrip(port(), "GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  // Hang up after the first bytes of a long streamed completion; the server stops that request
  // and answers the next one.
  json req = {{"prompt", "Emma"}, {"max_tokens", 1000}, {"stream", true}, {"ignore_eos", true}};
  std::string body = req.dump();
  roundTrip(port(),
            "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\n\r\n" + body,
            /*readBytes=*/200);
  r = post(port(), "/v1/completions", R"({"prompt": "Emma", "max_tokens": 2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["usage"]["completion_tokens"], 2);
}

} // namespace
