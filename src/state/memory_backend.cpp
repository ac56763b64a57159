#include "portcullis/state/memory_backend.hpp"

namespace portcullis::state {

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

template <class Record>
void MemoryBackend::write(Record record, Done done) {
  if (!done) done = [](std::error_code) {};
  const auto at = now();
  if (!is_valid(record)) return done(StateError::invalid_record);
  // Already past its retention: it denies nothing, so there is nothing to keep.
  if (mirror_.options().retention.keep_until(record) <= at) return done({});
  if (!store_) return done(mirror_.apply(record, at));

  const auto room = rooms_.take(record, at);
  if (room == MirrorRooms::Room::none) return done(StateError::capacity_exceeded);
  store_->put(record, [this, record, room, done = std::move(done)](std::error_code error) {
    if (!error) error = mirror_.apply(record, now());
    if (room == MirrorRooms::Room::taken) rooms_.give_back(MirrorRooms::kind_of(record));
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
