#pragma once
// GCRA (the generic cell rate algorithm): a rate limit decided from one stored number per key,
// the theoretical arrival time (TAT). Pure arithmetic with no clock and no storage, so the memory
// limiter and the Redis script make the same decision from the same inputs.
//
// Units: every time is an integer count of microseconds (int64). Microseconds, not nanoseconds,
// because the Redis Lua script computes with doubles, which hold integers exactly up to 2^53:
// Redis TIME in microseconds since 1970 (~1.8e15) fits, nanoseconds (~1.8e18) would not.
//
// The exact arithmetic (the Lua script must do exactly this, with floor divisions on
// non-negative integers):
//
//   T   = ceil(per_us / rate), at least 1          emission interval: one request every T
//   L   = burst * T                                  the window a full burst occupies
//   base    = max(tat, now)                          a TAT in the past means "fresh" (0 = never
//   seen) new_tat = base + T allowed = new_tat - now <= L allowed:  stored TAT := new_tat
//             remaining   = floor((L - (new_tat - now)) / T)
//             reset       = ceil((new_tat - now) / 1e6)
//             retry_after = 0
//   denied:   stored TAT unchanged (a rejected request consumes nothing)
//             remaining   = 0
//             reset       = ceil((base - now) / 1e6)
//             retry_after = max(1, ceil((new_tat - L - now) / 1e6))
//   limit = burst
//
// So `burst` requests pass at once from a fresh key, then one every T; after an idle time of L the
// key is fresh again. T is rounded up, so the sustained rate never exceeds rate / per.
// `reset` is the number of seconds until the full burst is available again; `retry_after` the
// whole seconds (at least 1) after which this request would pass.
//
// Several limits on one request (decide_all): each limit is decided as above against its own
// TAT; the request passes only if every limit allows, and then every TAT advances; if any
// limit denies, no TAT changes.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "portcullis/core/clock.hpp"

namespace portcullis::limits {

inline constexpr std::int64_t kMicrosPerSecond = 1'000'000;
// The largest L (burst * T) a limit may span: 2^53 microseconds (about 285 years), so that the
// Lua script's doubles hold every value exactly.
inline constexpr std::int64_t kMaxWindowMicros = std::int64_t{1} << 53;

// A monotonic time as the microsecond count GCRA works in.
inline std::int64_t to_micros(core::Clock::MonotonicTime time) {
  return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

// One configured limit: `rate` requests per `per` sustained, `burst` at most at once.
struct GcraLimit {
  std::int64_t emission_us = 1;  // T
  std::int64_t burst = 1;

  // rate, per and burst below 1 are raised to 1 (1 microsecond for per); a burst whose window
  // would exceed kMaxWindowMicros is lowered to fit. T is at least 1 microsecond, so a rate
  // above one per microsecond acts as one per microsecond.
  static GcraLimit make(std::uint64_t rate, std::chrono::nanoseconds per, std::uint64_t burst);
  std::int64_t window_us() const { return emission_us * burst; }  // L
  friend bool operator==(const GcraLimit&, const GcraLimit&) = default;
};

struct GcraResult {
  bool allowed = false;
  std::int64_t new_tat = 0;      // the TAT to store (the input TAT when denied)
  std::int64_t limit = 0;        // RateLimit-Limit
  std::int64_t remaining = 0;    // RateLimit-Remaining
  std::int64_t reset = 0;        // RateLimit-Reset, seconds
  std::int64_t retry_after = 0;  // Retry-After, seconds; >= 1 when denied, 0 when allowed
};

// One limit against its stored TAT (0 for a key never seen).
GcraResult gcra_decide(const GcraLimit& limit, std::int64_t now_us, std::int64_t tat);

// Microseconds as whole seconds rounded up (0 for none): how every header states a wait.
std::int64_t ceil_seconds(std::int64_t micros);

// The result of several limits decided together. `headline` is the result whose figures go into
// the response headers: when allowed, the limit with the fewest remaining requests (ties: the
// later reset); when denied, the denying limit with the longest retry_after. `deciding` is its
// position.
struct GcraMultiResult {
  bool allowed = true;
  std::size_t deciding = 0;
  GcraResult headline;
};

// Every limit must pass. `tats` holds the stored TATs on input (same order as `limits`) and the
// TATs to store on output: all advanced when allowed, all unchanged when denied. An empty list is
// allowed with an empty headline.
GcraMultiResult gcra_decide_all(std::span<const GcraLimit> limits, std::int64_t now_us,
                                std::span<std::int64_t> tats);

}  // namespace portcullis::limits
