#include "portcullis/upstream/endpoint_health.hpp"

namespace portcullis::upstream {

bool EndpointHealth::is_healthy(Clock::time_point now) const {
  if (active_down_.load(std::memory_order_relaxed)) return false;
  return now.time_since_epoch().count() >= down_until_.load(std::memory_order_relaxed);
}

void EndpointHealth::mark_failure(Clock::time_point now, Clock::duration hold) {
  down_until_.store((now + hold).time_since_epoch().count(), std::memory_order_relaxed);
}

void EndpointHealth::mark_success() {
  if (down_until_.load(std::memory_order_relaxed) != 0)
    down_until_.store(0, std::memory_order_relaxed);
}

void EndpointHealth::set_active_verdict(bool healthy) {
  active_down_.store(!healthy, std::memory_order_relaxed);
}

EndpointRegistry::Entry EndpointRegistry::get(const std::string& key) {
  std::lock_guard lock(mutex_);
  const auto [found, inserted] = ids_.try_emplace(key, health_.size());
  if (inserted) health_.emplace_back();
  return {found->second, &health_[found->second]};
}

}  // namespace portcullis::upstream
