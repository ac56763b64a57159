#include "state_backend_impl.hpp"

namespace portcullis::redis {

RedisOptions redis_options(const config::RedisSettings& settings, std::string password) {
  RedisOptions options;
  options.host = settings.host;
  options.port = settings.port;
  options.tls = settings.tls;
  options.ca_file = settings.ca_file;
  options.user = settings.user;
  options.password = std::move(password);
  options.database = static_cast<int>(settings.database);
  options.key_prefix = settings.key_prefix;
  options.command_timeout = settings.command_timeout;
  return options;
}

// ---- the backend --------------------------------------------------------------------------------

RedisStateBackend::RedisStateBackend(StateBackendOptions options, const core::Clock& clock,
                                     obs::StateMetrics* metrics)
    : clock_(clock), mirror_(options.mirror) {
  impl_ = std::make_unique<Impl>(std::move(options), clock_, mirror_, available_, metrics);
  if (metrics) metrics->backend_up(false);
}

RedisStateBackend::~RedisStateBackend() {
  stop();
}

void RedisStateBackend::on_persistence_checked(std::function<void(bool)> handler) {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_) impl_->on_persistence = std::move(handler);
}

std::optional<bool> RedisStateBackend::aof_enabled() const {
  const int value = impl_->aof.load();
  if (value < 0) return std::nullopt;
  return value == 1;
}

void RedisStateBackend::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) return;
  started_ = true;
  accepting_ = true;
  asio::post(impl_->io, [impl = impl_.get()] { impl->start(); });
  thread_ = std::thread([impl = impl_.get()] { impl->io.run(); });
}

void RedisStateBackend::stop() {
  std::thread thread;
  {
    std::lock_guard lock(lifecycle_mutex_);
    if (accepting_) {
      accepting_ = false;
      asio::post(impl_->io, [impl = impl_.get()] { impl->shutdown(); });
    }
    // Called from a `done`: the shutdown is queued; the destructor joins.
    if (!thread_.joinable() || std::this_thread::get_id() == thread_.get_id()) return;
    thread = std::move(thread_);
  }
  // The connections end their coroutines promptly once stopped; a bound keeps a stuck one from
  // holding the caller.
  auto finished = std::async(std::launch::async, [&thread] { thread.join(); });
  if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready) impl_->io.stop();
  finished.wait();
}

void RedisStateBackend::maintain() {
  mirror_.purge_expired(unix_seconds(clock_));
}

StateBackendStats RedisStateBackend::stats() const {
  StateBackendStats stats;
  stats.resyncs = impl_->resyncs.load();
  stats.resync_failures = impl_->resync_failures.load();
  stats.changes_applied = impl_->changes_applied.load();
  stats.bad_entries = impl_->bad_entries.load();
  stats.writes_ok = impl_->writes_ok.load();
  stats.writes_failed = impl_->writes_failed.load();
  stats.commands = impl_->commands.load();
  stats.limit_calls = impl_->limit_calls.load();
  stats.leased_decisions = impl_->leased_decisions.load();
  for (std::size_t i = 0; i < stats.errors.size(); ++i)
    stats.errors[i] = impl_->errors[i].load();
  return stats;
}

namespace {

std::pair<std::string, std::string> key_and_value(std::string_view prefix,
                                                  const state::Revocation& r) {
  return {revocation_key(prefix, r.issuer, r.jti), std::to_string(r.exp)};
}
std::pair<std::string, std::string> key_and_value(std::string_view prefix,
                                                  const state::SubjectCutoff& c) {
  return {cutoff_key(prefix, c.issuer, c.subject), std::to_string(c.issued_before)};
}
std::pair<std::string, std::string> key_and_value(std::string_view prefix, const state::Ban& b) {
  return {ban_key(prefix, b.ip), codec::ban_value(b)};
}
std::int64_t time_of(const state::Revocation& r) {
  return r.exp;
}
std::int64_t time_of(const state::SubjectCutoff& c) {
  return c.issued_before;
}
std::int64_t time_of(const state::Ban& b) {
  return b.until;
}

}  // namespace

template <class Record>
void RedisStateBackend::write(Record record, Done done) {
  if (!done) done = [](std::error_code) {};
  const auto at = unix_seconds(clock_);
  if (!state::is_valid(record)) return done(StateError::invalid_record);
  // Already past its retention: it denies nothing, so there is nothing to keep.
  if (mirror_.options().retention.keep_until(record) <= at) return done({});
  // A key not held yet needs room in the mirror, taken until the write lands or fails: refuse
  // before Redis has it rather than acknowledge what this instance could not enforce.
  const auto room = rooms_.take(record, at);
  if (room == state::MirrorRooms::Room::none) return done(StateError::capacity_exceeded);
  if (room == state::MirrorRooms::Room::taken) {
    done = [this, kind = state::MirrorRooms::kind_of(record),
            done = std::move(done)](std::error_code error) {
      rooms_.give_back(kind);
      done(error);
    };
  }
  auto [key, value] = key_and_value(impl_->options.redis.key_prefix, record);
  {
    std::shared_lock lock(lifecycle_mutex_);
    if (accepting_) {
      const auto time = time_of(record);
      asio::co_spawn(
          impl_->io,
          impl_->put(std::move(record), std::move(key), std::move(value), time, std::move(done)),
          asio::detached);
      return;
    }
  }
  done(StateError::stopped);
}

void RedisStateBackend::revoke(state::Revocation revocation, Done done) {
  write(std::move(revocation), std::move(done));
}

void RedisStateBackend::cut_off(state::SubjectCutoff cutoff, Done done) {
  write(std::move(cutoff), std::move(done));
}

void RedisStateBackend::ban(state::Ban ban, Done done) {
  write(std::move(ban), std::move(done));
}

void RedisStateBackend::unban(core::IpAddress ip, Done done) {
  if (!done) done = [](std::error_code) {};
  {
    std::shared_lock lock(lifecycle_mutex_);
    if (accepting_) {
      asio::co_spawn(impl_->io, impl_->erase_ban(ip, std::move(done)), asio::detached);
      return;
    }
  }
  done(StateError::stopped);
}

}  // namespace portcullis::redis
