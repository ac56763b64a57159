// State-backend housekeeping on one worker: expired records freed, gauges kept current.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "worker.hpp"

namespace portcullis::net {

// Frees expired revocations, cut-offs and bans and keeps the state gauges current. A short tick
// so a drain never waits on it; the expiry work runs once a minute, the key-table gauges (a
// lock per shard, nothing else) every tick, so a flood shows while it happens.
asio::awaitable<void> run_state_maintenance(Worker& worker) {
  asio::steady_timer tick(worker.io);
  auto next = std::chrono::steady_clock::now();
  auto& metrics = worker.services.metrics.state;
  while (!worker.draining.load(std::memory_order_relaxed)) {
    const auto pinned = worker.pin();
    if (const auto& limiter = pinned->runtime->limiter) {
      const auto stats = limiter->stats();
      metrics.key_table(obs::KeyTableKind::rate_limits, stats.size, stats.capacity,
                        stats.evictions_idle, stats.evictions_active);
    }
    const auto logins = worker.services.login_failures.stats();
    metrics.key_table(obs::KeyTableKind::login_failures, logins.size, logins.capacity,
                      logins.evictions_idle, logins.evictions_active);
    if (std::chrono::steady_clock::now() >= next) {
      if (const auto& state = pinned->runtime->state) {
        state->maintain();
        const auto sizes = state->mirror().sizes();
        metrics.mirror_size(sizes.revocations, sizes.cutoffs, sizes.bans);
        metrics.backend_up(state->available());
      }
      next += std::chrono::minutes(1);
    }
    tick.expires_after(std::chrono::milliseconds(500));
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace portcullis::net
