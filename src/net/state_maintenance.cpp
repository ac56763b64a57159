// State-backend housekeeping on one worker: expired records freed, gauges kept current.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "worker.hpp"

namespace portcullis::net {

// Frees expired revocations, cut-offs and bans and keeps the state gauges current. A short tick
// so a drain never waits on it; the work itself runs once a minute.
asio::awaitable<void> run_state_maintenance(Worker& worker) {
  asio::steady_timer tick(worker.io);
  auto next = std::chrono::steady_clock::now();
  while (!worker.draining.load(std::memory_order_relaxed)) {
    if (std::chrono::steady_clock::now() >= next) {
      const auto pinned = worker.pin();
      if (const auto& state = pinned->runtime->state) {
        state->maintain();
        const auto sizes = state->mirror().sizes();
        worker.services.metrics.state.mirror_size(sizes.revocations, sizes.cutoffs, sizes.bans);
        worker.services.metrics.state.backend_up(state->available());
      }
      next += std::chrono::minutes(1);
    }
    tick.expires_after(std::chrono::milliseconds(500));
    error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace portcullis::net
