#pragma once
// A local memory of clients known to be over a limit until a given time, so that a client the
// shared (Redis) limiter has just denied costs no Redis call until its Retry-After has passed.
// Bounded like every key table; an entry whose time has passed is idle and evicted first.
//
// Wiring (Redis limiter): before the script, `check` the request's keys; a hit answers 429 with
// Retry-After ceil((until - now) / 1s) and no round trip. After a denial from the script, `deny`
// each denying key until now + its retry time (the script's exact microseconds are best; the
// whole seconds of Retry-After err towards waiting slightly longer). Times are microseconds of
// the monotonic clock (to_micros), never of Redis TIME.

#include <cstdint>
#include <optional>
#include <span>

#include "portcullis/limits/key_table.hpp"

namespace portcullis::limits {

struct DeniedState {
  std::int64_t until = 0;
  std::int64_t idle_after() const { return until; }
};

class DeniedUntilCache {
 public:
  explicit DeniedUntilCache(const KeyTableOptions& options = {std::size_t{8} << 20, 64})
      : table_(options) {}

  // The latest time until which any of `keys` is denied, if one of them still is at `now_us`.
  std::optional<std::int64_t> check(std::span<const LimitKey> keys, std::int64_t now_us) const;
  std::optional<std::int64_t> check(const LimitKey& key, std::int64_t now_us) const {
    return check(std::span<const LimitKey>(&key, 1), now_us);
  }

  // Records that `key` is denied until `until_us` (an earlier time than the one held is ignored).
  // A time not after `now_us` is not stored.
  void deny(const LimitKey& key, std::int64_t until_us, std::int64_t now_us);
  void forget(const LimitKey& key) { table_.erase(key); }

  KeyTableStats stats() const { return table_.stats(); }

 private:
  KeyTable<DeniedState> table_;
};

}  // namespace portcullis::limits
