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

}  // namespace

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(Worker& worker, tcp::socket socket, ListenerKind kind,
                   std::size_t listener_index)
      : worker_(worker),
        client_(std::move(socket)),
        timer_(worker.io),
        kind_(kind),
        listener_index_(listener_index),
        parser_(http::HeadLimits{}) {
    peer_ = peer_address(client_.socket());
  }

  asio::awaitable<void> run();
  void close_if_idle() {
    if (idle_) client_.cancel();
  }

 private:
  // ---- deadlines ----
  static asio::awaitable<void> watchdog(std::shared_ptr<ClientConnection> self);
  void set_deadline(Phase phase, config::Duration timeout) {
    phase_ = phase;
    expired_ = Phase::none;
    deadline_ = Clock::now() + timeout;
    if (deadline_ < armed_) timer_.cancel();  // the watchdog re-arms for the earlier time
  }

  // ---- phases ----
  asio::awaitable<void> request_loop();
  asio::awaitable<bool> handle_request();
  asio::awaitable<bool> process_request();
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
  asio::awaitable<bool> relay_response(const Runtime& runtime, const config::Upstream& settings,
                                       const EndpointRuntime& endpoint);
  asio::awaitable<void> send_local(int status, Reason reason, bool close,
                                   std::span<const filters::ExtraHeader> extra = {});
  asio::awaitable<void> serve_redirect();
  asio::awaitable<void> serve_admin();
  asio::awaitable<error_code> write_client(std::span<const std::string_view> pieces);
  asio::awaitable<error_code> write_upstream(std::span<const std::string_view> pieces,
                                             const config::Upstream& settings);

  // ---- buffers ----
  void ensure_head_buffer(std::size_t size);
  void release_buffers();
  void ensure_io_buffer();
  void consume_input(std::size_t bytes);
  void assign_request_id(const config::Policy& policy);
  const EndpointRuntime* pick_endpoint(const UpstreamRuntime& upstream, std::size_t index,
                                       const EndpointRuntime* avoid);
  void finish();

  Worker& worker_;
  Stream client_;
  asio::steady_timer timer_;
  ListenerKind kind_;
  std::size_t listener_index_;
  core::IpAddress peer_;
  std::string client_subject_;  // verified client-certificate subject, for later filters

  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point armed_ = Clock::time_point::max();
  Phase phase_ = Phase::none;
  Phase expired_ = Phase::none;
  bool done_ = false;
  bool idle_ = false;

  std::shared_ptr<const PinnedRuntime> pinned_;
  std::unique_ptr<char[]> in_;  // request head, then whatever followed it
  std::size_t in_capacity_ = 0;
  std::size_t in_size_ = 0;
  std::unique_ptr<char[]> io_;  // body streaming and upstream response
  std::size_t io_size_ = 0;
  std::string pipelined_tail_;  // bytes of the next request read while streaming a body

  http::RequestParser parser_;
  http::RequestHead head_;
  http::ResponseParser response_parser_{kIoBufferBytes};
  http::ResponseHead response_;
  http::ChunkedDecoder chunked_;
  std::string path_;
  std::string request_id_;
  std::string out_;
  std::unique_ptr<Stream> upstream_;
  bool upstream_reused_ = false;
  std::size_t response_head_bytes_ = 0;
  std::size_t consume_after_ = 0;  // input bytes the current request used; dropped at its end
  std::vector<std::string_view> dechunked_;  // a whole buffered chunked body, decoded
  std::size_t dechunked_consumed_ = 0;       // its encoded size in the input
  std::vector<std::string_view> pieces_;

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
  } record_;
  std::string_view tls_version_;
};

void close_if_idle(ClientConnection* connection) {
  connection->close_if_idle();
}

asio::awaitable<void> ClientConnection::watchdog(std::shared_ptr<ClientConnection> self) {
  while (!self->done_) {
    self->armed_ = self->deadline_;
    self->timer_.expires_at(self->armed_);
    error_code ec;
    co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (self->done_) break;
    if (Clock::now() >= self->deadline_) {
      self->expired_ = self->phase_;
      self->deadline_ = Clock::time_point::max();
      self->client_.cancel();
      if (self->upstream_) self->upstream_->cancel();
    }
  }
  self->armed_ = Clock::time_point::max();
}

void ClientConnection::finish() {
  done_ = true;
  timer_.cancel();
  if (upstream_) upstream_->close();
  upstream_.reset();
  release_buffers();
  client_.close();
  worker_.connections.erase(this);
  if (kind_ != ListenerKind::admin) worker_.services.metrics.connection_closed();
}

asio::awaitable<void> ClientConnection::run() {
  worker_.connections.insert(this);
  if (kind_ != ListenerKind::admin) worker_.services.metrics.connection_opened();
  asio::co_spawn(worker_.io, watchdog(shared_from_this()), asio::detached);
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
    co_await request_loop();
  } else if (kind_ == ListenerKind::redirect) {
    co_await serve_redirect();
  } else {
    co_await serve_admin();
  }
  finish();
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
}

void ClientConnection::consume_input(std::size_t bytes) {
  bytes = std::min(bytes, in_size_);
  std::memmove(in_.get(), in_.get() + bytes, in_size_ - bytes);
  in_size_ -= bytes;
  if (!pipelined_tail_.empty()) {
    const std::size_t room = in_capacity_ - in_size_;
    const std::size_t take = std::min(room, pipelined_tail_.size());
    std::memcpy(in_.get() + in_size_, pipelined_tail_.data(), take);
    in_size_ += take;
    pipelined_tail_.clear();
  }
}

void ClientConnection::assign_request_id(const config::Policy& policy) {
  if (policy.server.request_id.trust_incoming) {
    const auto incoming = find_header(head_.headers, policy.server.request_id.header);
    if (filters::is_acceptable_request_id(incoming)) {
      request_id_.assign(incoming);
      return;
    }
  }
  worker_.request_ids.next(request_id_);
}

// ---- writing ----------------------------------------------------------------------------------

asio::awaitable<error_code> ClientConnection::write_client(
    std::span<const std::string_view> pieces) {
  set_deadline(Phase::client_write, pinned_->runtime->policy->server.limits.body_timeout);
  for (const auto piece : pieces)
    record_.bytes_out += piece.size();
  co_return co_await client_.write_all(pieces);
}

asio::awaitable<error_code> ClientConnection::write_upstream(
    std::span<const std::string_view> pieces, const config::Upstream& settings) {
  set_deadline(Phase::upstream_io, settings.response_timeout);
  co_return co_await upstream_->write_all(pieces);
}

asio::awaitable<void> ClientConnection::send_local(int status, Reason reason, bool close,
                                                   std::span<const filters::ExtraHeader> extra) {
  const config::Policy& policy = *pinned_->runtime->policy;
  if (request_id_.empty()) worker_.request_ids.next(request_id_);
  out_.clear();
  const bool head_request = head_.method == "HEAD";
  filters::build_local_reply({policy, request_id_, head_request, close}, status,
                             core::error_code_for_status(status), extra, out_);
  record_.status = status;
  record_.reason = reason;
  const std::string_view piece = out_;
  co_await write_client(std::span(&piece, 1));
}

// ---- the request loop -------------------------------------------------------------------------

asio::awaitable<void> ClientConnection::request_loop() {
  for (;;) {
    if (in_size_ == 0) {
      release_buffers();  // an idle connection holds no request buffers
      if (worker_.draining.load(std::memory_order_relaxed)) co_return;
      set_deadline(Phase::idle, pinned_->runtime->policy->server.limits.idle_timeout);
      idle_ = true;
      const auto ec = co_await client_.wait_readable();
      idle_ = false;
      if (ec || worker_.draining.load(std::memory_order_relaxed)) co_return;
    }
    pinned_ = worker_.pin();  // the snapshot this request keeps to its end
    if (!co_await handle_request()) co_return;
  }
}

asio::awaitable<bool> ClientConnection::read_head(const Runtime& runtime,
                                                  http::ParseResult& parsed) {
  ensure_head_buffer(runtime.head_buffer_bytes);
  parser_ = http::RequestParser(runtime.head_limits);
  head_.clear();
  request_id_.clear();
  path_.clear();
  bool deadline_set = false;
  for (;;) {
    parsed = parser_.parse(std::string_view(in_.get(), in_size_), head_);
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

asio::awaitable<bool> ClientConnection::handle_request() {
  record_ = Record{};
  record_.started = Clock::now();
  consume_after_ = 0;
  const bool keep_alive = co_await process_request();
  finish_record();
  // Only now may the request's bytes go: its head (method, path) was in use until here.
  if (keep_alive) consume_input(consume_after_);
  co_return keep_alive;
}

void ClientConnection::finish_record() {
  if (record_.status == 0) return;  // nothing was answered (the client went away)
  const Runtime& runtime = *pinned_->runtime;
  const double seconds = std::chrono::duration<double>(Clock::now() - record_.started).count();
  const obs::RouteMetrics* route_metrics =
      record_.route ? runtime.route_metrics[record_.route_index] : runtime.unmatched_metrics;
  route_metrics->observe(record_.status, seconds, record_.upstream_seconds);
  auto& metrics = worker_.services.metrics;
  if (record_.reason != Reason::none) {
    metrics.rejection(record_.reason);
    switch (record_.reason) {
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
  const bool rejected = record_.reason != Reason::none && record_.status < 500;
  if (!logs.access_enabled() && !rejected) return;
  const obs::AccessRecord access{
      request_id_,
      filters::client_ip(*runtime.policy, head_, peer_),
      head_.method,
      path_.empty() ? head_.path : std::string_view(path_),
      record_.route ? std::string_view(record_.route->name) : std::string_view(),
      record_.status,
      record_.bytes_in,
      record_.bytes_out,
      seconds,
      record_.upstream,
      record_.upstream_seconds,
      tls_version_,
      record_.reason};
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
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return false;
  }
  const std::size_t head_bytes = parsed.head_bytes;
  record_.bytes_in = head_bytes;
  const bool has_body = head_.framing != BodyFraming::none;
  const bool keep_alive = head_.keep_alive && !worker_.draining.load(std::memory_order_relaxed);
  assign_request_id(policy);

  if (const auto reason = http::normalize_path(head_.path, path_); reason != Reason::none) {
    co_await send_local(400, reason, true);
    co_return false;
  }
  const auto decision = runtime.router.match(head_.method, path_);
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
    consume_after_ = head_bytes;
    co_return true;
  }
  record_.route = decision.route;
  record_.route_index = decision.route_index;
  if (head_.framing == BodyFraming::content_length &&
      head_.content_length > policy.server.limits.max_body_bytes) {
    co_await send_local(413, Reason::body_too_large, true);
    co_return false;
  }
  co_return co_await forward(runtime, *decision.route, head_bytes);
}

// ---- forwarding -------------------------------------------------------------------------------

const EndpointRuntime* ClientConnection::pick_endpoint(const UpstreamRuntime& upstream,
                                                       std::size_t index,
                                                       const EndpointRuntime* avoid) {
  const std::size_t count = upstream.endpoints.size();
  const std::size_t start = worker_.next_round_robin(index);
  const auto now = Clock::now();
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
  const bool idempotent = is_idempotent(head_.method);
  const bool has_body = head_.framing != BodyFraming::none;

  // A chunked body already buffered whole is checked before anything goes upstream, and sent
  // with a Content-Length: malformed framing never reaches the upstream, and legacy upstreams
  // that mishandle chunked bodies receive a plain one.
  BodyFraming upstream_framing = head_.framing;
  std::uint64_t upstream_length = head_.content_length;
  dechunked_.clear();
  if (head_.framing == BodyFraming::chunked) {
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
      if (payload > policy.server.limits.max_body_bytes) {
        co_await send_local(413, Reason::body_too_large, true);
        co_return false;
      }
      if (!step.data.empty()) dechunked_.push_back(step.data);
      if (step.done) {
        upstream_framing = payload ? BodyFraming::content_length : BodyFraming::none;
        upstream_length = payload;
        dechunked_consumed_ = in_size_ - head_bytes - input.size();
        break;
      }
      if (input.empty()) {
        dechunked_.clear();  // not all here yet: stream it
        break;
      }
    }
  }

  out_.clear();
  const filters::UpstreamRequest request{
      head_,          path_, peer_, is_trusted_proxy(policy, peer_), request_id_, upstream_framing,
      upstream_length};
  filters::build_upstream_request(policy, request, out_);
  const bool dechunked =
      head_.framing == BodyFraming::chunked && upstream_framing != BodyFraming::chunked;

  std::size_t attempts_left = 1 + (idempotent ? settings.retries : 0);
  bool stale_retry_left = true;
  bool sent_continue = false;
  const EndpointRuntime* failed_endpoint = nullptr;
  Failure failure{503, Reason::no_healthy_upstream};
  for (;;) {
    const EndpointRuntime* endpoint =
        pick_endpoint(upstream, route.upstream_index, failed_endpoint);
    if (!endpoint) break;  // `failure` holds the last attempt's outcome, or 503
    record_.upstream = endpoint->address.text;
    upstream_ = worker_.pool(endpoint->id).take(Clock::now());
    upstream_reused_ = static_cast<bool>(upstream_);
    if (!upstream_) {
      upstream_ = co_await connect(upstream, *endpoint, failure);
      if (!upstream_) {
        endpoint->health->mark_failure(Clock::now(), settings.health_check.interval);
        failed_endpoint = endpoint;
        if (--attempts_left > 0) continue;
        break;
      }
    }
    if (head_.expect_continue && has_body && !sent_continue && in_size_ == head_bytes) {
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
      if (upstream_reused_ && repeatable && stale_retry_left) {
        // A pooled connection the upstream had already closed: not the endpoint's fault.
        stale_retry_left = false;
        continue;
      }
      if (failure.reason == Reason::upstream_reset || failure.reason == Reason::upstream_timeout) {
        endpoint->health->mark_failure(Clock::now(), settings.health_check.interval);
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
  const bool close = has_body || !head_.keep_alive;
  co_await send_local(failure.status, failure.reason, close);
  if (close) co_return false;
  consume_after_ = head_bytes;
  co_return true;
}

// Sends the head and streams the body, then reads the upstream's response head into io_.
// Returns false with `failure` set when the upstream failed, or `client_broken` when the client
// did (a local reply has then been sent if one could be).
asio::awaitable<bool> ClientConnection::send_request(const Runtime& runtime,
                                                     const config::Upstream& settings,
                                                     std::size_t head_bytes, bool dechunked,
                                                     Failure& failure, bool& client_broken) {
  const auto& limits = runtime.policy->server.limits;
  ensure_io_buffer();
  const std::string_view buffered(in_.get() + head_bytes, in_size_ - head_bytes);
  std::size_t consumed = head_bytes;
  const Failure upstream_write_failed{502, Reason::upstream_reset};

  if (dechunked) {
    // The whole (validated) body was buffered: head and payload in one write.
    pieces_.assign(1, std::string_view(out_));
    pieces_.insert(pieces_.end(), dechunked_.begin(), dechunked_.end());
    if (co_await write_upstream(pieces_, settings)) {
      failure = upstream_write_failed;
      co_return false;
    }
    consumed += dechunked_consumed_;
  } else if (head_.framing == BodyFraming::content_length) {
    const auto first =
        buffered.substr(0, std::min<std::uint64_t>(buffered.size(), head_.content_length));
    const std::string_view pieces[] = {out_, first};
    if (co_await write_upstream(pieces, settings)) {
      failure = upstream_write_failed;
      co_return false;
    }
    consumed += first.size();
    std::uint64_t remaining = head_.content_length - first.size();
    while (remaining > 0) {
      set_deadline(Phase::body, limits.body_timeout);
      error_code ec;
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
      const auto n = co_await client_.read_some(std::span(io_.get(), want), ec);
      if (ec) {
        client_broken = true;
        if (expired_ == Phase::body) co_await send_local(408, Reason::body_timeout, true);
        co_return false;
      }
      const std::string_view piece(io_.get(), n);
      if (co_await write_upstream(std::span(&piece, 1), settings)) {
        failure = upstream_write_failed;
        co_return false;
      }
      remaining -= n;
    }
  } else if (head_.framing == BodyFraming::chunked) {
    const std::string_view head_piece = out_;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = upstream_write_failed;
      co_return false;
    }
    chunked_.reset();
    std::string_view input = buffered;
    bool from_in = true;
    for (;;) {
      const auto step = chunked_.step(input);
      input.remove_prefix(step.consumed);
      if (from_in) consumed += step.consumed;
      if (step.error != Reason::none) {
        client_broken = true;
        co_await send_local(400, step.error, true);
        co_return false;
      }
      if (chunked_.payload_bytes() > limits.max_body_bytes) {
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
          failure = upstream_write_failed;
          co_return false;
        }
      }
      if (step.done) {
        if (!from_in) pipelined_tail_.assign(input);  // the next request's first bytes
        const std::string_view last = "0\r\n\r\n";
        if (co_await write_upstream(std::span(&last, 1), settings)) {
          failure = upstream_write_failed;
          co_return false;
        }
        break;
      }
      if (input.empty()) {
        set_deadline(Phase::body, limits.body_timeout);
        error_code ec;
        const auto n = co_await client_.read_some(std::span(io_.get(), kIoBufferBytes), ec);
        if (ec) {
          client_broken = true;
          if (expired_ == Phase::body) co_await send_local(408, Reason::body_timeout, true);
          co_return false;
        }
        input = std::string_view(io_.get(), n);
        from_in = false;
      }
    }
  } else {
    const std::string_view head_piece = out_;
    if (co_await write_upstream(std::span(&head_piece, 1), settings)) {
      failure = upstream_write_failed;
      co_return false;
    }
  }
  // The request is fully read; its bytes leave the input when the exchange ends.
  consume_after_ = consumed;
  std::uint64_t body_bytes = 0;
  if (dechunked) {
    for (const auto piece : dechunked_)
      body_bytes += piece.size();
  } else if (head_.framing == BodyFraming::content_length) {
    body_bytes = head_.content_length;
  } else if (head_.framing == BodyFraming::chunked) {
    body_bytes = chunked_.payload_bytes();
  }
  record_.bytes_in = head_bytes + body_bytes;
  record_.upstream_sent = Clock::now();

  // Response head.
  response_parser_.reset();
  response_.clear();
  io_size_ = 0;
  set_deadline(Phase::upstream_io, settings.response_timeout);
  const bool head_request = head_.method == "HEAD";
  for (;;) {
    const auto parsed =
        response_parser_.parse(std::string_view(io_.get(), io_size_), head_request, response_);
    if (parsed.state == http::ParseState::error) {
      failure = {502, Reason::upstream_bad_response};
      co_return false;
    }
    if (parsed.state == http::ParseState::complete) {
      if (response_.status >= 100 && response_.status < 200) {
        if (response_.status == 101) {  // Upgrade is never forwarded, so 101 is a protocol error
          failure = {502, Reason::upstream_bad_response};
          co_return false;
        }
        std::memmove(io_.get(), io_.get() + parsed.head_bytes, io_size_ - parsed.head_bytes);
        io_size_ -= parsed.head_bytes;
        response_parser_.reset();
        response_.clear();
        continue;
      }
      response_head_bytes_ = parsed.head_bytes;
      record_.upstream_seconds =
          std::chrono::duration<double>(Clock::now() - record_.upstream_sent).count();
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
  const bool head_request = head_.method == "HEAD";
  const bool client_http10 = head_.version_minor == 0;
  bool close = !head_.keep_alive || worker_.draining.load(std::memory_order_relaxed);

  if (response_.status >= 500 && policy.errors.mask_upstream_5xx) {
    // The upstream's error page may leak internals: answer with our own body instead.
    upstream_->close();
    upstream_.reset();
    const auto retry_after = find_header(response_.headers, "Retry-After");
    const filters::ExtraHeader extra{"Retry-After", retry_after};
    co_await send_local(response_.status, Reason::upstream_5xx_masked, close,
                        std::span(&extra, retry_after.empty() ? 0 : 1));
    co_return !close;
  }

  BodyFraming framing = BodyFraming::none;
  std::uint64_t content_length = 0;
  switch (response_.framing) {
    case BodyFraming::content_length:
      framing = BodyFraming::content_length;
      content_length = response_.content_length;
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
        const auto length = find_header(response_.headers, "Content-Length");
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
  record_.status = response_.status;
  out_.clear();
  filters::build_client_response({policy, request_id_, head_request, close}, response_, framing,
                                 content_length, out_);

  std::string_view body(io_.get() + response_head_bytes_, io_size_ - response_head_bytes_);
  bool upstream_reusable = response_.keep_alive;
  const bool chunk_to_client = framing == BodyFraming::chunked;

  if (head_request || response_.framing == BodyFraming::none) {
    const std::string_view piece = out_;
    if (co_await write_client(std::span(&piece, 1))) co_return false;
    upstream_reusable = upstream_reusable && body.empty();
  } else if (response_.framing == BodyFraming::content_length) {
    const auto first = body.substr(0, std::min<std::uint64_t>(body.size(), content_length));
    upstream_reusable = upstream_reusable && first.size() == body.size();
    const std::string_view pieces[] = {out_, first};
    if (co_await write_client(pieces)) co_return false;
    std::uint64_t remaining = content_length - first.size();
    while (remaining > 0) {
      set_deadline(Phase::upstream_io, settings.response_timeout);
      error_code ec;
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kIoBufferBytes));
      const auto n = co_await upstream_->read_some(std::span(io_.get(), want), ec);
      if (ec) co_return false;  // the client sees a truncated body and a closed connection
      const std::string_view piece(io_.get(), n);
      if (co_await write_client(std::span(&piece, 1))) co_return false;
      remaining -= n;
    }
  } else {
    // chunked or until_close from the upstream: decode and re-frame towards the client.
    const bool upstream_chunked = response_.framing == BodyFraming::chunked;
    chunked_.reset();
    std::string_view input = body;
    bool head_written = false;
    for (;;) {
      std::string_view data;
      bool done = false;
      if (upstream_chunked) {
        const auto step = chunked_.step(input);
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
            head_written ? std::string_view() : std::string_view(out_),
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
  }

  if (upstream_reusable && upstream_) {
    worker_.pool(endpoint.id)
        .give_back(std::move(upstream_), settings.max_idle_per_endpoint, Clock::now());
  } else if (upstream_) {
    upstream_->close();
    upstream_.reset();
  }
  co_return !close;
}

// ---- plain-HTTP listeners ---------------------------------------------------------------------

asio::awaitable<void> ClientConnection::serve_redirect() {
  const Runtime& runtime = *pinned_->runtime;
  const config::Policy& policy = *runtime.policy;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return;
  if (parsed.state == http::ParseState::error) {
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return;
  }
  std::string_view host = head_.host;
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
  location += head_.target;
  worker_.request_ids.next(request_id_);
  out_ = "HTTP/1.1 308 Permanent Redirect\r\n";
  for (const auto& [name, value] : policy.headers.response_set) {
    out_ += name;
    out_ += ": ";
    out_ += value;
    out_ += "\r\n";
  }
  out_ += policy.server.request_id.header + ": " + request_id_ + "\r\n";
  out_ += "Location: " + location + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  const std::string_view piece = out_;
  co_await write_client(std::span(&piece, 1));
}

asio::awaitable<void> ClientConnection::serve_admin() {
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
  if (head_.method != "GET" && head_.method != "HEAD") {
    co_await send_local(405, Reason::method_not_allowed, true);
    co_return;
  }
  if (head_.path == "/metrics") {
    const std::string exposition = worker_.services.metrics.expose();
    out_ =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: ";
    out_ += std::to_string(exposition.size());
    out_ += "\r\nConnection: close\r\n\r\n";
    if (head_.method == "GET") out_ += exposition;
    const std::string_view piece = out_;
    co_await write_client(std::span(&piece, 1));
    co_return;
  }
  if (head_.path == "/healthz") {
    status_line = "HTTP/1.1 200 OK\r\n";
    body = "{\"status\":\"alive\"}\n";
  } else if (head_.path == "/readyz") {
    status_line = draining ? "HTTP/1.1 503 Service Unavailable\r\n" : "HTTP/1.1 200 OK\r\n";
    body = draining ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ready\"}\n";
  } else {
    co_await send_local(404, Reason::no_route, true);
    co_return;
  }
  out_.assign(status_line);
  out_ += "Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ";
  out_ += std::to_string(body.size());
  out_ += "\r\nConnection: close\r\n\r\n";
  if (head_.method == "GET") out_ += body;
  const std::string_view piece = out_;
  co_await write_client(std::span(&piece, 1));
}

asio::awaitable<void> serve_connection(
    Worker& worker, tcp::socket socket, ListenerKind kind, std::size_t listener_index,
    [[maybe_unused]] std::optional<ConnectionLimiter::Slot> slot) {
  auto connection =
      std::make_shared<ClientConnection>(worker, std::move(socket), kind, listener_index);
  co_await connection->run();
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
