#pragma once
// A small HTTP/1.1 server for kt-rt serve: one connection at a time (the model runs one request
// at a time anyway), every response closes its connection, bodies by Content-Length, streamed
// responses (server-sent events) until the connection closes. POSIX sockets, no dependencies.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace kt::serve {

struct HttpRequest {
  std::string method, path, query;            // path without the query; query without the '?'
  std::map<std::string, std::string> headers; // names lower-cased
  std::string body;
};

// The client side of one request, for the handler to answer through.
class HttpResponder {
public:
  explicit HttpResponder(int fd) : fd_(fd) {}
  // A whole response.
  void send(int status, const std::string& contentType, const std::string& body);
  // Starts a streamed response (no length: it ends when the connection closes); then write()
  // each piece. Both return false once the client has gone away.
  bool beginStream(const std::string& contentType);
  bool write(const std::string& data);
  bool answered() const { return answered_; }

private:
  bool writeAll(const char* p, size_t n);
  int fd_;
  bool answered_ = false, broken_ = false;
};

struct HttpLimits {
  size_t maxHeaderBytes = 64 << 10;
  size_t maxBodyBytes = 16 << 20;
  int readTimeoutMs = 30000; // a client that stops sending mid-request is dropped
};

class HttpServer {
public:
  // Binds and listens on host:port (port 0: any free port); throws kt::Error naming the address.
  HttpServer(const std::string& host, int port, HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  int port() const { return port_; } // the bound port

  using Handler = std::function<void(const HttpRequest&, HttpResponder&)>;
  // Serves until `stop` becomes true (checked at least every 200 ms). Malformed requests get a
  // 400, oversized ones 413, without reaching the handler; a handler that throws gets a 500 with
  // the message (if it had not answered yet).
  void run(const Handler& handler, const std::atomic<bool>& stop);

private:
  void serveConnection(int fd, const Handler& handler);
  int listenFd_ = -1;
  int port_ = 0;
  HttpLimits limits_;
};

// "Not Found" etc. for the status codes the server uses.
const char* statusText(int status);

// An error response's body, shaped as OpenAI's (the server's own 4xx/5xx and the API's):
// {"error": {"message", "type" (not_found_error for 404, else invalid_request_error), "param"
// (null when empty), "code": null}}. Bytes of `message` that are not UTF-8 are replaced.
std::string errorBody(int status, const std::string& message, const std::string& param = "");

} // namespace kt::serve
