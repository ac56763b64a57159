// Rate limits a fleet shares: the Redis state backend's decide_limits(), one GCRA script per
// request on the backend's write connection (see redis/gcra.hpp for the arithmetic).

#include "state_backend_impl.hpp"

namespace portcullis::redis {

void RedisStateBackend::decide_limits(std::vector<LimitCheck> checks, Decided decided) {
  std::lock_guard lock(lifecycle_mutex_);
  if (!accepting_) {
    decided(StateError::stopped, {});
    return;
  }
  asio::co_spawn(
      impl_->io,
      [impl = impl_.get(), checks = std::move(checks),
       decided = std::move(decided)]() mutable -> asio::awaitable<void> {
        std::vector<GcraLimit> limits;
        limits.reserve(checks.size());
        for (const auto& check : checks) {
          GcraLimit limit;
          limit.key = impl->options.redis.key_prefix;
          limit.key.append("rl:").append(check.key);
          limit.emission_interval_us = check.emission_us;
          limit.burst_tolerance_us = (check.burst - 1) * check.emission_us;
          limits.push_back(std::move(limit));
        }
        const auto started = impl->clock.monotonic();
        const auto result = co_await gcra_decide(*impl->write_connection, limits);
        ++impl->commands;
        if (impl->metrics) {
          impl->metrics->redis_command(
              std::chrono::duration<double>(impl->clock.monotonic() - started).count());
        }
        if (!result.decided()) {
          if (const auto error = error_of(result.status)) {
            impl->count_error(*error);
            decided(make_error_code(*error), {});
          } else {
            impl->count_error(RedisStateError::server);
            decided(make_error_code(RedisStateError::server), {});
          }
          co_return;
        }
        // The headline: the denying limit with the longest wait, or the tightest passing one.
        state::Backend::LimitDecision decision;
        decision.allowed = result.allowed;
        const auto seconds_up = [](std::int64_t us) { return (us + 999'999) / 1'000'000; };
        bool chosen = false;
        for (std::size_t i = 0; i < result.limits.size(); ++i) {
          const auto& outcome = result.limits[i];
          const bool better =
              !chosen ||
              (result.allowed
                   ? outcome.remaining < result.limits[decision.deciding].remaining
                   : !outcome.passed && (result.limits[decision.deciding].passed ||
                                         outcome.retry_after_us >
                                             result.limits[decision.deciding].retry_after_us));
          if (better) {
            decision.deciding = i;
            chosen = true;
          }
        }
        const auto& headline = result.limits[decision.deciding];
        decision.limit = checks[decision.deciding].burst;
        decision.remaining = headline.remaining;
        decision.reset = seconds_up(headline.reset_us);
        decision.retry_after =
            result.allowed ? 0
                           : std::max<std::int64_t>(1, headline.retry_after_us < 0
                                                           ? decision.reset
                                                           : seconds_up(headline.retry_after_us));
        decided({}, decision);
      },
      asio::detached);
}

}  // namespace portcullis::redis
