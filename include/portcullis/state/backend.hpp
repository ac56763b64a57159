#pragma once
// The one interface the gateway uses for shared security state, whatever keeps it: the `memory`
// backend (this process, optionally a file) or the `redis` backend (a fleet). Reads go to the
// local Mirror and never do I/O; writes are asynchronous and acknowledged once durable.
//
// Threads: every member may be called from any thread. A write's `done` is called exactly once,
// possibly on another thread (a store's writer, a client's I/O thread) or before the write call
// returns; an empty error_code means the record is durable and in this instance's mirror, any
// error (a StateError or a transport error) means it was not acknowledged. A caller on an event
// loop posts `done` back to its own executor. `done` must not throw; it may be empty.

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "portcullis/core/ip.hpp"
#include "portcullis/state/mirror.hpp"
#include "portcullis/state/records.hpp"

namespace portcullis::state {

class Backend {
 public:
  using Done = std::function<void(std::error_code)>;

  virtual ~Backend() = default;

  // The local copy the request path reads (is_revoked, ban_of, active_bans, sizes).
  virtual const Mirror& mirror() const = 0;

  virtual void revoke(Revocation revocation, Done done) = 0;
  virtual void cut_off(SubjectCutoff cutoff, Done done) = 0;
  virtual void ban(Ban ban, Done done) = 0;
  virtual void unban(core::IpAddress ip, Done done) = 0;  // lifting no ban is not an error

  // Whether the mirror is known to be current (for /readyz and on_unavailable).
  virtual bool available() const = 0;
  // False only for a memory backend without a path: state lives in this process alone.
  virtual bool durable() const = 0;

  // ---- rate limits a fleet shares (see limits/gcra.hpp for the arithmetic) --------------------
  // One limit of a request: `key` names the limit and the client (the backend adds its prefix).
  struct LimitCheck {
    std::string key;
    std::int64_t emission_us = 1;  // T
    std::int64_t burst = 1;
  };
  // All limits pass (and all consume) or none does; the figures are those of `deciding`: the
  // denying limit when refused, the one with the fewest remaining when allowed.
  struct LimitDecision {
    bool allowed = false;
    std::size_t deciding = 0;
    std::int64_t limit = 0;  // its burst
    std::int64_t remaining = 0;
    std::int64_t retry_after = 0;  // whole seconds, >= 1 when refused
    std::int64_t reset = 0;        // whole seconds until the full burst is back
  };
  using Decided = std::function<void(std::error_code, const LimitDecision&)>;
  // Whether decide_limits() decides for the whole fleet (false: the caller decides locally).
  virtual bool shares_limits() const { return false; }
  // Decides atomically for every instance sharing the backend. `decided` is called once, from
  // any thread, within the backend's command timeout; an error means nothing was decided (the
  // caller falls back to what this instance knows).
  virtual void decide_limits(std::vector<LimitCheck> checks, Decided decided) {
    (void)checks;
    decided(StateError::stopped, {});
  }
  // Decides without I/O when budgets this instance leased from the fleet cover every check:
  // true with `decision` allowed (one leased token taken per check); false with nothing taken
  // (ask decide_limits()). Never blocks; allocates nothing.
  virtual bool decide_from_leases(std::span<const LimitCheck> checks,
                                  LimitDecision& decision) const {
    (void)checks;
    (void)decision;
    return false;
  }
  // How many instances share the limits, as last seen (1 when unknown or alone): while the
  // backend is unreachable with on_unavailable fail_open, each decides locally at limit / this.
  virtual std::size_t live_instances() const { return 1; }

  virtual void start() {}
  // Completes or refuses every write in flight; later writes complete with StateError::stopped.
  virtual void stop() {}
  // Housekeeping: frees expired records. Call from a timer now and then (a minute is plenty).
  virtual void maintain() {}
};

}  // namespace portcullis::state
