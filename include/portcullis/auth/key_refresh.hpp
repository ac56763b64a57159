#pragma once
// Bookkeeping for a provider's key set: which set is current, and when fetching again is allowed.
// No I/O here - the JWKS fetcher (file or https) asks these objects and does the work.
//
//   KeySetHolder    the current set, swapped atomically; a failed load never replaces a good set
//   RefreshSchedule periodic refresh every `interval`, plus refetches on an unknown kid limited
//                   to one per `unknown_kid_interval`, so a flood of tokens with made-up kids
//                   causes at most one extra fetch per interval (no amplification)

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>

#include "portcullis/auth/jwks.hpp"

namespace portcullis::auth {

class KeySetHolder {
 public:
  KeySetHolder() = default;
  explicit KeySetHolder(std::shared_ptr<const KeySet> initial) : current_(std::move(initial)) {}

  // The set to verify with; null until a first good load. Cheap: one atomic load.
  std::shared_ptr<const KeySet> current() const { return current_.load(); }

  // Installs `load.keys` if the load succeeded and returns true; otherwise keeps the last good set
  // and returns false (the caller logs load.errors).
  bool offer(const KeySetLoad& load);

 private:
  std::atomic<std::shared_ptr<const KeySet>> current_;
};

class RefreshSchedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // `interval` is the policy's jwks_refresh; `unknown_kid_interval` defaults to the same.
  explicit RefreshSchedule(std::chrono::seconds interval,
                           std::chrono::seconds unknown_kid_interval = std::chrono::seconds{0});

  // True when a periodic refresh is due (nothing fetched yet, or `interval` since the last
  // attempt).
  bool refresh_due(TimePoint now) const;

  // Called on jwt_unknown_kid: true (and the slot is taken) when no unknown-kid refetch happened in
  // the last `unknown_kid_interval`; false otherwise. Thread-safe; among concurrent callers at
  // most one gets true.
  bool claim_unknown_kid_refetch(TimePoint now);

  // Records a fetch attempt, successful or not (a failing endpoint is retried at the normal pace,
  // not hammered).
  void record_attempt(TimePoint now);

 private:
  std::chrono::seconds interval_;
  std::chrono::seconds unknown_kid_interval_;
  mutable std::mutex mutex_;
  bool attempted_ = false;
  TimePoint last_attempt_{};
  bool kid_refetched_ = false;
  TimePoint last_kid_refetch_{};
};

}  // namespace portcullis::auth
