// The connection loop: one coroutine per client connection, a straight line through the request
// phases (read head with limits, strict checks, route, forward with the body streamed, response
// filters, write). Deadlines are one timer per connection watched by a small coroutine; moving a
// deadline later is a plain store, so most phases cost no timer operation at all.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>
#include <string>

#include "portcullis/core/errors.hpp"
#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/filters/response_headers.hpp"
#include "portcullis/http/chunked.hpp"
#include "portcullis/http/path.hpp"
#include "portcullis/http/response_parser.hpp"
#include "worker.hpp"

namespace portcullis::net {
namespace {

using Clock = std::chrono::steady_clock;
using core::Reason;
using http::BodyFraming;

constexpr std::size_t kIoBufferBytes = 32 * 1024;  // body streaming and upstream response heads
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// How long an idle keep-alive connection keeps its coroutine before it parks.
constexpr config::Duration kParkAfter = std::chrono::milliseconds(100);

// The monotonic clock at jiffy resolution: deadlines, idle times, pool ages and endpoint health
// are read several times per request and need no better than a few milliseconds; this costs a
// fraction of a precise reading (kept for measured durations). Same epoch as steady_clock
// (CLOCK_MONOTONIC), so the two compare.
Clock::time_point coarse_now() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec)));
}

bool is_idempotent(std::string_view method) {
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

std::string_view find_header(const std::vector<http::Header>& headers, std::string_view name) {
  for (const auto& header : headers) {
    if (http::iequals(header.name, name)) return header.value;
  }
  return {};
}

std::optional<std::string_view> find_header_value(const std::vector<http::Header>& headers,
                                                  std::string_view name) {
  for (const auto& header : headers) {
    if (http::iequals(header.name, name)) return header.value;
  }
  return std::nullopt;
}

bool is_trusted_proxy(const config::Policy& policy, const core::IpAddress& peer) {
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

}  // namespace

// The state of one request/response exchange. Connections borrow one from a per-thread pool
// while a request is in progress, so an idle keep-alive connection holds no parser, head,
// strings or vectors (nor their heap capacity).
struct Exchange {
  http::RequestParser parser{http::HeadLimits{}};
  http::RequestHead head;
  http::ResponseParser response_parser{kIoBufferBytes};
  http::ResponseHead response;
  http::ChunkedDecoder chunked;
  std::string path;
  std::string request_id;
  std::string out;
  bool upstream_reused = false;
  std::size_t response_head_bytes = 0;
  std::size_t consume_after = 0;  // input bytes the current request used; dropped at its end
  std::vector<std::string_view> dechunked;  // a whole buffered chunked body, decoded
  std::size_t dechunked_consumed = 0;       // its encoded size in the input
  std::vector<std::string_view> pieces;
  std::vector<std::pair<std::string, std::string>> claim_headers;  // verified JWT claims to add
  std::string subject;     // of the request's verified token, for logs
  std::string token_hash;  // short hash of the request's token, for logs
  bool report_only = false;
  std::uint64_t body_limit = 0;  // the route's body limit (validate.max_body_bytes or server's)
  std::string body;              // a body read whole for validation
  bool body_buffered = false;
  std::string pipelined_tail;     // bytes of the next request read while reading this one's body
  std::size_t body_consumed = 0;  // input bytes that body took (after the head)

  // What the current request did, for the access log and metrics.
  struct Record {
    Clock::time_point started;
    const config::Route* route = nullptr;
    std::size_t route_index = 0;
    std::string_view upstream;
    Clock::time_point upstream_sent;
    double upstream_seconds = -1;
    int status = 0;
    Reason reason = Reason::none;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
  } record;
};

constexpr std::size_t kMaxPooledExchanges = 256;
thread_local std::vector<std::unique_ptr<Exchange>> free_exchanges;

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
  asio::awaitable<bool> authenticate(const Runtime& runtime, const filters::RouteAuthRule& rule,
                                     const config::Route& route, bool close,
                                     std::size_t head_bytes);
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
  asio::awaitable<void> send_local(int status, Reason reason, bool close,
                                   std::span<const filters::ExtraHeader> extra = {},
                                   std::string_view body = {});
  asio::awaitable<int> read_body(std::size_t head_bytes, std::uint64_t limit, Reason& reason);
  asio::awaitable<bool> refuse_invalid(const validate::Verdict& verdict, bool close);
  asio::awaitable<void> serve_redirect();
  asio::awaitable<void> serve_admin();
  asio::awaitable<error_code> write_client(std::span<const std::string_view> pieces);
  asio::awaitable<error_code> write_upstream(std::span<const std::string_view> pieces,
                                             const config::Upstream& settings);

  // ---- buffers ----
  void ensure_head_buffer(std::size_t size);
  void release_buffers();
  void ensure_exchange();
  void ensure_io_buffer();
  void consume_input(std::size_t bytes);
  void assign_request_id(const config::Policy& policy);
  const EndpointRuntime* pick_endpoint(const UpstreamRuntime& upstream, std::size_t index,
                                       const EndpointRuntime* avoid);
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

void close_if_idle(ClientConnection* connection) {
  connection->close_if_idle();
}

void ClientConnection::arm_timer() {
  armed_ = deadline_;
  timer_.expires_at(armed_);
  timer_.async_wait([self = shared_from_this()](const error_code&) { self->on_timer(); });
}

void ClientConnection::on_timer() {
  if (done_) {
    armed_ = Clock::time_point::max();
    return;  // the handler's reference was the last one: the connection goes now
  }
  if (Clock::now() >= deadline_) {
    expired_ = phase_;
    deadline_ = Clock::time_point::max();
    client_.cancel();
    if (upstream_) upstream_->cancel();
  }
  arm_timer();  // also after a cancel: set_deadline moved the deadline earlier
}

void ClientConnection::finish() {
  if (done_) return;
  done_ = true;
  timer_.cancel();
  if (upstream_) upstream_->close();
  upstream_.reset();
  release_buffers();
  client_.close();
  worker_.connections.erase(this);
  if (kind_ != ListenerKind::admin) worker_.services.metrics.connection_closed();
  slot_.reset();  // the connection caps count it no longer
}

asio::awaitable<void> ClientConnection::run() {
  worker_.connections.insert(this);
  if (kind_ != ListenerKind::admin) worker_.services.metrics.connection_opened();
  const auto self = shared_from_this();  // the coroutine owns its connection
  arm_timer();
  pinned_ = worker_.pin();
  const Runtime& runtime = *pinned_->runtime;
  const auto& limits = runtime.policy->server.limits;
  if (kind_ == ListenerKind::tls) {
    SSL* ssl = listener_index_ < runtime.listeners.size() && runtime.listeners[listener_index_].tls
                   ? runtime.listeners[listener_index_].tls->new_ssl()
                   : nullptr;
    if (!ssl) {
      finish();
      co_return;
    }
    client_.attach_tls(ssl);
    set_deadline(Phase::handshake, limits.header_timeout);
    if (auto ec = co_await client_.handshake()) {
      worker_.services.metrics.tls_handshake_failure();
      finish();
      co_return;
    }
    tls_version_ = tls_version_name(ssl);
    worker_.services.metrics.tls_handshake(tls_version_);
    client_subject_ = verified_peer_subject(ssl);
    idle_since_ = coarse_now();
    co_await serve_requests();  // finishes the connection, or parks it to live on without us
    co_return;
  } else if (kind_ == ListenerKind::redirect) {
    co_await serve_redirect();
  } else {
    co_await serve_admin();
  }
  finish();
}

// The request loop. Returns true when the connection was parked (see park()), false when it is
// done and has been finished.
asio::awaitable<bool> ClientConnection::serve_requests() {
  const auto self = shared_from_this();
  for (;;) {
    if (in_size_ == 0) {
      release_buffers();  // an idle connection holds no request buffers
      if (worker_.draining.load(std::memory_order_relaxed)) break;
      const auto idle_timeout = pinned_->runtime->policy->server.limits.idle_timeout;
      // Wait here briefly (a busy keep-alive client is back within milliseconds); after that,
      // park instead of holding this coroutine's frames for the rest of the idle time.
      const auto waited = coarse_now() - idle_since_;
      const bool may_park = idle_timeout > kParkAfter && waited < kParkAfter;
      set_deadline(Phase::idle, may_park ? kParkAfter : idle_timeout);
      idle_ = true;
      // A connection that has carried a request is likely to carry the next one soon: it
      // stages input (the reactor receives the request); a fresh one keeps no buffer while it
      // waits.
      const auto ec = co_await client_.wait_readable(served_request_);
      idle_ = false;
      if (ec && may_park && expired_ == Phase::idle &&
          !worker_.draining.load(std::memory_order_relaxed)) {
        park(idle_timeout - kParkAfter);
        co_return true;
      }
      if (ec || worker_.draining.load(std::memory_order_relaxed)) break;
    }
    pinned_ = worker_.pin();  // the snapshot this request keeps to its end
    ensure_exchange();
    ex_->record = Exchange::Record{};
    ex_->record.started = Clock::now();
    ex_->consume_after = 0;
    const bool keep = co_await process_request();
    finish_record();
    // Only now may the request's bytes go: its head (method, path) was in use until here.
    if (keep) consume_input(ex_->consume_after);
    served_request_ = true;
    idle_since_ = coarse_now();
    if (!keep) break;
    client_.release_output();  // a response held after the handshake goes now
  }
  finish();
  co_return false;
}

// An idle connection gives up its coroutine: what is left is the connection object, its timer
// and one readiness callback, so a parked connection costs about 0.7 KiB beside OpenSSL's own.
void ClientConnection::park(config::Duration remaining) {
  client_.release_buffers();
  set_deadline(Phase::idle, remaining);
  idle_ = true;
  client_.socket().async_wait(tcp::socket::wait_read,
                              [self = shared_from_this()](const error_code& ec) {
                                self->idle_ = false;
                                if (ec || self->worker_.draining.load(std::memory_order_relaxed)) {
                                  self->finish();
                                  return;
                                }
                                asio::co_spawn(self->worker_.io, self->resume(), asio::detached);
                              });
}

asio::awaitable<void> ClientConnection::resume() {
  idle_since_ = coarse_now();
  co_await serve_requests();
}

// ---- buffers ----------------------------------------------------------------------------------

void ClientConnection::ensure_head_buffer(std::size_t size) {
  if (in_ && in_capacity_ >= size) return;
  auto buffer = worker_.take_buffer(size);
  if (in_) {
    std::memcpy(buffer.get(), in_.get(), std::min(in_size_, size));
    worker_.give_buffer(std::move(in_), in_capacity_);
  }
  in_ = std::move(buffer);
  in_capacity_ = size;
  in_size_ = std::min(in_size_, size);
}

void ClientConnection::ensure_io_buffer() {
  if (!io_) io_ = worker_.take_buffer(kIoBufferBytes);
}

void ClientConnection::release_buffers() {
  if (in_ && in_size_ == 0) {
    worker_.give_buffer(std::move(in_), in_capacity_);
    in_capacity_ = 0;
  }
  if (io_) worker_.give_buffer(std::move(io_), kIoBufferBytes);
  io_size_ = 0;
  if (ex_ && in_size_ == 0) {
    if (free_exchanges.size() < kMaxPooledExchanges) free_exchanges.push_back(std::move(ex_));
    ex_.reset();
  }
}

void ClientConnection::ensure_exchange() {
  if (ex_) return;
  if (free_exchanges.empty()) {
    ex_ = std::make_unique<Exchange>();
  } else {
    ex_ = std::move(free_exchanges.back());
    free_exchanges.pop_back();
  }
}

void ClientConnection::consume_input(std::size_t bytes) {
  bytes = std::min(bytes, in_size_);
  std::memmove(in_.get(), in_.get() + bytes, in_size_ - bytes);
  in_size_ -= bytes;
  if (!ex_->pipelined_tail.empty()) {
    const std::size_t room = in_capacity_ - in_size_;
    const std::size_t take = std::min(room, ex_->pipelined_tail.size());
    std::memcpy(in_.get() + in_size_, ex_->pipelined_tail.data(), take);
    in_size_ += take;
    ex_->pipelined_tail.clear();
  }
}

void ClientConnection::assign_request_id(const config::Policy& policy) {
  if (policy.server.request_id.trust_incoming) {
    const auto incoming = find_header(ex_->head.headers, policy.server.request_id.header);
    if (filters::is_acceptable_request_id(incoming)) {
      ex_->request_id.assign(incoming);
      return;
    }
  }
  worker_.request_ids.next(ex_->request_id);
}

// ---- writing ----------------------------------------------------------------------------------

// Not coroutines themselves: they set the deadline and hand back the stream's awaitable, which
// saves a coroutine frame per write. `pieces` must outlive the co_await (it always does: the
// caller awaits at once).
asio::awaitable<error_code> ClientConnection::write_client(
    std::span<const std::string_view> pieces) {
  set_deadline(Phase::client_write, pinned_->runtime->policy->server.limits.body_timeout);
  for (const auto piece : pieces)
    ex_->record.bytes_out += piece.size();
  return client_.write_all(pieces);
}

asio::awaitable<error_code> ClientConnection::write_upstream(
    std::span<const std::string_view> pieces, const config::Upstream& settings) {
  set_deadline(Phase::upstream_io, settings.response_timeout);
  return upstream_->write_all(pieces);
}

asio::awaitable<void> ClientConnection::send_local(int status, Reason reason, bool close,
                                                   std::span<const filters::ExtraHeader> extra,
                                                   std::string_view body) {
  const config::Policy& policy = *pinned_->runtime->policy;
  if (ex_->request_id.empty()) worker_.request_ids.next(ex_->request_id);
  ex_->out.clear();
  const bool head_request = ex_->head.method == "HEAD";
  const filters::ResponseContext context{policy, ex_->request_id, head_request, close};
  if (body.empty()) {
    filters::build_local_reply(context, status, core::error_code_for_status(status), extra,
                               ex_->out);
  } else {
    filters::build_local_reply_with_body(context, status, body, extra, ex_->out);
  }
  ex_->record.status = status;
  ex_->record.reason = reason;
  const std::string_view piece = ex_->out;
  co_await write_client(std::span(&piece, 1));
}

// ---- the request loop -------------------------------------------------------------------------

asio::awaitable<bool> ClientConnection::read_head(const Runtime& runtime,
                                                  http::ParseResult& parsed) {
  if (in_size_ == 0 && kind_ != ListenerKind::tls) {
    // A silent connection holds no buffer: wait for its first byte before committing one.
    set_deadline(Phase::head, runtime.policy->server.limits.header_timeout);
    if (co_await client_.wait_readable()) co_return false;
  }
  ensure_head_buffer(runtime.head_buffer_bytes);
  ex_->parser = http::RequestParser(runtime.head_limits);
  ex_->head.clear();
  ex_->request_id.clear();
  ex_->path.clear();
  bool deadline_set = false;
  for (;;) {
    parsed = ex_->parser.parse(std::string_view(in_.get(), in_size_), ex_->head);
    if (parsed.state != http::ParseState::incomplete) co_return true;
    if (in_size_ == in_capacity_) {
      parsed.state = http::ParseState::error;
      parsed.reply = {431, Reason::header_too_large, true};
      co_return true;
    }
    if (!deadline_set) {
      set_deadline(Phase::head, runtime.policy->server.limits.header_timeout);
      deadline_set = true;
    }
    error_code ec;
    const auto n =
        co_await client_.read_some(std::span(in_.get() + in_size_, in_capacity_ - in_size_), ec);
    if (ec) {
      if (expired_ == Phase::head && in_size_ > 0) {
        co_await send_local(408, Reason::header_timeout, true);
      }
      co_return false;
    }
    in_size_ += n;
  }
}

void ClientConnection::finish_record() {
  if (ex_->record.status == 0) return;  // nothing was answered (the client went away)
  const Runtime& runtime = *pinned_->runtime;
  const double seconds = std::chrono::duration<double>(Clock::now() - ex_->record.started).count();
  const obs::RouteMetrics* route_metrics = ex_->record.route
                                               ? runtime.route_metrics[ex_->record.route_index]
                                               : runtime.unmatched_metrics;
  route_metrics->observe(ex_->record.status, seconds, ex_->record.upstream_seconds);
  auto& metrics = worker_.services.metrics;
  if (ex_->record.reason != Reason::none) {
    metrics.rejection(ex_->record.reason);
    switch (ex_->record.reason) {
      case Reason::upstream_connect_failed:
        metrics.upstream_error(obs::UpstreamErrorKind::connect_failed);
        break;
      case Reason::upstream_reset:
        metrics.upstream_error(obs::UpstreamErrorKind::reset);
        break;
      case Reason::upstream_timeout:
        metrics.upstream_error(obs::UpstreamErrorKind::timeout);
        break;
      case Reason::upstream_bad_response:
        metrics.upstream_error(obs::UpstreamErrorKind::bad_response);
        break;
      case Reason::no_healthy_upstream:
        metrics.upstream_error(obs::UpstreamErrorKind::no_healthy);
        break;
      default:
        break;
    }
  }
  obs::Logs& logs = *runtime.logs;
  const bool rejected = ex_->record.reason != Reason::none && ex_->record.status < 500;
  if (!logs.access_enabled() && !rejected) return;
  const obs::AccessRecord access{
      ex_->request_id,
      filters::client_ip(*runtime.policy, ex_->head, peer_),
      ex_->head.method,
      ex_->path.empty() ? ex_->head.path : std::string_view(ex_->path),
      ex_->record.route ? std::string_view(ex_->record.route->name) : std::string_view(),
      ex_->record.status,
      ex_->record.bytes_in,
      ex_->record.bytes_out,
      seconds,
      ex_->record.upstream,
      ex_->record.upstream_seconds,
      tls_version_,
      ex_->record.reason,
      ex_->subject,
      ex_->token_hash,
      ex_->report_only,
      client_subject_};
  logs.access(access);
  if (rejected) logs.rejection(access);
}

asio::awaitable<bool> ClientConnection::process_request() {
  const Runtime& runtime = *pinned_->runtime;
  const config::Policy& policy = *runtime.policy;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return false;
  if (parsed.state == http::ParseState::error) {
    // Whatever follows a refused head cannot be trusted to start a new request: close.
    ex_->record.bytes_in = in_size_;
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return false;
  }
  const std::size_t head_bytes = parsed.head_bytes;
  ex_->record.bytes_in = head_bytes;
  const bool has_body = ex_->head.framing != BodyFraming::none;
  const bool keep_alive = ex_->head.keep_alive && !worker_.draining.load(std::memory_order_relaxed);
  assign_request_id(policy);

  if (const auto reason = http::normalize_path(ex_->head.path, ex_->path); reason != Reason::none) {
    co_await send_local(400, reason, true);
    co_return false;
  }
  const auto decision = runtime.router.match(ex_->head.method, ex_->path);
  if (decision.kind != filters::RouteDecision::Kind::matched) {
    // A body we will not read makes the connection unusable for another request.
    const bool close = has_body || !keep_alive;
    if (decision.kind == filters::RouteDecision::Kind::not_found) {
      co_await send_local(404, Reason::no_route, close);
    } else {
      const filters::ExtraHeader allow{"Allow", decision.allow};
      co_await send_local(405, Reason::method_not_allowed, close, std::span(&allow, 1));
    }
    if (close) co_return false;
    ex_->consume_after = head_bytes;
    co_return true;
  }
  ex_->record.route = decision.route;
  ex_->record.route_index = decision.route_index;
  ex_->claim_headers.clear();
  ex_->subject.clear();
  ex_->token_hash.clear();
  ex_->report_only = false;
  if (const auto& rule = runtime.route_auth[decision.route_index]) {
    if (!co_await authenticate(runtime, *rule, *decision.route, has_body || !keep_alive,
                               head_bytes))
      co_return false;
    if (ex_->record.status != 0) co_return true;  // refused, and the connection stays open
  }
  const validate::RequestRules* rules = runtime.route_rules[decision.route_index].get();
  ex_->body_limit = rules ? rules->max_body_bytes() : policy.server.limits.max_body_bytes;
  ex_->body_buffered = false;
  if (rules) {
    const auto content_type = find_header_value(ex_->head.headers, "Content-Type");
    const auto length = ex_->head.framing == BodyFraming::content_length
                            ? std::optional<std::uint64_t>(ex_->head.content_length)
                            : std::nullopt;
    // "Content-Length: 0" is a body too (an empty one), even though nothing follows the head.
    const auto verdict = rules->check_head(
        content_type,
        ex_->head.declares_body && !has_body ? std::optional<std::uint64_t>(0) : length,
        ex_->head.declares_body);
    if (!verdict.ok() && !co_await refuse_invalid(verdict, true)) co_return false;
  }
  if (ex_->head.framing == BodyFraming::content_length &&
      ex_->head.content_length > ex_->body_limit) {
    co_await send_local(413, Reason::body_too_large, true);
    co_return false;
  }
  if (rules && ex_->head.declares_body && rules->inspects_body()) {
    Reason failed = Reason::none;
    const int status = has_body ? co_await read_body(head_bytes, ex_->body_limit, failed) : 0;
    if (!has_body) {
      ex_->body.clear();
      ex_->body_consumed = 0;
    }
    if (status < 0) co_return false;  // the client went away
    if (status > 0) {
      co_await send_local(status, failed, true);
      co_return false;
    }
    ex_->body_buffered = true;
    const auto verdict = rules->check_body(ex_->body);
    // The whole body is read: a refusal can keep the connection.
    if (!verdict.ok() && !co_await refuse_invalid(verdict, !keep_alive)) {
      if (ex_->record.status == 0 || !keep_alive) co_return false;
      ex_->consume_after = head_bytes + ex_->body_consumed;
      co_return true;
    }
  }
  co_return co_await forward(runtime, *decision.route, head_bytes);
}

// ---- authentication ---------------------------------------------------------------------------

// Runs the route's JWT check. Returns false when the connection must close. When the request was
// refused (401/403) the reply has been sent and record.status is set; with enforce: false the
// refusal is only recorded and the request goes on, without claim headers.
asio::awaitable<bool> ClientConnection::authenticate(const Runtime& runtime,
                                                     const filters::RouteAuthRule& rule,
                                                     const config::Route& route, bool close,
                                                     std::size_t head_bytes) {
  const auto verdict =
      rule.check(ex_->head, worker_.services.token_cache, std::chrono::system_clock::now());
  worker_.services.metrics.jwt_verification(verdict.reason, verdict.cache_hit);
  ex_->subject = verdict.subject;
  ex_->token_hash = verdict.token_hash;
  if (verdict.ok()) {
    rule.gate().claim_headers(*verdict.principal, ex_->claim_headers);
    co_return true;
  }
  if (verdict.reason == Reason::jwt_unknown_kid) {
    // A new signing key may have been published: ask for an early refetch (rate-limited).
    const auto& remote = runtime.jwt_providers[route.auth->provider_index].remote;
    if (remote && remote->schedule.claim_unknown_kid_refetch(std::chrono::system_clock::now()))
      remote->refetch_wanted = true;
  }
  if (!route.enforce) {
    ex_->report_only = true;
    ex_->record.reason = verdict.reason;  // logged and counted; the request goes on
    co_return true;
  }
  const filters::ExtraHeader challenge{"WWW-Authenticate", verdict.www_authenticate};
  co_await send_local(verdict.status, verdict.reason, close, std::span(&challenge, 1));
  if (close) co_return false;
  ex_->consume_after = head_bytes;
  co_return true;
}

// ---- validation -------------------------------------------------------------------------------

// Answers a failed validation verdict (415, 413, or 400 with the JSON pointer) and returns false,
// or with enforce: false records it and returns true so the request goes on.
asio::awaitable<bool> ClientConnection::refuse_invalid(const validate::Verdict& verdict,
                                                       bool close) {
  if (!ex_->record.route->enforce) {
    ex_->report_only = true;
    ex_->record.reason = verdict.reason;
    co_return true;
  }
  if (verdict.status == 400) {
    const auto body = validate::invalid_body_response(ex_->request_id, verdict.pointer);
    co_await send_local(400, verdict.reason, close, {}, body);
  } else {
    co_await send_local(verdict.status, verdict.reason, close);
  }
  co_return false;
}

// Reads the whole request body into ex_->body, never more than `limit` payload bytes. Returns 0,
// an error status (413, 400 for bad chunking, 408 when it stalls) with `reason`, or -1 when the
// client went away. Bytes of a pipelined next request stay for it.
asio::awaitable<int> ClientConnection::read_body(std::size_t head_bytes, std::uint64_t limit,
                                                 Reason& reason) {
  const auto& limits = pinned_->runtime->policy->server.limits;
  const auto& head = ex_->head;
  ex_->body.clear();
  ex_->body_consumed = 0;
  if (head.expect_continue && in_size_ == head_bytes) {
    const std::string_view piece = kContinue;
    if (co_await write_client(std::span(&piece, 1))) co_return -1;
  }
  std::string_view input(in_.get() + head_bytes, in_size_ - head_bytes);
  bool from_in = true;
  const auto read_more = [&]() -> asio::awaitable<int> {
    ensure_io_buffer();
    set_deadline(Phase::body, limits.body_timeout);
    error_code ec;
    const auto n = co_await client_.read_some(std::span(io_.get(), kIoBufferBytes), ec);
    if (ec) {
      reason = Reason::body_timeout;
      co_return expired_ == Phase::body ? 408 : -1;
    }
    input = std::string_view(io_.get(), n);
    from_in = false;
    co_return 0;
  };
  if (head.framing == BodyFraming::content_length) {
    ex_->body.reserve(static_cast<std::size_t>(head.content_length));
    std::uint64_t remaining = head.content_length;
    while (remaining > 0) {
      if (input.empty()) {
        if (const int status = co_await read_more()) co_return status;
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, input.size()));
      ex_->body.append(input.substr(0, take));
      if (from_in) ex_->body_consumed += take;
      input.remove_prefix(take);
      remaining -= take;
    }
    if (!from_in) ex_->pipelined_tail.assign(input);
    co_return 0;
  }
  http::ChunkedDecoder decoder;
  for (;;) {
    const auto step = decoder.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) ex_->body_consumed += step.consumed;
    if (step.error != Reason::none) {
      reason = step.error;
      co_return 400;
    }
    if (ex_->body.size() + step.data.size() > limit) {
      reason = Reason::body_too_large;
      co_return 413;
    }
    ex_->body.append(step.data);
    if (step.done) {
      if (!from_in) ex_->pipelined_tail.assign(input);
      co_return 0;
    }
    if (input.empty()) {
      if (const int status = co_await read_more()) co_return status;
    }
  }
}

// ---- forwarding -------------------------------------------------------------------------------

const EndpointRuntime* ClientConnection::pick_endpoint(const UpstreamRuntime& upstream,
                                                       std::size_t index,
                                                       const EndpointRuntime* avoid) {
  const std::size_t count = upstream.endpoints.size();
  const std::size_t start = worker_.next_round_robin(index);
  const auto now = coarse_now();
  for (std::size_t i = 0; i < count; ++i) {
    const EndpointRuntime& endpoint = upstream.endpoints[(start + i) % count];
    if (&endpoint != avoid && endpoint.health->is_healthy(now)) return &endpoint;
  }
  return nullptr;
}

asio::awaitable<std::unique_ptr<Stream>> ClientConnection::connect(const UpstreamRuntime& upstream,
                                                                   const EndpointRuntime& endpoint,
                                                                   Failure& failure) {
  const config::Upstream& settings = *upstream.settings;
  upstream_ = std::make_unique<Stream>(tcp::socket(worker_.io));
  set_deadline(Phase::upstream_connect, settings.connect_timeout);
  error_code ec;
  co_await upstream_->socket().async_connect(endpoint.resolved,
                                             asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) {
    upstream_->configure_socket();
    if (upstream.tls) {
      SSL* ssl = upstream.tls->new_ssl(endpoint.address.host);
      if (!ssl) {
        ec = asio::error::no_memory;
      } else {
        upstream_->attach_tls(ssl);
        ec = co_await upstream_->handshake();
      }
    }
  }
  if (ec) {
    const bool timed_out = expired_ == Phase::upstream_connect;
    failure = timed_out ? Failure{504, Reason::upstream_timeout}
                        : Failure{502, Reason::upstream_connect_failed};
    upstream_->close();
    upstream_.reset();
    co_return nullptr;
  }
  co_return std::move(upstream_);
}

asio::awaitable<bool> ClientConnection::forward(const Runtime& runtime, const config::Route& route,
                                                std::size_t head_bytes) {
  const config::Policy& policy = *runtime.policy;
  const UpstreamRuntime& upstream = runtime.upstreams[route.upstream_index];
  const config::Upstream& settings = *upstream.settings;
  const bool idempotent = is_idempotent(ex_->head.method);
  const bool has_body = ex_->head.framing != BodyFraming::none;

  // A chunked body already buffered whole is checked before anything goes upstream, and sent
  // with a Content-Length: malformed framing never reaches the upstream, and legacy upstreams
  // that mishandle chunked bodies receive a plain one.
  BodyFraming upstream_framing = ex_->head.framing;
  std::uint64_t upstream_length = ex_->head.content_length;
  ex_->dechunked.clear();
  if (ex_->body_buffered) {
    // Read and validated whole: sent as it was checked, with a Content-Length.
    upstream_framing = ex_->body.empty() ? BodyFraming::none : BodyFraming::content_length;
    upstream_length = ex_->body.size();
    if (!ex_->body.empty()) ex_->dechunked.emplace_back(ex_->body);
    ex_->dechunked_consumed = ex_->body_consumed;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    http::ChunkedDecoder probe;
    std::string_view input(in_.get() + head_bytes, in_size_ - head_bytes);
    std::uint64_t payload = 0;
    for (;;) {
      const auto step = probe.step(input);
      input.remove_prefix(step.consumed);
      if (step.error != Reason::none) {
        co_await send_local(400, step.error, true);
        co_return false;
      }
      payload += step.data.size();
      if (payload > ex_->body_limit) {
        co_await send_local(413, Reason::body_too_large, true);
        co_return false;
      }
      if (!step.data.empty()) ex_->dechunked.push_back(step.data);
      if (step.done) {
        upstream_framing = payload ? BodyFraming::content_length : BodyFraming::none;
        upstream_length = payload;
        ex_->dechunked_consumed = in_size_ - head_bytes - input.size();
        break;
      }
      if (input.empty()) {
        ex_->dechunked.clear();  // not all here yet: stream it
        break;
      }
    }
  }

  ex_->out.clear();
  const filters::UpstreamRequest request{
      ex_->head,         ex_->path,        peer_,           is_trusted_proxy(policy, peer_),
      ex_->request_id,   upstream_framing, upstream_length, runtime.claim_headers,
      ex_->claim_headers};
  filters::build_upstream_request(policy, request, ex_->out);
  const bool dechunked = ex_->body_buffered || (ex_->head.framing == BodyFraming::chunked &&
                                                upstream_framing != BodyFraming::chunked);

  std::size_t attempts_left = 1 + (idempotent ? settings.retries : 0);
  bool stale_retry_left = true;
  bool sent_continue = false;
  const EndpointRuntime* failed_endpoint = nullptr;
  Failure failure{503, Reason::no_healthy_upstream};
  for (;;) {
    const EndpointRuntime* endpoint =
        pick_endpoint(upstream, route.upstream_index, failed_endpoint);
    if (!endpoint) break;  // `failure` holds the last attempt's outcome, or 503
    ex_->record.upstream = endpoint->address.text;
    // A stale pooled connection is retried below for idempotent requests without a body, so
    // those may skip the liveness probe.
    upstream_ = worker_.pool(endpoint->id).take(coarse_now(), idempotent && !has_body);
    ex_->upstream_reused = static_cast<bool>(upstream_);
    if (!upstream_) {
      upstream_ = co_await connect(upstream, *endpoint, failure);
      if (!upstream_) {
        endpoint->health->mark_failure(coarse_now(), settings.health_check.interval);
        failed_endpoint = endpoint;
        if (--attempts_left > 0) continue;
        break;
      }
    }
    if (ex_->head.expect_continue && has_body && !sent_continue && !ex_->body_buffered &&
        in_size_ == head_bytes) {
      sent_continue = true;
      const std::string_view piece = kContinue;
      if (co_await write_client(std::span(&piece, 1))) co_return false;
    }
    bool client_broken = false;
    if (!co_await send_request(runtime, settings, head_bytes, dechunked, failure, client_broken)) {
      if (upstream_) upstream_->close();
      upstream_.reset();
      if (client_broken) co_return false;
      // Repeating the request is safe only when it is idempotent and nothing of it was lost
      // (no body was consumed from the client).
      const bool repeatable = idempotent && !has_body && failure.reason == Reason::upstream_reset;
      if (ex_->upstream_reused && repeatable && stale_retry_left) {
        // A pooled connection the upstream had already closed: not the endpoint's fault. Its
        // siblings are likely stale too (an upstream restart closes them all): start afresh.
        stale_retry_left = false;
        worker_.pool(endpoint->id).clear();
        continue;
      }
      if (failure.reason == Reason::upstream_reset || failure.reason == Reason::upstream_timeout) {
        endpoint->health->mark_failure(coarse_now(), settings.health_check.interval);
        failed_endpoint = endpoint;
      }
      if (repeatable && --attempts_left > 0) continue;
      co_await send_local(failure.status, failure.reason, true);
      co_return false;
    }
    endpoint->health->mark_success();
    co_return co_await relay_response(runtime, settings, *endpoint);
  }
  // No upstream connection could be had; the request body (if any) was never read.
  const bool close = has_body || !ex_->head.keep_alive;
  co_await send_local(failure.status, failure.reason, close);
  if (close) co_return false;
  ex_->consume_after = head_bytes;
  co_return true;
}

// Sends the head and streams the body, then reads the upstream's response head into io_.
// Returns false with `failure` set when the upstream failed, or `client_broken` when the client
// did (a local reply has then been sent if one could be).
asio::awaitable<bool> ClientConnection::send_request(const Runtime& runtime,
                                                     const config::Upstream& settings,
                                                     std::size_t head_bytes, bool dechunked,
                                                     Failure& failure, bool& client_broken) {
  ensure_io_buffer();
  const std::string_view buffered(in_.get() + head_bytes, in_size_ - head_bytes);
  std::size_t consumed = head_bytes;

  if (dechunked) {
    // The whole (validated) body was buffered: head and payload in one write.
    ex_->pieces.assign(1, std::string_view(ex_->out));
    ex_->pieces.insert(ex_->pieces.end(), ex_->dechunked.begin(), ex_->dechunked.end());
    if (co_await write_upstream(ex_->pieces, settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += ex_->dechunked_consumed;
  } else if (ex_->head.framing == BodyFraming::content_length) {
    const auto first =
        buffered.substr(0, std::min<std::uint64_t>(buffered.size(), ex_->head.content_length));
    const std::string_view pieces[] = {ex_->out, first};
    if (co_await write_upstream(pieces, settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    consumed += first.size();
    const std::uint64_t remaining = ex_->head.content_length - first.size();
    if (remaining > 0 &&
        !co_await stream_request_body(runtime, settings, remaining, failure, client_broken))
      co_return false;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    const std::string_view head_piece = ex_->out;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    if (!co_await stream_chunked_request(runtime, settings, buffered, consumed, failure,
                                         client_broken))
      co_return false;
  } else {
    const std::string_view head_piece = ex_->out;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
  }
  // The request is fully read; its bytes leave the input when the exchange ends.
  ex_->consume_after = consumed;
  std::uint64_t body_bytes = 0;
  if (dechunked) {
    for (const auto piece : ex_->dechunked)
      body_bytes += piece.size();
  } else if (ex_->head.framing == BodyFraming::content_length) {
    body_bytes = ex_->head.content_length;
  } else if (ex_->head.framing == BodyFraming::chunked) {
    body_bytes = ex_->chunked.payload_bytes();
  }
  ex_->record.bytes_in = head_bytes + body_bytes;
  ex_->record.upstream_sent = Clock::now();
  co_return co_await read_response_head(settings, failure);
}

// The next piece of a request body (at most `want` bytes, into io_) under the body deadline.
// 0 when the client failed or went silent (then answered 408); `client_broken` is then set.
asio::awaitable<std::size_t> ClientConnection::read_request_body(const Runtime& runtime,
                                                                 std::size_t want,
                                                                 bool& client_broken) {
  set_deadline(Phase::body, runtime.policy->server.limits.body_timeout);
  error_code ec;
  const auto n = co_await client_.read_some(std::span(io_.get(), want), ec);
  if (!ec) co_return n;
  client_broken = true;
  if (expired_ == Phase::body) co_await send_local(408, Reason::body_timeout, true);
  co_return 0;
}

// The rest of a Content-Length body, from the client to the upstream through io_.
asio::awaitable<bool> ClientConnection::stream_request_body(const Runtime& runtime,
                                                            const config::Upstream& settings,
                                                            std::uint64_t remaining,
                                                            Failure& failure, bool& client_broken) {
  while (remaining > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const std::size_t n = co_await read_request_body(runtime, want, client_broken);
    if (n == 0) co_return false;
    const std::string_view piece(io_.get(), n);
    if (co_await write_upstream(std::span(&piece, 1), settings)) {
      failure = kUpstreamWriteFailed;
      co_return false;
    }
    remaining -= n;
  }
  co_return true;
}

// A chunked body the client is still sending: decoded, checked against the limits and
// re-chunked towards the upstream as it arrives. `buffered` is what arrived with the head; what
// of it the body used is added to `consumed`.
asio::awaitable<bool> ClientConnection::stream_chunked_request(
    const Runtime& runtime, const config::Upstream& settings, std::string_view buffered,
    std::size_t& consumed, Failure& failure, bool& client_broken) {
  ex_->chunked.reset();
  std::string_view input = buffered;
  bool from_in = true;
  for (;;) {
    const auto step = ex_->chunked.step(input);
    input.remove_prefix(step.consumed);
    if (from_in) consumed += step.consumed;
    if (step.error != Reason::none) {
      client_broken = true;
      co_await send_local(400, step.error, true);
      co_return false;
    }
    if (ex_->chunked.payload_bytes() > ex_->body_limit) {
      client_broken = true;
      co_await send_local(413, Reason::body_too_large, true);
      co_return false;
    }
    if (!step.data.empty()) {
      char size_line[24];
      const auto size_length = http::format_chunk_size(step.data.size(), size_line);
      const std::string_view pieces[] = {std::string_view(size_line, size_length), step.data,
                                         "\r\n"};
      if (co_await write_upstream(pieces, settings)) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
    }
    if (step.done) {
      if (!from_in) ex_->pipelined_tail.assign(input);  // the next request's first bytes
      const std::string_view last = "0\r\n\r\n";
      if (co_await write_upstream(std::span(&last, 1), settings)) {
        failure = kUpstreamWriteFailed;
        co_return false;
      }
      break;
    }
    if (input.empty()) {
      const std::size_t n = co_await read_request_body(runtime, kIoBufferBytes, client_broken);
      if (n == 0) co_return false;
      input = std::string_view(io_.get(), n);
      from_in = false;
    }
  }
  co_return true;
}

// Reads the upstream's response head into io_ (interim 1xx responses are skipped).
asio::awaitable<bool> ClientConnection::read_response_head(const config::Upstream& settings,
                                                           Failure& failure) {
  ex_->response_parser.reset();
  ex_->response.clear();
  io_size_ = 0;
  set_deadline(Phase::upstream_io, settings.response_timeout);
  const bool head_request = ex_->head.method == "HEAD";
  for (;;) {
    const auto parsed = ex_->response_parser.parse(std::string_view(io_.get(), io_size_),
                                                   head_request, ex_->response);
    if (parsed.state == http::ParseState::error) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    if (parsed.state == http::ParseState::complete) {
      if (ex_->response.status >= 100 && ex_->response.status < 200) {
        if (ex_->response.status ==
            101) {  // Upgrade is never forwarded, so 101 is a protocol error
          failure = {502, Reason::upstream_bad_response};
          co_return false;
        }
        std::memmove(io_.get(), io_.get() + parsed.head_bytes, io_size_ - parsed.head_bytes);
        io_size_ -= parsed.head_bytes;
        ex_->response_parser.reset();
        ex_->response.clear();
        continue;
      }
      ex_->response_head_bytes = parsed.head_bytes;
      ex_->record.upstream_seconds =
          std::chrono::duration<double>(Clock::now() - ex_->record.upstream_sent).count();
      co_return true;
    }
    if (io_size_ == kIoBufferBytes) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    error_code ec;
    const auto n = co_await upstream_->read_some(
        std::span(io_.get() + io_size_, kIoBufferBytes - io_size_), ec);
    if (ec) {
      failure = expired_ == Phase::upstream_io ? Failure{504, Reason::upstream_timeout}
                                               : Failure{502, Reason::upstream_reset};
      co_return false;
    }
    io_size_ += n;
  }
}

// Sends the response head and streams the upstream's body to the client; returns whether the
// client connection stays open for another request.
asio::awaitable<bool> ClientConnection::relay_response(const Runtime& runtime,
                                                       const config::Upstream& settings,
                                                       const EndpointRuntime& endpoint) {
  const config::Policy& policy = *runtime.policy;
  const bool head_request = ex_->head.method == "HEAD";
  const bool client_http10 = ex_->head.version_minor == 0;
  bool close = !ex_->head.keep_alive || worker_.draining.load(std::memory_order_relaxed);

  if (ex_->response.status >= 500 && policy.errors.mask_upstream_5xx) {
    // The upstream's error page may leak internals: answer with our own body instead.
    upstream_->close();
    upstream_.reset();
    const auto retry_after = find_header(ex_->response.headers, "Retry-After");
    const filters::ExtraHeader extra{"Retry-After", retry_after};
    co_await send_local(ex_->response.status, Reason::upstream_5xx_masked, close,
                        std::span(&extra, retry_after.empty() ? 0 : 1));
    co_return !close;
  }

  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  switch (ex_->response.framing) {
    case BodyFraming::content_length:
      framing = BodyFraming::content_length;
      content_length = ex_->response.content_length;
      break;
    case BodyFraming::chunked:
    case BodyFraming::until_close:
      if (client_http10) {
        framing = BodyFraming::until_close;  // HTTP/1.0 has no chunked: end by closing
        close = true;
      } else {
        framing = BodyFraming::chunked;
      }
      break;
    case BodyFraming::none:
      if (head_request) {
        const auto length = find_header(ex_->response.headers, "Content-Length");
        std::uint64_t value = 0;
        if (!length.empty() &&
            std::all_of(length.begin(), length.end(),
                        [](char c) { return c >= '0' && c <= '9'; }) &&
            length.size() < 19) {
          for (const char c : length)
            value = value * 10 + static_cast<std::uint64_t>(c - '0');
          framing = BodyFraming::content_length;
          content_length = value;
        }
      }
      break;
  }
  ex_->record.status = ex_->response.status;
  ex_->out.clear();
  filters::build_client_response({policy, ex_->request_id, head_request, close}, ex_->response,
                                 framing, content_length, ex_->out);

  std::string_view body(io_.get() + ex_->response_head_bytes, io_size_ - ex_->response_head_bytes);
  bool upstream_reusable = ex_->response.keep_alive;
  const bool chunk_to_client = framing == BodyFraming::chunked;

  if (head_request || ex_->response.framing == BodyFraming::none) {
    const std::string_view piece = ex_->out;
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    upstream_reusable = upstream_reusable && body.empty();
  } else if (ex_->response.framing == BodyFraming::content_length) {
    const auto first = body.substr(0, std::min<std::uint64_t>(body.size(), content_length));
    upstream_reusable = upstream_reusable && first.size() == body.size();
    const std::string_view pieces[] = {ex_->out, first};
    if (co_await write_client(pieces)) co_return false;
    const std::uint64_t remaining = content_length - first.size();
    if (remaining > 0 && !co_await relay_response_body(settings, remaining)) co_return false;
  } else if (!co_await relay_reframed_body(settings, body, chunk_to_client, upstream_reusable)) {
    co_return false;
  }

  if (upstream_reusable && upstream_) {
    worker_.pool(endpoint.id)
        .give_back(std::move(upstream_), settings.max_idle_per_endpoint, coarse_now());
  } else if (upstream_) {
    upstream_->close();
    upstream_.reset();
  }
  co_return !close;
}

// The rest of a Content-Length response body, from the upstream to the client through io_.
// False when either side failed: the client then sees a truncated body and a closed connection.
asio::awaitable<bool> ClientConnection::relay_response_body(const config::Upstream& settings,
                                                            std::uint64_t remaining) {
  while (remaining > 0) {
    set_deadline(Phase::upstream_io, settings.response_timeout);
    error_code ec;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
    const auto n = co_await upstream_->read_some(std::span(io_.get(), want), ec);
    if (ec) co_return false;
    const std::string_view piece(io_.get(), n);
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    remaining -= n;
  }
  co_return true;
}

// A chunked or until-close response: the head (in ex_->out) and the body decoded and re-framed
// towards the client, chunked when `chunk_to_client`, else ended by closing. `body` is what
// arrived with the head. Clears `upstream_reusable` when the upstream connection cannot carry
// another request.
asio::awaitable<bool> ClientConnection::relay_reframed_body(const config::Upstream& settings,
                                                            std::string_view body,
                                                            bool chunk_to_client,
                                                            bool& upstream_reusable) {
  const bool upstream_chunked = ex_->response.framing == BodyFraming::chunked;
  ex_->chunked.reset();
  std::string_view input = body;
  bool head_written = false;
  for (;;) {
    std::string_view data;
    bool done = false;
    if (upstream_chunked) {
      const auto step = ex_->chunked.step(input);
      input.remove_prefix(step.consumed);
      if (step.error != Reason::none) co_return false;
      data = step.data;
      done = step.done;
    } else {
      data = input;
      input = {};
    }
    if (!data.empty() || !head_written) {
      char size_line[24];
      std::size_t size_length = 0;
      if (chunk_to_client && !data.empty())
        size_length = http::format_chunk_size(data.size(), size_line);
      const std::string_view pieces[] = {
          head_written ? std::string_view() : std::string_view(ex_->out),
          std::string_view(size_line, size_length), data,
          chunk_to_client && !data.empty() ? "\r\n" : ""};
      head_written = true;
      if (co_await write_client(pieces)) co_return false;
    }
    if (done) {
      upstream_reusable = upstream_reusable && input.empty();
      break;
    }
    if (input.empty()) {
      set_deadline(Phase::upstream_io, settings.response_timeout);
      error_code ec;
      const auto n = co_await upstream_->read_some(std::span(io_.get(), kIoBufferBytes), ec);
      if (ec) {
        if (!upstream_chunked && ec == asio::error::eof) {
          upstream_reusable = false;
          break;  // until_close: the close is the end of the body
        }
        co_return false;
      }
      input = std::string_view(io_.get(), n);
    }
  }
  if (chunk_to_client) {
    const std::string_view last = "0\r\n\r\n";
    if (co_await write_client(std::span(&last, 1))) co_return false;
  }
  co_return true;
}

// ---- plain-HTTP listeners ---------------------------------------------------------------------

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

void start_connection(Worker& worker, tcp::socket socket, const core::IpAddress& peer,
                      ListenerKind kind, std::size_t listener_index,
                      std::optional<ConnectionLimiter::Slot> slot) {
  auto connection = std::make_shared<ClientConnection>(worker, std::move(socket), peer, kind,
                                                       listener_index, std::move(slot));
  asio::co_spawn(worker.io, connection->run(), asio::detached);
}

// ---- worker buffers ---------------------------------------------------------------------------

std::unique_ptr<char[]> Worker::take_buffer(std::size_t size) {
  for (auto& size_class : free_buffers_) {
    if (size_class.size == size && !size_class.buffers.empty()) {
      auto buffer = std::move(size_class.buffers.back());
      size_class.buffers.pop_back();
      return buffer;
    }
  }
  return std::make_unique_for_overwrite<char[]>(size);
}

void Worker::give_buffer(std::unique_ptr<char[]> buffer, std::size_t size) {
  constexpr std::size_t kMaxFreeBuffersPerSize = 64;
  constexpr std::size_t kMaxSizeClasses = 4;
  for (auto& size_class : free_buffers_) {
    if (size_class.size == size) {
      if (size_class.buffers.size() < kMaxFreeBuffersPerSize)
        size_class.buffers.push_back(std::move(buffer));
      return;
    }
  }
  if (free_buffers_.size() >= kMaxSizeClasses) free_buffers_.erase(free_buffers_.begin());
  free_buffers_.push_back({size, {}});
  free_buffers_.back().buffers.push_back(std::move(buffer));
}

}  // namespace portcullis::net
