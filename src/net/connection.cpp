// The connection loop: one coroutine per client connection, a straight line through the request
// phases (read head with limits, strict checks, the request chain, forward, response filters,
// write). Deadlines are one timer per connection watched by a small coroutine; moving a
// deadline later is a plain store, so most phases cost no timer operation at all.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "connection.hpp"

namespace portcullis::net {
namespace {

constexpr std::size_t kMaxPooledExchanges = 256;
thread_local std::vector<std::unique_ptr<Exchange>> free_exchanges;

}  // namespace

std::unique_ptr<Exchange> take_exchange() {
  if (free_exchanges.empty()) return std::make_unique<Exchange>();
  auto exchange = std::move(free_exchanges.back());
  free_exchanges.pop_back();
  return exchange;
}

void give_exchange(std::unique_ptr<Exchange> exchange) {
  // A large body's buffer goes back to the allocator; a pooled exchange keeps at most
  // kBodyReserveBytes, so one big upload does not pin its memory for the thread's life.
  if (exchange->body.capacity() > kBodyReserveBytes) std::string().swap(exchange->body);
  if (free_exchanges.size() < kMaxPooledExchanges) free_exchanges.push_back(std::move(exchange));
}

void close_if_idle(ClientConnection* connection) {
  connection->close_if_idle();
}

void ClientConnection::arm_timer() {
  deadline_.armed = deadline_.at;
  deadline_.timer.expires_at(deadline_.armed);
  deadline_.timer.async_wait([self = shared_from_this()](const error_code&) { self->on_timer(); });
}

void ClientConnection::on_timer() {
  if (done_) {
    deadline_.armed = Clock::time_point::max();
    return;  // the handler's reference was the last one: the connection goes now
  }
  if (Clock::now() >= deadline_.at) {
    deadline_.expired = deadline_.phase;
    deadline_.at = Clock::time_point::max();
    client_.cancel();
    if (upstream_) upstream_->cancel();
  }
  arm_timer();  // also after a cancel: set_deadline moved the deadline earlier
}

void ClientConnection::finish() {
  if (done_) return;
  done_ = true;
  deadline_.timer.cancel();
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
    tls_version_ = io::tls_version_name(ssl);
    worker_.services.metrics.tls_handshake(tls_version_);
    client_subject_ = io::verified_peer_subject(ssl);
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
      if (ec && may_park && deadline_.expired == Phase::idle &&
          !worker_.draining.load(std::memory_order_relaxed)) {
        park(idle_timeout - kParkAfter);
        co_return true;
      }
      if (ec || worker_.draining.load(std::memory_order_relaxed)) break;
    }
    pinned_ = worker_.pin();  // the snapshot this request keeps to its end
    ensure_exchange();
    begin_request();
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
  token_memo_.clear();
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
  auto buffer = worker_.buffers.take(size);
  if (in_) {
    std::memcpy(buffer.get(), in_.get(), std::min(in_size_, size));
    worker_.buffers.give(std::move(in_), in_capacity_);
  }
  in_ = std::move(buffer);
  in_capacity_ = size;
  in_size_ = std::min(in_size_, size);
}

void ClientConnection::release_buffers() {
  if (in_ && in_size_ == 0) {
    worker_.buffers.give(std::move(in_), in_capacity_);
    in_capacity_ = 0;
  }
  if (io_) worker_.buffers.give(std::move(io_), kIoBufferBytes);
  io_size_ = 0;
  if (ex_ && in_size_ == 0) give_exchange(std::move(ex_));
}

void ClientConnection::ensure_exchange() {
  if (!ex_) ex_ = take_exchange();
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

// Login protection: an answer with a failure status counts against the client IP; the
// max_failures-th within the window bans the IP on every route, through the state backend (so a
// fleet shares it, and it outlives a restart when the backend keeps state on disk).
void ClientConnection::count_login_failure(const Runtime& runtime) {
  const config::LoginProtection& protection = *ex_->route->login_protection;
  const auto& statuses = protection.failure_status;
  if (std::find(statuses.begin(), statuses.end(), ex_->record.status) == statuses.end()) return;
  if (!runtime.state) return;
  auto& services = worker_.services;
  const limits::LoginPolicy policy{
      std::chrono::duration_cast<std::chrono::microseconds>(protection.window),
      protection.max_failures};
  const auto result =
      services.login_failures.record_failure(runtime.login_protection_ids[ex_->route_index],
                                             ex_->client_ip, policy, services.clock->monotonic());
  if (!result.ban) return;
  const auto now =
      std::chrono::duration_cast<std::chrono::seconds>(services.clock->wall().time_since_epoch())
          .count();
  state::Ban ban{ex_->client_ip.client_key(),
                 now + std::chrono::duration_cast<std::chrono::seconds>(protection.ban).count(),
                 "login_failures"};
  services.metrics.state.ban_issued(obs::BanSource::login);
  std::string event = R"("event":"ban","source":"login_protection","client_ip":")";
  event += ban.ip.to_string();
  event += R"(","route":")";
  core::append_json_escaped(event, ex_->route->name);
  event += R"(","failures":)" + std::to_string(result.failures);
  event += R"(,"until":)" + std::to_string(ban.until);
  runtime.logs->security_event(event);
  runtime.state->ban(std::move(ban), [logs = runtime.logs](std::error_code ec) {
    if (ec) {
      logs->security_event(R"("event":"ban_failed","source":"login_protection","error":")" +
                           ec.message() + "\"");
    }
  });
}

// Clears what the previous request on this connection left in the pooled exchange.
void ClientConnection::begin_request() {
  ex_->policy = pinned_->runtime->policy.get();
  ex_->peer = peer_;
  ex_->client_ip = peer_;  // until the head says otherwise (through a trusted proxy)
  ex_->peer_is_trusted_proxy = false;
  ex_->route = nullptr;
  ex_->route_index = 0;
  ex_->principal.reset();
  ex_->claim_headers.clear();
  ex_->subject.clear();
  ex_->token_hash.clear();
  ex_->token_memo = &token_memo_;
  ex_->jwt = {};
  ex_->report_only = false;
  ex_->reply.set(0, Reason::none);
  ex_->record = filters::RequestCtx::Record{};
  ex_->record.started = Clock::now();
}

void ClientConnection::assign_request_id(const config::Policy& policy) {
  if (policy.server.request_id.trust_incoming) {
    const auto incoming =
        http::find_header(ex_->head.headers, policy.server.request_id.header).value_or("");
    if (filters::is_acceptable_request_id(incoming)) {
      ex_->request_id.assign(incoming);
      return;
    }
  }
  worker_.request_ids.next(ex_->request_id);
}

// ---- writing ----------------------------------------------------------------------------------

// What the forwarder (and the local replies) need of this connection for the request in progress.
upstream::ClientSide ClientConnection::client_side() {
  return {client_,
          deadline_,
          *pinned_->runtime->policy,
          *ex_,
          worker_.request_ids,
          worker_.draining,
          std::string_view(in_.get(), in_size_),
          worker_.buffers,
          io_,
          io_size_};
}

// Neither is a coroutine itself: each hands back the awaitable of the function that writes, which
// saves a coroutine frame per write. `pieces`, `extra` and `body` must outlive the co_await (they
// always do: the caller awaits at once).
asio::awaitable<error_code> ClientConnection::write_client(
    std::span<const std::string_view> pieces) {
  return client_side().write(pieces);
}

asio::awaitable<bool> ClientConnection::send_local(int status, Reason reason, bool close,
                                                   std::span<const filters::ExtraHeader> extra,
                                                   std::string_view body) {
  return upstream::send_local(client_side(), status, reason, close, extra, body);
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
      if (deadline_.expired == Phase::head && in_size_ > 0) {
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
  const obs::RouteMetrics* route_metrics =
      ex_->route ? runtime.route_metrics[ex_->route_index] : runtime.unmatched_metrics;
  route_metrics->observe(ex_->record.status, seconds, ex_->record.upstream_seconds);
  auto& metrics = worker_.services.metrics;
  if (ex_->jwt.checked) metrics.jwt_verification(ex_->jwt.result, ex_->jwt.cache_hit);
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
  if (ex_->route && ex_->route->login_protection) count_login_failure(runtime);
  obs::Logs& logs = *runtime.logs;
  const bool rejected = ex_->record.reason != Reason::none && ex_->record.status < 500;
  if (!logs.access_enabled() && !rejected) return;
  const obs::AccessRecord access{
      ex_->request_id,
      ex_->client_ip,
      ex_->head.method,
      ex_->path.empty() ? ex_->head.path : std::string_view(ex_->path),
      ex_->route ? std::string_view(ex_->route->name) : std::string_view(),
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

void start_connection(Worker& worker, tcp::socket socket, const core::IpAddress& peer,
                      ListenerKind kind, std::size_t listener_index,
                      std::optional<ConnectionLimiter::Slot> slot) {
  auto connection = std::make_shared<ClientConnection>(worker, std::move(socket), peer, kind,
                                                       listener_index, std::move(slot));
  asio::co_spawn(worker.io, connection->run(), asio::detached);
}

}  // namespace portcullis::net
