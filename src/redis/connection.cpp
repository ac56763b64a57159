#include "portcullis/redis/connection.hpp"

#include <tuple>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <span>
#include <vector>

#include "portcullis/config/policy.hpp"
#include "portcullis/io/stream.hpp"
#include "portcullis/io/tls_context.hpp"

namespace portcullis::redis {

using io::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kReadBufferBytes = 16 * 1024;
// A batch buffer grown past this by a burst is given back once written.
constexpr std::size_t kKeptBatchBytes = 64 * 1024;

}  // namespace

struct Connection::Request {
  explicit Request(const asio::any_io_executor& executor) : timer(executor) {}
  std::string payload;        // the encoded command, until written
  asio::steady_timer timer;   // the deadline; cancelled when the reply is in
  std::uint64_t link_id = 0;  // the link the command was queued on
  Reply reply;
  bool done = false;
  bool abandoned = false;  // the caller stopped waiting: the reply is dropped
};

struct Connection::Link {
  Link(const asio::any_io_executor& executor, std::size_t max_reply_bytes)
      : stream(std::make_unique<io::Stream>(tcp::socket(executor))),
        parser(max_reply_bytes),
        resolver(executor),
        timer(executor) {}
  std::unique_ptr<io::Stream> stream;
  Parser parser;
  tcp::resolver resolver;
  asio::steady_timer timer;  // the connect deadline, then the health check's interval
  std::uint64_t id = 0;
  bool broken = false;
};

std::shared_ptr<Connection> Connection::create(asio::any_io_executor executor,
                                               RedisOptions options) {
  return std::shared_ptr<Connection>(new Connection(std::move(executor), std::move(options)));
}

Connection::Connection(asio::any_io_executor executor, RedisOptions options)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      writer_wake_(executor_, asio::steady_timer::time_point::max()),
      backoff_timer_(executor_),
      random_(std::random_device{}()) {
  if (options_.tls) {
    config::UpstreamTls tls;
    tls.enabled = true;
    tls.ca_file = options_.ca_file;
    tls.server_name = options_.server_name;
    tls.verify = true;
    tls_ = std::make_unique<io::ClientTlsContext>(tls, config::Location{"state.redis", 0, 0});
  }
}

Connection::~Connection() = default;

std::string Connection::key(std::string_view name) const {
  std::string full;
  full.reserve(options_.key_prefix.size() + name.size());
  full += options_.key_prefix;
  full += name;
  return full;
}

void Connection::start() {
  if (started_ || stopped_) return;
  started_ = true;
  asio::co_spawn(executor_, run(), asio::detached);
}

void Connection::stop() {
  if (stopped_) return;
  stopped_ = true;
  on_state_ = nullptr;  // the owner asked: it hears nothing more, and may be going away
  if (link_) break_link(link_->id, "stopped");
  backoff_timer_.cancel();
  for (auto* waiter : ready_waiters_)
    waiter->cancel();
}

// ---- commands -----------------------------------------------------------------------------------

asio::awaitable<Reply> Connection::execute(Command command) {
  return execute(std::move(command), options_.command_timeout);
}

asio::awaitable<Reply> Connection::execute(Command command, std::chrono::milliseconds timeout) {
  if (!ready_ || stopped_) co_return Reply{Status::disconnected, {}};
  if (pending() >= options_.max_in_flight) co_return Reply{Status::overloaded, {}};
  auto request = std::make_shared<Request>(executor_);
  request->payload = encode(command);
  request->link_id = link_->id;
  request->timer.expires_after(timeout);
  queued_.push_back(request);
  if (queued_.size() == 1) writer_wake_.cancel();  // the writer may be waiting for work
  auto [ec] = co_await request->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!request->done && !ec && reply_waiting(request->link_id)) {
    // The reply is in the socket, but this thread was late to read it (a busy CPU wakes the
    // deadline and the reader together, in either order): let the reader have one more turn
    // rather than call a live server hung.
    request->timer.expires_after(timeout);
    std::tie(ec) = co_await request->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (request->done) co_return std::move(request->reply);
  request->abandoned = true;
  if (ec) co_return Reply{Status::disconnected, {}};  // the caller's own cancellation
  // The server did not answer in time: presume it hung, so that the next commands do not queue
  // behind this one.
  break_link(request->link_id, "a command timed out");
  co_return Reply{Status::timeout, {}};
}

bool Connection::reply_waiting(std::uint64_t link_id) const {
  if (!link_ || link_->id != link_id || link_->broken) return false;
  error_code ec;
  return link_->stream->socket().available(ec) > 0 && !ec;
}

void Connection::complete(Request& request, Status status, Value value) {
  if (request.done) return;
  request.done = true;
  request.reply.status = status;
  request.reply.value = std::move(value);
  request.timer.cancel();
}

void Connection::break_link(std::uint64_t link_id, std::string why, Status oldest) {
  if (!link_ || link_->id != link_id || link_->broken) return;
  link_->broken = true;
  const bool was_ready = ready_;
  ready_ = false;
  last_error_ = std::move(why);
  error_code ignored;
  link_->resolver.cancel();
  link_->stream->socket().close(ignored);  // ends the reader, and the writer if it waits
  link_->timer.cancel();
  writer_wake_.cancel();
  auto in_flight = std::move(in_flight_);
  auto queued = std::move(queued_);
  in_flight_.clear();
  queued_.clear();
  for (auto& request : in_flight) {
    complete(*request, oldest);
    oldest = Status::disconnected;
  }
  for (auto& request : queued)
    complete(*request, Status::disconnected);
  // Reported once per outage: when a ready connection breaks, or when the first attempt fails.
  if (was_ready || !down_reported_) {
    down_reported_ = true;
    notify_state(false, last_error_);
  }
}

void Connection::notify_state(bool ready, const std::string& reason) {
  if (!on_state_) return;
  const auto handler = on_state_;  // a copy: the handler may call stop(), which drops on_state_
  handler(ready, reason);
}

asio::awaitable<bool> Connection::wait_ready(std::chrono::milliseconds timeout) {
  if (ready_) co_return true;
  if (stopped_) co_return false;
  asio::steady_timer waiter(executor_);
  waiter.expires_after(timeout);
  ready_waiters_.push_back(&waiter);
  co_await waiter.async_wait(asio::as_tuple(asio::use_awaitable));
  std::erase(ready_waiters_, &waiter);
  co_return ready_;
}

// ---- the connection's life ------------------------------------------------------------------

std::chrono::milliseconds Connection::backoff(unsigned attempt) {
  const auto floor = std::max<std::int64_t>(options_.backoff_min.count(), 1);
  std::int64_t ceiling = options_.backoff_max.count();
  if (attempt < 32) ceiling = std::min<std::int64_t>(ceiling, floor << attempt);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling, 0));
  return std::chrono::milliseconds(pick(random_));
}

asio::awaitable<void> Connection::run() {
  using namespace asio::experimental::awaitable_operators;
  const auto self = shared_from_this();  // lives until the loop ends
  unsigned attempt = 0;
  while (!stopped_) {
    auto link = co_await connect();
    if (link && !stopped_) {
      attempt = 0;
      ++generation_;
      ready_ = true;
      for (auto* waiter : ready_waiters_)
        waiter->cancel();
      down_reported_ = false;
      notify_state(true, {});
      // Each loop ends when the link breaks, and every way of breaking it ends the other two.
      try {
        co_await (read_loop(link) && write_loop(link) && health_loop(link));
      } catch (const std::exception& error) {  // out of memory: drop this link, not the loop
        break_link(link->id, std::string("internal error: ") + error.what());
      }
    }
    if (stopped_) break;
    backoff_timer_.expires_after(backoff(attempt));
    if (attempt < 32) ++attempt;
    co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  link_.reset();
}

asio::awaitable<std::shared_ptr<Connection::Link>> Connection::connect() {
  auto link = std::make_shared<Link>(executor_, options_.max_reply_bytes);
  link->id = ++link_ids_;
  link_ = link;
  const auto id = link->id;
  link->timer.expires_after(options_.connect_timeout);
  link->timer.async_wait([this, self = shared_from_this(), id](const error_code& ec) {
    if (!ec) break_link(id, "connect timed out");
  });
  const auto failed = [&](std::string why) -> std::shared_ptr<Link> {
    // break_link keeps the first reason (a deadline) when there already is one.
    break_link(id, std::move(why));
    return nullptr;
  };

  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  const auto address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, options_.port);
  } else {
    auto results =
        co_await link->resolver.async_resolve(options_.host, std::to_string(options_.port),
                                              asio::redirect_error(asio::use_awaitable, ec));
    if (link->broken) co_return nullptr;
    if (ec) co_return failed("cannot resolve " + options_.host + ": " + ec.message());
    for (const auto& entry : results)
      endpoints.push_back(entry.endpoint());
  }
  ec = asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    if (link->broken) co_return nullptr;
    link->stream->socket().close(ec);
    co_await link->stream->socket().async_connect(endpoint,
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) break;
  }
  if (link->broken) co_return nullptr;
  if (ec) co_return failed("cannot connect to " + options_.host + ": " + ec.message());
  link->stream->configure_socket();
  if (tls_) {
    SSL* ssl = tls_->new_ssl(options_.host);
    if (!ssl) co_return failed("cannot create a TLS session");
    link->stream->attach_tls(ssl);
    ec = co_await link->stream->handshake();
    if (link->broken) co_return nullptr;
    if (ec)
      co_return failed("TLS with " + options_.host + " failed (certificate or name not verified?)");
  }

  // AUTH, SELECT and a PING in one write; every reply must be a success (a server still loading
  // its data answers PING with an error).
  std::string hello;
  std::size_t expected = 0;
  if (!options_.password.empty()) {
    hello += options_.user.empty() ? encode({"AUTH", options_.password})
                                   : encode({"AUTH", options_.user, options_.password});
    ++expected;
  }
  if (options_.database != 0) {
    hello += encode({"SELECT", std::to_string(options_.database)});
    ++expected;
  }
  hello += encode({"PING"});
  ++expected;
  ec = co_await link->stream->write_all(std::string_view(hello));
  if (link->broken) co_return nullptr;
  if (ec) co_return failed("cannot write to " + options_.host + ": " + ec.message());
  std::vector<char> buffer(kReadBufferBytes);
  for (std::size_t index = 0; index < expected;) {
    if (auto value = link->parser.next()) {
      if (value->is_error()) {
        // The error text names the failing step (WRONGPASS, NOAUTH, ERR invalid DB index,
        // LOADING); it never holds the password.
        co_return failed("Redis refused the connection setup: " + value->string);
      }
      ++index;
      continue;
    }
    if (link->parser.failed()) co_return failed("not a Redis server (protocol error)");
    const auto count = co_await link->stream->read_some(std::span(buffer), ec);
    if (link->broken) co_return nullptr;
    if (ec) co_return failed("connection setup failed: " + ec.message());
    link->parser.feed(std::string_view(buffer.data(), count));
  }
  link->timer.cancel();
  co_return link;
}

asio::awaitable<void> Connection::read_loop(std::shared_ptr<Link> link) {
  std::vector<char> buffer(kReadBufferBytes);
  while (!link->broken) {
    error_code ec;
    const auto count = co_await link->stream->read_some(std::span(buffer), ec);
    if (link->broken) break;
    if (ec) {
      break_link(link->id,
                 ec == asio::error::eof ? "closed by the server" : "read failed: " + ec.message());
      break;
    }
    link->parser.feed(std::string_view(buffer.data(), count));
    while (auto value = link->parser.next()) {
      if (in_flight_.empty()) {
        break_link(link->id, "a reply nobody asked for", Status::protocol);
        co_return;
      }
      auto request = std::move(in_flight_.front());
      in_flight_.pop_front();
      ++replies_;
      complete(*request, Status::ok, std::move(*value));
    }
    if (link->parser.failed()) {
      break_link(link->id, "protocol error or reply too large", Status::protocol);
      break;
    }
  }
}

asio::awaitable<void> Connection::write_loop(std::shared_ptr<Link> link) {
  std::string batch;
  while (!link->broken) {
    if (queued_.empty()) {
      co_await writer_wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    batch.clear();
    while (!queued_.empty()) {
      auto request = std::move(queued_.front());
      queued_.pop_front();
      if (request->abandoned) continue;  // its caller is gone and nothing was sent
      batch += request->payload;
      std::string().swap(request->payload);
      in_flight_.push_back(std::move(request));  // before writing: replies may come meanwhile
    }
    if (batch.empty()) continue;
    const auto ec = co_await link->stream->write_all(std::string_view(batch));
    if (link->broken) break;
    if (ec) {
      break_link(link->id, "write failed: " + ec.message());
      break;
    }
    if (batch.capacity() > kKeptBatchBytes) std::string().swap(batch);
  }
}

asio::awaitable<void> Connection::health_loop(std::shared_ptr<Link> link) {
  std::uint64_t seen = replies_;
  while (!link->broken) {
    link->timer.expires_after(options_.health_interval);
    co_await link->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (link->broken) break;
    if (pending() == 0 && replies_ == seen) {
      // A missed deadline breaks the link in execute(); an error reply (LOADING) does too.
      const auto reply = co_await execute(make_command("PING"));
      if (reply.status == Status::ok && reply.value.is_error())
        break_link(link->id, "health check: " + reply.value.string);
    }
    seen = replies_;
  }
}

}  // namespace portcullis::redis
