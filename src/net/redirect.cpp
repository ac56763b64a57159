// The plain-HTTP listener: every request is answered 308 towards https, nothing is proxied.

#include "connection.hpp"

namespace portcullis::net {

asio::awaitable<void> ClientConnection::serve_redirect() {
  ensure_exchange();
  const Runtime& runtime = *pinned_->runtime;
  const config::Policy& policy = *runtime.policy;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return;
  if (parsed.state == http::ParseState::error) {
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return;
  }
  std::string_view host = ex_->head.host;
  if (host.empty()) {
    co_await send_local(400, Reason::missing_host, true);
    co_return;
  }
  // Drop the port the client used for plain HTTP; add the TLS listener's port unless 443.
  if (host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string location = "https://";
  location += host;
  const std::uint16_t port = worker_.https_port;
  if (port != 0 && port != 443) {
    location += ':';
    location += std::to_string(port);
  }
  location += ex_->head.target;
  worker_.request_ids.next(ex_->request_id);
  ex_->out = "HTTP/1.1 308 Permanent Redirect\r\n";
  for (const auto& [name, value] : policy.headers.response_set) {
    ex_->out += name;
    ex_->out += ": ";
    ex_->out += value;
    ex_->out += "\r\n";
  }
  ex_->out += policy.server.request_id.header + ": " + ex_->request_id + "\r\n";
  ex_->out += "Location: " + location + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  const std::string_view piece = ex_->out;
  co_await write_client(std::span(&piece, 1));
}

}  // namespace portcullis::net
