#pragma once
// Rate-limit decisions for a fleet: one Lua script, run with EVALSHA, decides every limit of a
// request in one round trip, atomically, with the time read from Redis (TIME), so the gateways'
// clocks do not matter.
//
// The arithmetic (GCRA, TAT form; all times in microseconds; the local limiter uses the same):
//   T   = emission interval = per / rate            (one request's share of the period)
//   tau = burst tolerance   = (burst - 1) * T       (how far ahead of now the TAT may run)
//   k   = quantity asked for (1 for a request; more to lease a local budget)
//   now = Redis TIME; tat = the stored theoretical arrival time, or now when the key is absent.
//   t0  = max(tat, now);  new_tat = t0 + k * T
//   When k > 1 does not fit (t0 + k * T - now > tau + T), k becomes 1: a lease asked for near
//   the limit shrinks to the one request that asked, in the same round trip.
//   A limit passes iff  new_tat - now <= tau + T   (for k = 1: tat - now <= tau).
//   The request is allowed iff every limit passes. Then, and only then, each key is set to
//   new_tat with a TTL of ceil((new_tat - now) / 1000) ms (when it expires the limit is at full
//   burst again, exactly as for an absent key). A denied request writes nothing.
// Per limit the script returns, after the decision:
//   granted        = the quantity taken (k, or 1 after the shrink; 0 when the request was denied);
//   remaining      = floor((tau + T - d) / T), requests of 1 that would pass right now, where
//                    d = new_tat - now when the request was allowed and t0 - now when not;
//   retry_after_us = 0 when the limit passed, else new_tat - now - (tau + T) with k = 1 (the
//                    wait until one request would pass);
//   reset_us       = d, the wait until the limit is back at full burst.
// For a burst b at rate r per p: a fresh key admits b requests at once, then one every p / r.

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "portcullis/redis/reply.hpp"

namespace portcullis::redis {

class Connection;

struct GcraLimit {
  std::string key;                        // the full key (with the prefix)
  std::int64_t emission_interval_us = 0;  // T > 0
  std::int64_t burst_tolerance_us = 0;    // tau >= 0
  std::int64_t quantity = 1;              // k >= 1
};

struct GcraOutcome {
  bool passed = false;
  std::int64_t granted = 0;  // tokens taken: the quantity asked, 1 near the limit, 0 when denied
  std::int64_t remaining = 0;
  std::int64_t retry_after_us = 0;
  std::int64_t reset_us = 0;
};

struct GcraDecision {
  Status status = Status::disconnected;  // ok: `allowed` and `limits` hold the decision
  std::string error;                     // an error reply (bad arguments, script failure)
  bool allowed = false;
  std::vector<GcraOutcome> limits;  // one per limit, in order

  bool decided() const { return status == Status::ok && error.empty(); }
};

// The script (KEYS: one per limit; ARGV: T, tau, k per limit).
extern const std::string_view kGcraScript;
// Its SHA-1 in hex, as EVALSHA wants it.
const std::string& gcra_script_sha1();

// The EVALSHA command for `limits`.
Command gcra_command(std::span<const GcraLimit> limits);
// Reads the script's reply into `decision` (status protocol when it is not the expected shape).
void read_gcra_reply(const Reply& reply, std::size_t limit_count, GcraDecision& decision);

// Decides `limits` on `connection`: EVALSHA, and on NOSCRIPT (a restarted or flushed server)
// SCRIPT LOAD and EVALSHA again. Limits with T <= 0, tau < 0 or k < 1 are refused (error set).
boost::asio::awaitable<GcraDecision> gcra_decide(Connection& connection,
                                                 std::span<const GcraLimit> limits);

}  // namespace portcullis::redis
