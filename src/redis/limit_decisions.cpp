// Rate limits a fleet shares: the Redis state backend's decide_limits(), one GCRA script per
// decision on the backend's write connection (see redis/gcra.hpp for the arithmetic), with
// budgets for high-rate limits leased in slices (limits/lease_table.hpp).

#include "portcullis/limits/gcra.hpp"
#include "portcullis/limits/key_table.hpp"
#include "state_backend_impl.hpp"

namespace portcullis::redis {
namespace {

using LimitDecision = state::Backend::LimitDecision;

// The headline, chosen as the local limiter chooses it (limits/gcra.cpp): the denying limit with
// the longest wait, or the passing one with the fewest left (ties: the later reset).
LimitDecision headline(const std::vector<state::Backend::LimitCheck>& checks,
                       const std::vector<LimitPlan>& plans, bool allowed) {
  LimitDecision decision;
  decision.allowed = allowed;
  for (std::size_t i = 1; i < plans.size(); ++i) {
    const auto& outcome = plans[i].outcome;
    const auto& best = plans[decision.deciding].outcome;
    const bool better =
        allowed ? outcome.remaining < best.remaining ||
                      (outcome.remaining == best.remaining && outcome.reset_us > best.reset_us)
                : !outcome.passed && (best.passed || outcome.retry_after_us > best.retry_after_us);
    if (better) decision.deciding = i;
  }
  const auto& chosen = plans[decision.deciding].outcome;
  decision.limit = checks[decision.deciding].burst;
  decision.remaining = chosen.remaining;
  decision.reset = limits::ceil_seconds(chosen.reset_us);
  decision.retry_after =
      allowed ? 0 : std::max<std::int64_t>(1, limits::ceil_seconds(chosen.retry_after_us));
  return decision;
}

// A covered limit's figures: the lease's remaining estimate, and the time the used part of the
// burst takes to come back.
GcraOutcome leased_outcome(const state::Backend::LimitCheck& check, std::int64_t remaining) {
  return GcraOutcome{true, 1, remaining, 0,
                     std::max<std::int64_t>(0, check.burst - remaining) * check.emission_us};
}

}  // namespace

std::size_t RedisStateBackend::live_instances() const {
  return impl_->live.load(std::memory_order_relaxed);
}

std::uint64_t RedisStateBackend::announce_rounds() const {
  return impl_->announce_rounds.load(std::memory_order_relaxed);
}

std::int64_t RedisStateBackend::leased_tokens(std::string_view key) const {
  return impl_->leases.tokens(key, limits::to_micros(clock_.monotonic()));
}

bool RedisStateBackend::decide_from_leases(std::span<const LimitCheck> checks,
                                           LimitDecision& decision) const {
  if (!impl_->options.lease_limits || checks.empty() || checks.size() > limits::kMaxBatchKeys)
    return false;
  const auto now = limits::to_micros(clock_.monotonic());
  std::size_t taken = 0;
  std::int64_t fewest = 0;
  std::size_t deciding = 0;
  std::array<std::int64_t, limits::kMaxBatchKeys> refills{};
  bool refill = false;
  for (; taken < checks.size(); ++taken) {
    const auto& check = checks[taken];
    const auto terms = limits::lease_terms(check.emission_us, check.burst);
    limits::LeaseTable::Taken got;
    if (!terms.leased() ||
        !impl_->leases.take(check.key, now, &got, impl_->options.refill_leases ? &terms : nullptr))
      break;
    refills[taken] = got.refill;
    refill = refill || got.refill > 0;
    if (taken == 0 || got.remaining < fewest) {
      fewest = got.remaining;
      deciding = taken;
    }
  }
  if (refill) {
    std::shared_lock lock(lifecycle_mutex_);
    for (std::size_t i = 0; i < taken; ++i) {
      if (refills[i] > 0) impl_->refill(checks[i], refills[i], accepting_);
    }
  }
  if (taken < checks.size()) {
    for (std::size_t i = 0; i < taken; ++i)
      impl_->leases.give_back(checks[i].key, now);
    return false;
  }
  ++impl_->leased_decisions;
  const auto outcome = leased_outcome(checks[deciding], fewest);
  decision = LimitDecision{true,   deciding, checks[deciding].burst,
                           fewest, 0,        limits::ceil_seconds(outcome.reset_us)};
  return true;
}

void RedisStateBackend::decide_limits(std::vector<LimitCheck> checks, Decided decided) {
  Impl* impl = impl_.get();
  const auto now = limits::to_micros(clock_.monotonic());
  std::vector<LimitPlan> plans(checks.size());
  bool all_covered = false;
  {
    std::shared_lock lock(lifecycle_mutex_);
    if (accepting_) {
      all_covered = !checks.empty();
      for (std::size_t i = 0; i < checks.size(); ++i) {
        auto& plan = plans[i];
        if (impl->options.lease_limits)
          plan.terms = limits::lease_terms(checks[i].emission_us, checks[i].burst);
        limits::LeaseTable::Taken got;
        if (plan.terms.leased() &&
            impl->leases.take(checks[i].key, now, &got,
                              impl->options.refill_leases ? &plan.terms : nullptr)) {
          plan.covered = true;
          plan.outcome = leased_outcome(checks[i], got.remaining);
          if (got.refill > 0) impl->refill(checks[i], got.refill, true);
        } else {
          all_covered = false;
          plan.asked = impl->leases.quantity(checks[i].key, plan.terms, now);
        }
      }
      if (!all_covered) {
        asio::co_spawn(impl->io,
                       impl->decide(std::move(checks), std::move(plans), std::move(decided)),
                       asio::detached);
        return;
      }
    }
  }
  if (!all_covered) return decided(StateError::stopped, {});  // not accepting
  ++impl->leased_decisions;
  decided({}, headline(checks, plans, true));
}

asio::awaitable<void> RedisStateBackend::Impl::decide(std::vector<LimitCheck> checks,
                                                      std::vector<LimitPlan> plans,
                                                      Decided decided) {
  std::vector<GcraLimit> asked;
  asked.reserve(checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    if (plans[i].covered) continue;
    GcraLimit limit;
    limit.key = options.redis.key_prefix;
    limit.key.append("rl:").append(checks[i].key);
    limit.emission_interval_us = checks[i].emission_us;
    limit.burst_tolerance_us = (checks[i].burst - 1) * checks[i].emission_us;
    limit.quantity = plans[i].asked;
    asked.push_back(std::move(limit));
  }
  const auto started = clock.monotonic();
  const auto result = co_await gcra_decide(*write_connection, asked);
  ++commands;
  ++limit_calls;
  if (metrics)
    metrics->redis_command(std::chrono::duration<double>(clock.monotonic() - started).count());
  const auto now = limits::to_micros(clock.monotonic());
  const bool allowed = result.decided() && result.allowed;
  // Leases: a grant becomes this instance's; a refusal or a failure hands the tokens taken here
  // back and ends the asks.
  std::size_t next = 0;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    auto& plan = plans[i];
    if (plan.covered) {
      if (!allowed) leases.give_back(checks[i].key, now);
      continue;
    }
    if (result.decided()) {
      plan.outcome = result.limits[next];
      // Seen from this instance, the leased tokens are still there for its clients.
      plan.outcome.remaining += std::max<std::int64_t>(0, plan.outcome.granted - 1);
    }
    ++next;
    if (plan.asked <= 1) continue;
    if (allowed) {
      leases.granted(checks[i].key, plan.outcome.granted,
                     plan.outcome.remaining - (plan.outcome.granted - 1), plan.terms, now);
    } else {
      leases.abandoned(checks[i].key);
    }
  }
  if (!result.decided()) {
    const auto error = error_of(result.status).value_or(RedisStateError::server);
    count_error(error);
    decided(make_error_code(error), {});
    co_return;
  }
  decided({}, headline(checks, plans, result.allowed));
}

void RedisStateBackend::Impl::refill(const LimitCheck& check, std::int64_t quantity,
                                     bool accepting) {
  if (!accepting) {
    leases.abandoned(check.key);
    return;
  }
  GcraLimit limit;
  limit.key = options.redis.key_prefix;
  limit.key.append("rl:").append(check.key);
  limit.emission_interval_us = check.emission_us;
  limit.burst_tolerance_us = (check.burst - 1) * check.emission_us;
  limit.quantity = quantity;
  asio::co_spawn(
      io,
      [this, limit = std::move(limit), key = check.key,
       terms = limits::lease_terms(check.emission_us, check.burst)]() -> asio::awaitable<void> {
        const auto started = clock.monotonic();
        const auto result = co_await gcra_decide(*write_connection, std::span(&limit, 1));
        ++commands;
        ++limit_calls;
        if (metrics)
          metrics->redis_command(
              std::chrono::duration<double>(clock.monotonic() - started).count());
        if (result.decided() && result.allowed) {
          leases.refilled(key, result.limits[0].granted, result.limits[0].remaining, terms,
                          limits::to_micros(clock.monotonic()));
          co_return;
        }
        leases.abandoned(key);
        if (!result.decided())
          count_error(error_of(result.status).value_or(RedisStateError::server));
      },
      asio::detached);
}

}  // namespace portcullis::redis
