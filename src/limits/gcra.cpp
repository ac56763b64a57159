#include "portcullis/limits/gcra.hpp"

#include <algorithm>
#include <cassert>

namespace portcullis::limits {
namespace {

// Which of two results goes into the headers (true when `candidate` should replace `best`).
bool better_headline(const GcraResult& candidate, const GcraResult& best) {
  if (candidate.allowed != best.allowed) return !candidate.allowed;
  if (!candidate.allowed) return candidate.retry_after > best.retry_after;
  if (candidate.remaining != best.remaining) return candidate.remaining < best.remaining;
  return candidate.reset > best.reset;
}

}  // namespace

std::int64_t ceil_seconds(std::int64_t micros) {
  return micros <= 0 ? 0 : (micros + kMicrosPerSecond - 1) / kMicrosPerSecond;
}

GcraLimit GcraLimit::make(std::uint64_t rate, std::chrono::nanoseconds per, std::uint64_t burst) {
  const auto per_us =
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::microseconds>(per).count());
  const auto clamped_rate =
      static_cast<std::int64_t>(std::clamp<std::uint64_t>(rate, 1, kMaxWindowMicros));
  GcraLimit limit;
  limit.emission_us =
      std::clamp<std::int64_t>((per_us + clamped_rate - 1) / clamped_rate, 1, kMaxWindowMicros);
  const auto max_burst = kMaxWindowMicros / limit.emission_us;
  limit.burst = static_cast<std::int64_t>(
      std::clamp<std::uint64_t>(burst, 1, static_cast<std::uint64_t>(max_burst)));
  return limit;
}

GcraResult gcra_decide(const GcraLimit& limit, std::int64_t now_us, std::int64_t tat) {
  const std::int64_t t = limit.emission_us;
  const std::int64_t window = limit.window_us();
  const std::int64_t base = std::max(tat, now_us);
  const std::int64_t new_tat = base + t;
  GcraResult result;
  result.limit = limit.burst;
  if (new_tat - now_us <= window) {
    result.allowed = true;
    result.new_tat = new_tat;
    result.remaining = (window - (new_tat - now_us)) / t;
    result.reset = ceil_seconds(new_tat - now_us);
    return result;
  }
  result.new_tat = tat;
  result.reset = ceil_seconds(base - now_us);
  result.retry_after = std::max<std::int64_t>(1, ceil_seconds(new_tat - window - now_us));
  return result;
}

GcraMultiResult gcra_decide_all(std::span<const GcraLimit> limits, std::int64_t now_us,
                                std::span<std::int64_t> tats) {
  assert(limits.size() == tats.size());
  GcraMultiResult multi;
  // First pass: decide without storing; the commit pass recomputes (cheap, and no buffer is
  // needed however many limits there are).
  for (std::size_t i = 0; i < limits.size(); ++i) {
    const GcraResult result = gcra_decide(limits[i], now_us, tats[i]);
    if (i == 0 || better_headline(result, multi.headline)) {
      multi.headline = result;
      multi.deciding = i;
    }
    if (!result.allowed) multi.allowed = false;
  }
  if (!multi.allowed) return multi;
  for (std::size_t i = 0; i < limits.size(); ++i) {
    tats[i] = gcra_decide(limits[i], now_us, tats[i]).new_tat;
  }
  return multi;
}

}  // namespace portcullis::limits
