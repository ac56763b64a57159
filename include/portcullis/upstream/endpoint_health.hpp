#pragma once
// Health of upstream endpoints, shared by every worker. Passive: a failed connect or a reset
// takes an endpoint out of rotation for a hold period, after which one request may try it
// again. Active: when the upstream has a health_check path, the checker's last verdict also
// counts. Endpoints are registered by "host:port|tls" key so that their health (and the workers'
// pools, indexed by the same id) survive a policy reload.

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
  void mark_failure(Clock::time_point now, Clock::duration hold);
  void mark_success();
  void set_active_verdict(bool healthy);

 private:
  std::atomic<std::int64_t> down_until_{0};  // steady-clock ticks; 0 = not held down
  std::atomic<bool> active_down_{false};
};

class EndpointRegistry {
 public:
  struct Entry {
    std::size_t id;
    EndpointHealth* health;
  };
  // The entry for `key`, created on first use; ids are dense and stable for the process.
  Entry get(const std::string& key);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> ids_;
  std::deque<EndpointHealth> health_;  // deque: addresses stay valid as it grows
};

}  // namespace portcullis::upstream
