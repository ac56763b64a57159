#pragma once
// Internal to the net layer: one client connection and the state of the request it carries.
// The member functions live in one file per concern: connection.cpp (the loop, deadlines,
// buffers, local replies, the access record), request_chain.cpp (the request phases),
// request_body.cpp (reading and streaming request bodies), forward.cpp (the upstream exchange),
// redirect.cpp, and admin/admin_listener.cpp.

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstring>
#include <string>

#include "portcullis/core/clock.hpp"
#include "portcullis/core/errors.hpp"
#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/filters/request_chain.hpp"
#include "portcullis/filters/response_headers.hpp"
#include "portcullis/http/chunked.hpp"
#include "portcullis/http/path.hpp"
#include "portcullis/http/response_parser.hpp"
#include "worker.hpp"

namespace portcullis::net {

using Clock = std::chrono::steady_clock;
using core::Reason;
using http::BodyFraming;

constexpr std::size_t kIoBufferBytes = 32 * 1024;  // body streaming and upstream response heads
// At most this much of a body is reserved ahead of its arrival, and a pooled exchange keeps at
// most this much body capacity between requests.
constexpr std::size_t kBodyReserveBytes = 64 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// How long an idle keep-alive connection keeps its coroutine before it parks.
constexpr config::Duration kParkAfter = std::chrono::milliseconds(100);
// A whole request body must arrive within twice body_timeout plus one second per this many
// bytes it announces (a chunked body: the route's body limit). body_timeout alone bounds only
// the pauses, so a body trickled just faster than it would otherwise hold its connection (and
// an upstream connection) for as long as its length lasts.
constexpr std::uint64_t kBodyMinBytesPerSecond = 16 * 1024;

// The monotonic clock at jiffy resolution: deadlines, idle times, pool ages and endpoint health
// are read several times per request and need no better than a few milliseconds; this costs a
// fraction of a precise reading (kept for measured durations). Same epoch as steady_clock
// (CLOCK_MONOTONIC), so the two compare.
inline Clock::time_point coarse_now() {
  return core::SystemClock().monotonic();
}

inline bool is_idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

enum class Phase : std::uint8_t {
  none,
  handshake,
  idle,
  head,
  body,
  client_write,
  upstream_connect,
  upstream_io,
};

inline std::string_view find_header(const std::vector<http::Header>& headers,
                                    std::string_view name) {
  for (const auto& header : headers) {
    if (http::iequals(header.name, name)) return header.value;
  }
  return {};
}

inline bool is_trusted_proxy(const config::Policy& policy, const core::IpAddress& peer) {
  for (const auto& cidr : policy.server.trusted_proxies) {
    if (cidr.contains(peer)) return true;
  }
  return false;
}

// Outcome of forwarding one request, before the response reaches the client.
struct Failure {
  int status = 0;
  Reason reason = Reason::none;
};

// The upstream connection broke while the request was being sent.
constexpr Failure kUpstreamWriteFailed{502, Reason::upstream_reset};

// The request in progress: its RequestCtx (what the phases see) plus the connection's working
// state for it (parsers, buffers, the upstream exchange). Connections borrow one from a
// per-thread pool while a request is in progress, so an idle keep-alive connection holds no
// parser, head, strings or vectors (nor their heap capacity).
struct Exchange : filters::RequestCtx {
  http::RequestParser parser{http::HeadLimits{}};
  http::ResponseParser response_parser{kIoBufferBytes};
  http::ResponseHead response;
  http::ChunkedDecoder chunked;
  std::string out;
  bool upstream_reused = false;
  std::size_t response_head_bytes = 0;
  std::size_t head_bytes = 0;     // the request head's size in the input
  std::size_t consume_after = 0;  // input bytes the current request used; dropped at its end
  std::vector<std::string_view> dechunked;  // a whole buffered chunked body, decoded
  std::size_t dechunked_consumed = 0;       // its encoded size in the input
  std::vector<std::string_view> pieces;
  std::uint64_t body_limit = 0;  // the route's body limit (validate.max_body_bytes or server's)
  std::string body;              // a body read whole for validation
  bool body_buffered = false;
  std::string pipelined_tail;       // bytes of the next request read while reading this one's body
  std::size_t body_consumed = 0;    // input bytes that body took (after the head)
  Clock::time_point body_deadline;  // the whole body's deadline, once its reading started
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
        timer_(worker.io),
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
  void set_deadline(Phase phase, config::Duration timeout) {
    phase_ = phase;
    expired_ = Phase::none;
    deadline_ = coarse_now() + timeout;
    if (deadline_ < armed_) timer_.cancel();  // the watchdog re-arms for the earlier time
  }

  // ---- phases ----

  asio::awaitable<bool> process_request();
  asio::awaitable<bool> answer_locally();
  asio::awaitable<std::error_code> decide_shared_limits(state::Backend& backend,
                                                        state::Backend::LimitDecision& decision);
  void finish_record();
  asio::awaitable<bool> read_head(const Runtime& runtime, http::ParseResult& parsed);
  asio::awaitable<bool> forward(const Runtime& runtime, const config::Route& route,
                                std::size_t head_bytes);
  asio::awaitable<std::unique_ptr<Stream>> connect(const UpstreamRuntime& upstream,
                                                   const EndpointRuntime& endpoint,
                                                   Failure& failure);
  asio::awaitable<bool> send_request(const Runtime& runtime, const config::Upstream& settings,
                                     std::size_t head_bytes, bool dechunked, Failure& failure,
                                     bool& client_broken);
  asio::awaitable<std::size_t> read_request_body(const Runtime& runtime, std::size_t want,
                                                 bool& client_broken);
  asio::awaitable<bool> stream_request_body(const Runtime& runtime,
                                            const config::Upstream& settings,
                                            std::uint64_t remaining, Failure& failure,
                                            bool& client_broken);
  asio::awaitable<bool> stream_chunked_request(const Runtime& runtime,
                                               const config::Upstream& settings,
                                               std::string_view buffered, std::size_t& consumed,
                                               Failure& failure, bool& client_broken);
  asio::awaitable<bool> read_response_head(const config::Upstream& settings, Failure& failure);
  asio::awaitable<bool> relay_response(const Runtime& runtime, const config::Upstream& settings,
                                       const EndpointRuntime& endpoint);
  asio::awaitable<bool> relay_response_body(const config::Upstream& settings,
                                            std::uint64_t remaining);
  asio::awaitable<bool> relay_reframed_body(const config::Upstream& settings, std::string_view body,
                                            bool chunk_to_client, bool& upstream_reusable);
  asio::awaitable<bool> send_local(int status, Reason reason, bool close,
                                   std::span<const filters::ExtraHeader> extra = {},
                                   std::string_view body = {});
  asio::awaitable<int> read_body(std::size_t head_bytes, std::uint64_t limit, Reason& reason);
  void start_body_deadline(const config::Limits& limits, std::uint64_t announced_bytes);
  bool set_body_read_deadline(const config::Limits& limits);
  asio::awaitable<void> serve_redirect();
  asio::awaitable<void> serve_admin();
  asio::awaitable<void> serve_admin_api(const Runtime& runtime);
  asio::awaitable<error_code> write_client(std::span<const std::string_view> pieces);
  asio::awaitable<error_code> write_upstream(std::span<const std::string_view> pieces,
                                             const config::Upstream& settings);

  // ---- buffers ----
  void ensure_head_buffer(std::size_t size);
  void release_buffers();
  void ensure_exchange();
  void ensure_io_buffer();
  void consume_input(std::size_t bytes);
  void begin_request();
  void count_login_failure(const Runtime& runtime);
  void assign_request_id(const config::Policy& policy);
  const EndpointRuntime* pick_endpoint(const UpstreamRuntime& upstream, std::size_t index,
                                       const EndpointRuntime* avoid, bool& panic);
  void finish();

  std::optional<ConnectionLimiter::Slot> slot_;  // its place under the connection caps
  Worker& worker_;
  Stream client_;
  asio::steady_timer timer_;
  ListenerKind kind_;
  std::size_t listener_index_;
  core::IpAddress peer_;
  std::string client_subject_;  // verified client-certificate subject (access log)

  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();
  Phase phase_ = Phase::none;
  Phase expired_ = Phase::none;
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
