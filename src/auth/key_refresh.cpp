#include "portcullis/auth/key_refresh.hpp"

namespace portcullis::auth {

bool KeySetHolder::offer(const KeySetLoad& load) {
  if (!load.ok()) return false;
  current_.store(load.keys);
  return true;
}

RefreshSchedule::RefreshSchedule(std::chrono::seconds interval,
                                 std::chrono::seconds unknown_kid_interval)
    : interval_(interval),
      unknown_kid_interval_(unknown_kid_interval > std::chrono::seconds{0} ? unknown_kid_interval
                                                                           : interval) {}

bool RefreshSchedule::refresh_due(TimePoint now) const {
  std::lock_guard lock(mutex_);
  return !attempted_ || now - last_attempt_ >= interval_;
}

bool RefreshSchedule::claim_unknown_kid_refetch(TimePoint now) {
  std::lock_guard lock(mutex_);
  if (kid_refetched_ && now - last_kid_refetch_ < unknown_kid_interval_) return false;
  kid_refetched_ = true;
  last_kid_refetch_ = now;
  return true;
}

void RefreshSchedule::record_attempt(TimePoint now) {
  std::lock_guard lock(mutex_);
  attempted_ = true;
  last_attempt_ = now;
}

}  // namespace portcullis::auth
