#include "portcullis/state/memory_backend.hpp"

namespace portcullis::state {
namespace {

std::size_t& in_flight_of(auto& in_flight, const Revocation&) {
  return in_flight.revocations;
}
std::size_t& in_flight_of(auto& in_flight, const SubjectCutoff&) {
  return in_flight.cutoffs;
}
std::size_t& in_flight_of(auto& in_flight, const Ban&) {
  return in_flight.bans;
}

std::size_t held(const MirrorSizes& sizes, const Revocation&) {
  return sizes.revocations;
}
std::size_t held(const MirrorSizes& sizes, const SubjectCutoff&) {
  return sizes.cutoffs;
}
std::size_t held(const MirrorSizes& sizes, const Ban&) {
  return sizes.bans;
}

std::size_t cap(const MirrorOptions& options, const Revocation&) {
  return options.max_revocations;
}
std::size_t cap(const MirrorOptions& options, const SubjectCutoff&) {
  return options.max_cutoffs;
}
std::size_t cap(const MirrorOptions& options, const Ban&) {
  return options.max_bans;
}

}  // namespace

MemoryBackend::MemoryBackend(const MemoryBackendOptions& options, const core::Clock& clock)
    : clock_(clock), mirror_(options.mirror) {
  if (options.path.empty()) return;
  DurableStoreOptions store_options = options.store;
  store_options.retention = options.mirror.retention;
  store_ = std::make_unique<DurableStore>(options.path, clock_, store_options);
  store_->load(mirror_, now());
}

MemoryBackend::~MemoryBackend() {
  stop();
}

std::int64_t MemoryBackend::now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.wall().time_since_epoch()).count();
}

void MemoryBackend::start() {
  if (store_) store_->start();
}

void MemoryBackend::stop() {
  if (store_) store_->stop();
}

void MemoryBackend::maintain() {
  mirror_.purge_expired(now());
}

DurableStoreStats MemoryBackend::store_stats() const {
  return store_ ? store_->stats() : DurableStoreStats{};
}

// True when the write may proceed; `reserved` says whether room was taken for it.
template <class Record>
bool MemoryBackend::reserve(const Record& record, std::int64_t now) {
  std::lock_guard lock(in_flight_mutex_);
  auto& pending = in_flight_of(in_flight_, record);
  const std::size_t limit = cap(mirror_.options(), record);
  if (held(mirror_.sizes(), record) + pending >= limit) {
    mirror_.purge_expired(now);
    if (held(mirror_.sizes(), record) + pending >= limit) return false;
  }
  ++pending;
  return true;
}

template <class Record>
void MemoryBackend::release(const Record& record) {
  std::lock_guard lock(in_flight_mutex_);
  --in_flight_of(in_flight_, record);
}

template <class Record>
void MemoryBackend::write(Record record, Done done) {
  if (!done) done = [](std::error_code) {};
  const auto at = now();
  if (!is_valid(record)) return done(StateError::invalid_record);
  // Already past its retention: it denies nothing, so there is nothing to keep.
  if (mirror_.options().retention.keep_until(record) <= at) return done({});
  if (!store_) return done(mirror_.apply(record, at));

  // A write to a key already held needs no room; otherwise hold room until it lands.
  const bool reserved = !mirror_.contains(record);
  if (reserved && !reserve(record, at)) return done(StateError::capacity_exceeded);
  store_->put(record, [this, record, reserved, done = std::move(done)](std::error_code error) {
    if (!error) error = mirror_.apply(record, now());
    if (reserved) release(record);
    done(error);
  });
}

void MemoryBackend::revoke(Revocation revocation, Done done) {
  write(std::move(revocation), std::move(done));
}

void MemoryBackend::cut_off(SubjectCutoff cutoff, Done done) {
  write(std::move(cutoff), std::move(done));
}

void MemoryBackend::ban(Ban ban, Done done) {
  write(std::move(ban), std::move(done));
}

void MemoryBackend::unban(core::IpAddress ip, Done done) {
  if (!done) done = [](std::error_code) {};
  if (!store_) {
    mirror_.remove_ban(ip);
    return done({});
  }
  store_->erase_ban(ip, [this, ip, done = std::move(done)](std::error_code error) {
    if (!error) mirror_.remove_ban(ip);
    done(error);
  });
}

}  // namespace portcullis::state
