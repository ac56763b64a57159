#include "portcullis/limits/login_failures.hpp"

#include <algorithm>

namespace portcullis::limits {
namespace {

constexpr std::int64_t kRing = kLoginBuckets + 1;

std::int64_t bucket_width(const LoginPolicy& policy) {
  const std::int64_t window = std::max<std::int64_t>(1, policy.window.count());
  return (window + kLoginBuckets - 1) / kLoginBuckets;
}

// Brings `state` forward to now's bucket: buckets that slid out of the span are zeroed. A state
// written under another bucket width (a reload changed the window) starts afresh.
void advance(LoginState& state, std::int64_t width, std::int64_t now_us) {
  const std::int64_t now_bucket = now_us / width;
  if (state.expires <= now_us || state.expires % width != 0) {
    state = LoginState{};
  } else {
    const std::int64_t newest = state.expires / width - kRing;
    const std::int64_t gap = std::min(now_bucket - newest, kRing);
    for (std::int64_t b = 1; b <= gap; ++b)
      state.counts[(newest + b) % kRing] = 0;
  }
  state.expires = (now_bucket + kRing) * width;
}

std::uint32_t total(const LoginState& state) {
  std::uint32_t sum = 0;
  for (const auto count : state.counts)
    sum += count;
  return sum;
}

}  // namespace

FailureResult LoginFailureTracker::record_failure(std::uint32_t protection,
                                                  const core::IpAddress& client,
                                                  const LoginPolicy& policy, std::int64_t now_us) {
  const std::int64_t width = bucket_width(policy);
  const std::uint32_t max = std::clamp<std::uint32_t>(policy.max_failures, 1, 0xffff);
  const LimitKey key = LimitKey::ip(protection, client);
  FailureResult result;
  table_.update(std::span<const LimitKey>(&key, 1), now_us,
                [&](std::span<KeyTable<LoginState>::Slot> slots) {
                  LoginState& state = slots[0].value;
                  advance(state, width, now_us);
                  auto& count = state.counts[(now_us / width) % kRing];
                  if (count < 0xffff) ++count;
                  result.failures = total(state);
                  result.ban = result.failures >= max;
                  // A ban starts the count again: expire the state rather than erase it here.
                  if (result.ban) state = LoginState{};
                  slots[0].store = true;
                });
  return result;
}

std::uint32_t LoginFailureTracker::failures(std::uint32_t protection, const core::IpAddress& client,
                                            const LoginPolicy& policy, std::int64_t now_us) const {
  auto state = table_.find(LimitKey::ip(protection, client));
  if (!state) return 0;
  advance(*state, bucket_width(policy), now_us);
  return total(*state);
}

void LoginFailureTracker::forget(std::uint32_t protection, const core::IpAddress& client) {
  table_.erase(LimitKey::ip(protection, client));
}

}  // namespace portcullis::limits
