#pragma once
// Login brute-force tracking: failed logins per client IP within a window, and the moment an IP
// reaches max_failures (the caller then bans it through the state backend).
//
// Window shape: a sliding window of kLoginBuckets sub-windows plus the current one. The window is
// cut into buckets of width w = ceil(window / kLoginBuckets) aligned to the clock, and a failure
// counts every failure in the current bucket and the kLoginBuckets before it. That span always
// covers the whole of the last `window` (and at most w more), so the count is never below the
// exact number of failures in the last `window`: an attacker never gets more than max_failures
// tries within any window, at a boundary or elsewhere (a fixed window would let 2x through). The
// price: a failure is remembered for between `window` and `window + w`.
//
// Successful logins neither count nor reset. Memory is bounded like every key table (IPv6 by
// /64); a count forgotten by eviction only ever errs towards fewer bans under a flood of distinct
// addresses, never towards banning someone who did not fail.

#include <array>
#include <chrono>
#include <cstdint>

#include "portcullis/core/clock.hpp"
#include "portcullis/core/ip.hpp"
#include "portcullis/limits/gcra.hpp"
#include "portcullis/limits/key_table.hpp"

namespace portcullis::limits {

inline constexpr std::size_t kLoginBuckets = 8;

struct LoginPolicy {
  std::chrono::microseconds window{std::chrono::minutes(15)};
  std::uint32_t max_failures = 5;  // 1..65535
};

// Per key: the end of the newest bucket's relevance and one counter per bucket (a ring indexed
// by absolute bucket number).
struct LoginState {
  std::int64_t expires = 0;  // (newest bucket + kLoginBuckets + 1) * w: all counts are stale then
  std::array<std::uint16_t, kLoginBuckets + 1> counts{};
  std::int64_t idle_after() const { return expires; }
};

struct FailureResult {
  std::uint32_t failures = 0;  // in the window, this one included
  bool ban = false;            // reached max_failures: ban now (the count starts again from 0)
};

class LoginFailureTracker {
 public:
  explicit LoginFailureTracker(const KeyTableOptions& options = {std::size_t{16} << 20, 64})
      : table_(options) {}

  // Counts one failed login of `client` on the login protection numbered `protection`.
  FailureResult record_failure(std::uint32_t protection, const core::IpAddress& client,
                               const LoginPolicy& policy, std::int64_t now_us);
  FailureResult record_failure(std::uint32_t protection, const core::IpAddress& client,
                               const LoginPolicy& policy, core::Clock::MonotonicTime now) {
    return record_failure(protection, client, policy, to_micros(now));
  }

  // Failures currently counted for `client` (what the next failure would add to).
  std::uint32_t failures(std::uint32_t protection, const core::IpAddress& client,
                         const LoginPolicy& policy, std::int64_t now_us) const;

  // Forgets `client` (a ban lifted by hand starts from a clean count).
  void forget(std::uint32_t protection, const core::IpAddress& client);

  KeyTableStats stats() const { return table_.stats(); }

 private:
  KeyTable<LoginState> table_;
};

}  // namespace portcullis::limits
