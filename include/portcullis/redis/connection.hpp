#pragma once
// One connection to Redis, shared by every coroutine of one io_context (a worker thread): callers
// enqueue commands and co_await their replies. A writer sends everything queued in one write
// (pipelining), a reader parses replies and completes the oldest request, a run loop connects
// (TCP or TLS, AUTH, SELECT), reconnects with exponential backoff and full jitter when the
// connection breaks, and PINGs an idle connection. No call blocks the thread; no caller waits
// longer than its deadline.
//
//   auto redis = redis::Connection::create(io.get_executor(), options);
//   redis->start();
//   redis::Reply reply = co_await redis->execute(redis::make_command("GET", redis->key("x")));
//   if (reply.ok()) use(reply.value);           // a value that is not an error reply
//   else if (reply.status != redis::Status::ok) // timeout, disconnected, overloaded, protocol
//   redis->stop();  // before the io_context goes
//
// While not ready (connecting, or reconnecting after a failure), commands fail at once with
// disconnected: the owner decides (fail closed or open) without waiting. Not thread-safe: every
// call comes from the thread running the connection's executor, and the owner keeps the
// shared_ptr while it awaits.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/redis/options.hpp"
#include "portcullis/redis/reply.hpp"

namespace portcullis::io {
class Stream;
class ClientTlsContext;
}  // namespace portcullis::io

namespace portcullis::redis {

namespace asio = boost::asio;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Throws std::runtime_error when the TLS settings cannot be loaded (a missing CA file): a
  // configuration error, at load time.
  static std::shared_ptr<Connection> create(asio::any_io_executor executor, RedisOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts connecting (and reconnecting for as long as the connection runs).
  void start();
  // Closes the connection for good; every pending command completes with disconnected. The
  // object is freed once its coroutines have ended (run the executor until then).
  void stop();

  // Sends `command` and waits for its reply, at most command_timeout (or `timeout`). Fails at once
  // with disconnected while not ready and with overloaded when max_in_flight commands are
  // pending. A deadline missed resets the connection (the server is presumed hung).
  asio::awaitable<Reply> execute(Command command);
  asio::awaitable<Reply> execute(Command command, std::chrono::milliseconds timeout);

  // Connected, authenticated and on the configured database.
  bool ready() const { return ready_; }
  // Waits until ready, at most `timeout`; true when ready.
  asio::awaitable<bool> wait_ready(std::chrono::milliseconds timeout);
  // Counts the connections made: a change tells the owner that a reconnect happened.
  std::uint64_t generation() const { return generation_; }
  // Why the last connection attempt failed or the last connection broke (for the logs; never
  // holds a secret).
  const std::string& last_error() const { return last_error_; }
  // Commands queued or awaiting replies.
  std::size_t pending() const { return queued_.size() + in_flight_.size(); }

  // Called when ready() changes: true once connected, false with the reason once per outage
  // (the connection broke, or the first attempt failed; not for every retry). For logs and the
  // backend-up metric. Never called from or after stop().
  using StateHandler = std::function<void(bool ready, std::string_view reason)>;
  void on_state_change(StateHandler handler) { on_state_ = std::move(handler); }

  // key_prefix + name.
  std::string key(std::string_view name) const;
  const RedisOptions& options() const { return options_; }
  asio::any_io_executor executor() const { return executor_; }

 private:
  struct Request;
  struct Link;
  // Whether bytes of a reply wait unread on the link `link_id` (a late reader, not a hung server).
  bool reply_waiting(std::uint64_t link_id) const;

  Connection(asio::any_io_executor executor, RedisOptions options);
  asio::awaitable<void> run();
  asio::awaitable<std::shared_ptr<Link>> connect();
  asio::awaitable<void> read_loop(std::shared_ptr<Link> link);
  asio::awaitable<void> write_loop(std::shared_ptr<Link> link);
  asio::awaitable<void> health_loop(std::shared_ptr<Link> link);
  // Closes the current link (if it is `link_id` and not yet broken) and fails every pending
  // command: the oldest one with `oldest`, the others with disconnected.
  void break_link(std::uint64_t link_id, std::string why, Status oldest = Status::disconnected);
  void complete(Request& request, Status status, Value value = {});
  void notify_state(bool ready, const std::string& reason);
  std::chrono::milliseconds backoff(unsigned attempt);

  asio::any_io_executor executor_;
  RedisOptions options_;
  std::unique_ptr<io::ClientTlsContext> tls_;
  std::shared_ptr<Link> link_;
  std::deque<std::shared_ptr<Request>> queued_;     // not yet written
  std::deque<std::shared_ptr<Request>> in_flight_;  // written, oldest first
  asio::steady_timer writer_wake_;                  // a condition variable: cancel() wakes
  std::vector<asio::steady_timer*> ready_waiters_;  // woken when the connection is ready
  asio::steady_timer backoff_timer_;
  bool started_ = false;
  bool stopped_ = false;
  bool ready_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t link_ids_ = 0;  // connection attempts
  std::uint64_t replies_ = 0;   // replies received (the health check's activity count)
  std::string last_error_;
  StateHandler on_state_;
  bool down_reported_ = false;  // the current outage was reported
  std::minstd_rand random_;
};

}  // namespace portcullis::redis
