#include "runtime/serve/HttpServer.h"

#include "runtime/support/Error.h"
#include "runtime/support/Text.h"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace kt::serve {

const char* statusText(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Payload Too Large";
  case 500:
    return "Internal Server Error";
  default:
    return "Error";
  }
}

bool HttpResponder::writeAll(const char* p, size_t n) {
  while (n > 0 && !broken_) {
    // MSG_NOSIGNAL: a client that hung up must not kill the server with SIGPIPE.
    ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      broken_ = true;
      break;
    }
    p += w;
    n -= size_t(w);
  }
  return !broken_;
}

void HttpResponder::send(int status, const std::string& contentType, const std::string& body) {
  if (answered_)
    return;
  answered_ = true;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + statusText(status) +
                     "\r\nContent-Type: " + contentType +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  if (writeAll(head.data(), head.size()))
    writeAll(body.data(), body.size());
}

bool HttpResponder::beginStream(const std::string& contentType) {
  if (answered_)
    return false;
  answered_ = true;
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: " + contentType +
                     "\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
  return writeAll(head.data(), head.size());
}

bool HttpResponder::write(const std::string& data) {
  return writeAll(data.data(), data.size());
}

HttpServer::HttpServer(const std::string& host, int port, HttpLimits limits) : limits_(limits) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0)
    throw Error("cannot resolve the address " + where + ": " + gai_strerror(rc));
  std::string why = "no address";
  for (addrinfo* a = res; a && listenFd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      listenFd_ = fd;
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      port_ = bound.ss_family == AF_INET6
                  ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                  : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(res);
  if (listenFd_ < 0)
    throw Error("cannot listen on " + where + ": " + why);
}

HttpServer::~HttpServer() {
  if (listenFd_ >= 0)
    ::close(listenFd_);
}

void HttpServer::run(const Handler& handler, const std::atomic<bool>& stop) {
  while (!stop.load()) {
    pollfd p{listenFd_, POLLIN, 0};
    int r = ::poll(&p, 1, 200);
    if (r <= 0)
      continue; // timeout (check stop) or EINTR
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); // streamed tokens go out at once
    serveConnection(fd, handler);
    ::close(fd);
  }
}

std::string errorBody(int status, const std::string& message, const std::string& param) {
  using nlohmann::json;
  json e = {{"message", message},
            {"type", status == 404 ? "not_found_error" : "invalid_request_error"},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", nullptr}};
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

void HttpServer::serveConnection(int fd, const Handler& handler) {
  HttpResponder out(fd);
  auto fail = [&](int status, const std::string& message) {
    out.send(status, "application/json", errorBody(status, message));
  };
  std::string buf;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(limits_.readTimeoutMs);
  // Appends what the client sent to `buf`, waiting at most until the request's read deadline:
  // 1 read (or nothing yet), 0 closed, -1 past the deadline.
  auto readMore = [&]() -> int {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0)
      return -1;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int(std::min<long long>(left, 1000)));
    if (r == 0 || (r < 0 && errno == EINTR))
      return 1; // nothing yet: the caller loops and the deadline decides
    if (r < 0)
      return 0;
    char chunk[16384];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0)
      return 0;
    buf.append(chunk, size_t(n));
    return 1;
  };
  size_t headerEnd;
  while ((headerEnd = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > limits_.maxHeaderBytes)
      return fail(413, "request headers larger than " + std::to_string(limits_.maxHeaderBytes) +
                           " bytes");
    int r = readMore();
    if (r == 0)
      return; // the client left before sending a request
    if (r < 0)
      return fail(408, "request headers not received within the read timeout");
  }
  HttpRequest req;
  {
    const std::string head = buf.substr(0, headerEnd);
    size_t eol = head.find("\r\n");
    const std::string line = head.substr(0, eol);
    size_t s1 = line.find(' '), s2 = line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1 || line.compare(s2 + 1, 5, "HTTP/") != 0)
      return fail(400, "malformed request line '" + line.substr(0, 200) + "'");
    req.method = line.substr(0, s1);
    std::string target = line.substr(s1 + 1, s2 - s1 - 1);
    size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos)
      req.query = target.substr(q + 1);
    for (size_t at = eol; at != std::string::npos && at < head.size();) {
      size_t next = head.find("\r\n", at + 2);
      std::string h =
          head.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
      at = next;
      size_t colon = h.find(':');
      if (colon == std::string::npos)
        return fail(400, "malformed header line '" + h.substr(0, 200) + "'");
      req.headers[asciiLower(trimBlanks(h.substr(0, colon)))] = trimBlanks(h.substr(colon + 1));
    }
  }
  if (req.headers.count("transfer-encoding"))
    return fail(400, "chunked request bodies are not supported: send Content-Length");
  size_t length = 0;
  if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
    const std::string& v = it->second;
    if (v.empty() || v.size() > 12 || !std::all_of(v.begin(), v.end(), ::isdigit))
      return fail(400, "bad Content-Length '" + v.substr(0, 40) + "'");
    length = size_t(std::stoull(v));
    if (length > limits_.maxBodyBytes)
      return fail(413, "request body of " + v + " bytes is larger than the limit of " +
                           std::to_string(limits_.maxBodyBytes));
  }
  buf.erase(0, headerEnd + 4);
  // curl sends bodies over 1 KiB only after a "100 Continue" (or a 1 s wait for one).
  if (auto it = req.headers.find("expect");
      it != req.headers.end() && asciiLower(it->second) == "100-continue" && buf.size() < length) {
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ::send(fd, kContinue, sizeof kContinue - 1, MSG_NOSIGNAL);
  }
  while (buf.size() < length) {
    int r = readMore();
    if (r == 0)
      return;
    if (r < 0)
      return fail(408, "request body not received within the read timeout (" +
                           std::to_string(buf.size()) + " of " + std::to_string(length) +
                           " bytes)");
  }
  req.body = buf.substr(0, length);
  try {
    handler(req, out);
  } catch (const std::exception& e) {
    fail(500, e.what());
  }
  if (!out.answered())
    fail(500, "the request was not answered");
}

} // namespace kt::serve
