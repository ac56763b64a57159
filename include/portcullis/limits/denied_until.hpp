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

// A client still denied: until when, and which of the checked keys says so.
struct DeniedHit {
  std::int64_t until = 0;
  std::size_t key_index = 0;  // in the span passed to check()
};

struct DeniedState {
  std::int64_t until = 0;
  std::int64_t idle_after() const { return until; }
};

class DeniedUntilCache {
 public:
  explicit DeniedUntilCache(const KeyTableOptions& options = {std::size_t{8} << 20, 64})
      : table_(options) {}

  // If one of `keys` is still denied at `now_us`: the one denied the longest (the first of
  // equals), and until when.
  std::optional<DeniedHit> check(std::span<const LimitKey> keys, std::int64_t now_us) const;
  std::optional<DeniedHit> check(const LimitKey& key, std::int64_t now_us) const {
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
