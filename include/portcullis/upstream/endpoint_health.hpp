#pragma once
// Health of upstream endpoints, shared by every worker. Passive: `max_failures` failed connects
// or resets in a row take an endpoint out of rotation for a hold period, after which requests
// try it again (a slow answer is the request's problem, not the endpoint's: it never counts).
// Active: when the upstream has a health_check path, the checker's last verdict also counts.
// Health belongs to one upstream's endpoint: two upstreams naming the same address judge it
// separately. Workers' connection pools are shared by every upstream whose connections are
// interchangeable ("host:port|tls"). Both are registered by key so they survive a reload.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace portcullis::upstream {

class EndpointHealth {
 public:
  using Clock = std::chrono::steady_clock;

  bool is_healthy(Clock::time_point now) const;
  // A failed connect or a reset; the `max_failures`-th in a row holds the endpoint down.
  void mark_failure(Clock::time_point now, Clock::duration hold, unsigned max_failures);
  void mark_success();
  void set_active_verdict(bool healthy);

 private:
  std::atomic<std::int64_t> down_until_{0};  // steady-clock ticks; 0 = not held down
  std::atomic<std::uint32_t> failures_in_a_row_{0};
  std::atomic<bool> active_down_{false};
};

class EndpointRegistry {
 public:
  struct Entry {
    std::size_t id;  // of the workers' pool for `pool_key`: dense and stable for the process
    EndpointHealth* health;
  };
  // The entry for one upstream's endpoint, created on first use.
  Entry get(const std::string& pool_key, const std::string& health_key);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> pool_ids_;
  std::unordered_map<std::string, std::size_t> health_ids_;
  std::deque<EndpointHealth> health_;  // deque: addresses stay valid as it grows
};

}  // namespace portcullis::upstream
