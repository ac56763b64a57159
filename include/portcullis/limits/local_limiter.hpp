#pragma once
// The in-process rate limiter: GCRA decisions (gcra.hpp) over one TAT per key in a sharded,
// memory-bounded key table shared by every worker thread of the process.
//
// Wiring: build one LocalLimiter at start-up (it lives in the process's long-lived services, so a
// reload keeps the budgets) with state.local_memory as its bound. Per request, put one
// LimitRequest per limit the route lists into a small array (at most kMaxBatchKeys) and call
// decide(): all limits pass or none consumes. LimitKey::limit should be a number that stays with
// the limit's name across reloads (not its position in a list that may be reordered), so a reload
// never hands one limit's budgets to another.

#include <cstdint>
#include <span>

#include "portcullis/core/clock.hpp"
#include "portcullis/limits/gcra.hpp"
#include "portcullis/limits/key_table.hpp"
#include "portcullis/limits/limit_key.hpp"

namespace portcullis::limits {

// What the table stores per key: the TAT, in microseconds of the monotonic clock.
struct RateState {
  std::int64_t tat = 0;
  std::int64_t idle_after() const { return tat; }
};

struct LimitRequest {
  LimitKey key;
  GcraLimit limit;
};

// The outcome for the response: allowed or not, and the header figures of the deciding limit
// (see GcraMultiResult). `deciding` indexes the request list.
struct Decision {
  bool allowed = true;
  std::size_t deciding = 0;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  std::int64_t reset = 0;
  std::int64_t retry_after = 0;
};

class LocalLimiter {
 public:
  explicit LocalLimiter(const KeyTableOptions& options = {}) : table_(options) {}

  // Decides every limit of one request together. More than kMaxBatchKeys limits is refused
  // (denied with retry_after 1): the configuration never lists that many.
  Decision decide(std::span<const LimitRequest> requests, std::int64_t now_us);
  Decision decide(std::span<const LimitRequest> requests, core::Clock::MonotonicTime now) {
    return decide(requests, to_micros(now));
  }

  KeyTableStats stats() const { return table_.stats(); }
  const KeyTable<RateState>& table() const { return table_; }

 private:
  KeyTable<RateState> table_;
};

}  // namespace portcullis::limits
