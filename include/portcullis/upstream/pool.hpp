#pragma once
// Keep-alive connections to one upstream endpoint, owned by one worker thread (no locks). A
// connection is handed out only if the upstream has neither closed it nor sent stray bytes
// while it sat idle, and idle connections older than the idle limit are dropped.

#include <chrono>
#include <memory>
#include <vector>

#include "portcullis/io/stream.hpp"

namespace portcullis::upstream {

class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;

  // A live idle connection, or nullptr. With `retryable` (the caller will transparently repeat
  // the request on another connection if this one turns out stale), a connection used within
  // kFreshFor is handed out without probing it, which saves a system call per request.
  std::unique_ptr<io::Stream> take(Clock::time_point now, bool retryable = false);
  // Keeps `stream` for reuse unless the pool already holds `max_idle`.
  void give_back(std::unique_ptr<io::Stream> stream, std::size_t max_idle, Clock::time_point now);
  std::size_t idle_count() const { return idle_.size(); }
  void clear();

  static constexpr Clock::duration kMaxIdleAge = std::chrono::seconds(60);
  static constexpr Clock::duration kFreshFor = std::chrono::seconds(1);

 private:
  struct Idle {
    std::unique_ptr<io::Stream> stream;
    Clock::time_point since;
  };
  std::vector<Idle> idle_;
};

// One worker thread's side of every upstream: its keep-alive pools by endpoint id and its
// round-robin positions by upstream. Owned by the worker; no locks.
class WorkerPools {
 public:
  // Workers start their round robin at different endpoints: `first` is the worker's index.
  explicit WorkerPools(std::size_t first) : first_(first) {}

  ConnectionPool& pool(std::size_t endpoint_id) {
    if (endpoint_id >= pools_.size()) pools_.resize(endpoint_id + 1);
    return pools_[endpoint_id];
  }

  std::size_t next_round_robin(std::size_t upstream_index) {
    if (upstream_index >= round_robin_.size()) round_robin_.resize(upstream_index + 1, first_);
    return round_robin_[upstream_index]++;
  }

 private:
  std::size_t first_;
  std::vector<ConnectionPool> pools_;
  std::vector<std::size_t> round_robin_;
};

}  // namespace portcullis::upstream
