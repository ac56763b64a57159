#pragma once
// Keep-alive connections to one upstream endpoint, owned by one worker thread (no locks). A
// connection is handed out only if the upstream has neither closed it nor sent stray bytes
// while it sat idle, and idle connections older than the idle limit are dropped.

#include <chrono>
#include <memory>
#include <vector>

#include "portcullis/net/stream.hpp"

namespace portcullis::upstream {

class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;

  // A live idle connection, or nullptr. With `retryable` (the caller will transparently repeat
  // the request on another connection if this one turns out stale), a connection used within
  // kFreshFor is handed out without probing it, which saves a system call per request.
  std::unique_ptr<net::Stream> take(Clock::time_point now, bool retryable = false);
  // Keeps `stream` for reuse unless the pool already holds `max_idle`.
  void give_back(std::unique_ptr<net::Stream> stream, std::size_t max_idle, Clock::time_point now);
  std::size_t idle_count() const { return idle_.size(); }
  void clear();

  static constexpr Clock::duration kMaxIdleAge = std::chrono::seconds(60);
  static constexpr Clock::duration kFreshFor = std::chrono::seconds(1);

 private:
  struct Idle {
    std::unique_ptr<net::Stream> stream;
    Clock::time_point since;
  };
  std::vector<Idle> idle_;
};

}  // namespace portcullis::upstream
