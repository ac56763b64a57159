#include "portcullis/upstream/endpoint_health.hpp"

namespace portcullis::upstream {

bool EndpointHealth::is_healthy(Clock::time_point now) const {
  if (active_down_.load(std::memory_order_relaxed)) return false;
  return now.time_since_epoch().count() >= down_until_.load(std::memory_order_relaxed);
}

void EndpointHealth::mark_failure(Clock::time_point now, Clock::duration hold,
                                  unsigned max_failures) {
  const auto failures = failures_in_a_row_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failures >= max_failures)
    down_until_.store((now + hold).time_since_epoch().count(), std::memory_order_relaxed);
}

void EndpointHealth::mark_success() {
  if (failures_in_a_row_.load(std::memory_order_relaxed) != 0)
    failures_in_a_row_.store(0, std::memory_order_relaxed);
  if (down_until_.load(std::memory_order_relaxed) != 0)
    down_until_.store(0, std::memory_order_relaxed);
}

void EndpointHealth::set_active_verdict(bool healthy) {
  active_down_.store(!healthy, std::memory_order_relaxed);
}

EndpointRegistry::Entry EndpointRegistry::get(const std::string& pool_key,
                                              const std::string& health_key) {
  std::lock_guard lock(mutex_);
  const auto pool = pool_ids_.try_emplace(pool_key, pool_ids_.size()).first->second;
  const auto [found, inserted] = health_ids_.try_emplace(health_key, health_.size());
  if (inserted) health_.emplace_back();
  return {pool, &health_[found->second]};
}

}  // namespace portcullis::upstream
