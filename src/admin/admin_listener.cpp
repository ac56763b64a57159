// The admin listener: metrics, liveness and readiness.

#include "../net/connection.hpp"

namespace portcullis::net {

asio::awaitable<void> ClientConnection::serve_admin() {
  ensure_exchange();
  const Runtime& runtime = *pinned_->runtime;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return;
  if (parsed.state == http::ParseState::error) {
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return;
  }
  const bool draining = worker_.draining.load(std::memory_order_relaxed);
  std::string_view status_line;
  std::string_view body;
  if (ex_->head.method != "GET" && ex_->head.method != "HEAD") {
    co_await send_local(405, Reason::method_not_allowed, true);
    co_return;
  }
  if (ex_->head.path == "/metrics") {
    worker_.services.metrics.log_lines_dropped(obs::Logs::dropped_lines());
    const std::string exposition = worker_.services.metrics.expose();
    ex_->out =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: ";
    ex_->out += std::to_string(exposition.size());
    ex_->out += "\r\nConnection: close\r\n\r\n";
    if (ex_->head.method == "GET") ex_->out += exposition;
    const std::string_view piece = ex_->out;
    co_await write_client(std::span(&piece, 1));
    co_return;
  }
  if (ex_->head.path == "/healthz") {
    status_line = "HTTP/1.1 200 OK\r\n";
    body = "{\"status\":\"alive\"}\n";
  } else if (ex_->head.path == "/readyz") {
    status_line = draining ? "HTTP/1.1 503 Service Unavailable\r\n" : "HTTP/1.1 200 OK\r\n";
    body = draining ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ready\"}\n";
  } else {
    co_await send_local(404, Reason::no_route, true);
    co_return;
  }
  ex_->out.assign(status_line);
  ex_->out += "Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ";
  ex_->out += std::to_string(body.size());
  ex_->out += "\r\nConnection: close\r\n\r\n";
  if (ex_->head.method == "GET") ex_->out += body;
  const std::string_view piece = ex_->out;
  co_await write_client(std::span(&piece, 1));
}

}  // namespace portcullis::net
