#pragma once
// Internal to the net layer: one client connection and the state of the request it carries.
// The member functions live in one file per concern: connection.cpp (the loop, deadlines,
// buffers, local replies, the access record), request_chain.cpp (the request phases),
// redirect.cpp and admin.cpp (the other listeners). Forwarding is the upstream module's
// (upstream/forwarder.hpp), the admin endpoints the admin module's (admin/listener.hpp); both
// are handed the client side explicitly (upstream/client_side.hpp), as is reading a body whole.

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstring>
#include <string>

#include "portcullis/core/clock.hpp"
#include "portcullis/core/errors.hpp"
#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/filters/jwt_auth.hpp"
#include "portcullis/filters/request_chain.hpp"
#include "portcullis/filters/response_headers.hpp"
#include "portcullis/http/chunked.hpp"
#include "portcullis/http/path.hpp"
#include "portcullis/http/response_parser.hpp"
#include "portcullis/io/deadline.hpp"
#include "portcullis/upstream/forwarder.hpp"
#include "worker.hpp"

namespace portcullis::net {

using Clock = std::chrono::steady_clock;
using core::Reason;
using http::BodyFraming;

using io::coarse_now;
using io::Phase;
using upstream::kBodyReserveBytes;
using upstream::kIoBufferBytes;

// How long an idle keep-alive connection keeps its coroutine before it parks.
constexpr config::Duration kParkAfter = std::chrono::milliseconds(100);

inline bool is_trusted_proxy(const config::Policy& policy, const core::IpAddress& peer) {
  for (const auto& cidr : policy.server.trusted_proxies) {
    if (cidr.contains(peer)) return true;
  }
  return false;
}

// The request in progress: what the forwarder sees of it (upstream::Exchange) plus the head
// parser. Connections borrow one from a per-thread pool while a request is in progress, so an
// idle keep-alive connection holds no parser, head, strings or vectors (nor their heap capacity).
struct Exchange : upstream::Exchange {
  http::RequestParser parser{http::HeadLimits{}};
};

// The calling thread's pool of exchanges: a request borrows one and gives it back when its
// connection goes idle. Given back, an exchange keeps at most kBodyReserveBytes of body capacity.
std::unique_ptr<Exchange> take_exchange();
void give_exchange(std::unique_ptr<Exchange> exchange);

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(Worker& worker, tcp::socket socket, const core::IpAddress& peer,
                   ListenerKind kind, std::size_t listener_index,
                   std::optional<ConnectionLimiter::Slot> slot)
      : slot_(std::move(slot)),
        worker_(worker),
        client_(std::move(socket)),
        deadline_(worker.io),
        kind_(kind),
        listener_index_(listener_index) {
    peer_ = peer;
  }

  asio::awaitable<void> run();
  asio::awaitable<bool> serve_requests();
  asio::awaitable<void> resume();
  void park(config::Duration remaining);
  void close_if_idle() {
    if (idle_) client_.cancel();
  }

 private:
  // ---- deadlines ----
  // One timer per connection; its handler holds the connection alive and re-arms itself.
  void arm_timer();
  void on_timer();
  void set_deadline(Phase phase, config::Duration timeout) { deadline_.set(phase, timeout); }

  // ---- phases ----

  asio::awaitable<bool> process_request();
  asio::awaitable<bool> answer_locally();
  asio::awaitable<std::error_code> decide_shared_limits(state::Backend& backend,
                                                        state::Backend::LimitDecision& decision);
  void finish_record();
  asio::awaitable<bool> read_head(const Runtime& runtime, http::ParseResult& parsed);
  upstream::ClientSide client_side();
  asio::awaitable<bool> send_local(int status, Reason reason, bool close,
                                   std::span<const filters::ExtraHeader> extra = {},
                                   std::string_view body = {});
  asio::awaitable<void> serve_redirect();
  asio::awaitable<void> serve_admin();
  asio::awaitable<error_code> write_client(std::span<const std::string_view> pieces);

  // ---- buffers ----
  void ensure_head_buffer(std::size_t size);
  void release_buffers();
  void ensure_exchange();
  void consume_input(std::size_t bytes);
  void begin_request();
  void count_login_failure(const Runtime& runtime);
  void assign_request_id(const config::Policy& policy);
  void finish();

  std::optional<ConnectionLimiter::Slot> slot_;  // its place under the connection caps
  Worker& worker_;
  Stream client_;
  io::Deadline deadline_;  // one per connection; its watchdog is arm_timer()/on_timer()
  ListenerKind kind_;
  std::size_t listener_index_;
  core::IpAddress peer_;
  std::string client_subject_;  // verified client-certificate subject (access log)
  // The last token this client presented, verified: the next request with the same bytes skips
  // hashing it and the cache's lock. Only ever a token this client sent; dropped when parking.
  filters::TokenMemo token_memo_;

  bool done_ = false;
  bool idle_ = false;
  bool served_request_ = false;
  Clock::time_point idle_since_;  // when the connection last finished a request

  std::shared_ptr<const PinnedRuntime> pinned_;
  std::unique_ptr<char[]> in_;  // request head, then whatever followed it
  std::size_t in_capacity_ = 0;
  std::size_t in_size_ = 0;
  std::unique_ptr<char[]> io_;  // body streaming and upstream response
  std::size_t io_size_ = 0;

  std::unique_ptr<Exchange> ex_;      // the request in progress; none while idle
  std::unique_ptr<Stream> upstream_;  // the upstream connection in use, if any
  std::string_view tls_version_;
};

}  // namespace portcullis::net
