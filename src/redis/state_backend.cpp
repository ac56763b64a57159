#include "portcullis/redis/state_backend.hpp"

#include "portcullis/redis/gcra.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <tuple>

#include "portcullis/obs/state_metrics.hpp"
#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/connection.hpp"
#include "portcullis/redis/stream_follower.hpp"
#include "state_codec.hpp"

namespace portcullis::redis {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using state::StateError;

namespace {

std::optional<RedisStateError> error_of(Status status) {
  switch (status) {
    case Status::ok:
      return std::nullopt;
    case Status::timeout:
      return RedisStateError::timeout;
    case Status::disconnected:
      return RedisStateError::disconnected;
    case Status::overloaded:
      return RedisStateError::overloaded;
    case Status::protocol:
      return RedisStateError::protocol;
  }
  return RedisStateError::protocol;
}

std::int64_t unix_seconds(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

}  // namespace

// Everything that lives on the backend's thread.
struct RedisStateBackend::Impl {
  Impl(StateBackendOptions o, const core::Clock& c, state::Mirror& m, std::atomic<bool>& a,
       obs::StateMetrics* metrics_sink)
      : options(std::move(o)),
        clock(c),
        mirror(m),
        available(a),
        metrics(metrics_sink),
        work(io.get_executor()),
        watch_timer(io),
        stream(changes_key(options.redis.key_prefix)) {
    write_connection = Connection::create(io.get_executor(), options.redis);
    StreamFollower::Handlers handlers;
    handlers.on_entry = [this](const StreamEntry& entry) { apply_entry(entry); };
    handlers.on_resync = [this]() { return reload(); };
    follower = StreamFollower::create(io.get_executor(), options.redis, stream, std::move(handlers),
                                      options.follow_block);
  }

  asio::io_context io;  // first: destroyed last
  StateBackendOptions options;
  const core::Clock& clock;
  state::Mirror& mirror;
  std::atomic<bool>& available;
  obs::StateMetrics* metrics;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::steady_timer watch_timer;
  std::string stream;
  std::shared_ptr<Connection> write_connection;
  std::shared_ptr<StreamFollower> follower;
  bool stopped = false;
  bool reload_ok = false;
  // Writes acknowledged while a reload runs: the reload may have scanned their keys before they
  // were written, so they are applied again once it has replaced the mirror.
  bool reloading = false;
  std::vector<codec::Change> acknowledged_during_reload;
  bool reported_up = false;
  std::uint64_t checked_generation = 0;
  std::function<void(bool)> on_persistence;
  std::atomic<int> aof{-1};  // -1 unknown, 0 no, 1 yes

  // Counters, read from any thread.
  std::atomic<std::uint64_t> resyncs{0}, resync_failures{0}, changes_applied{0}, bad_entries{0},
      writes_ok{0}, writes_failed{0}, commands{0};
  std::array<std::atomic<std::uint64_t>, 5> errors{};

  std::int64_t now() const { return unix_seconds(clock); }

  void start() {
    follower->connection().on_state_change([this](bool ready, std::string_view) {
      if (!ready) set_available(false);
    });
    write_connection->start();
    follower->start();
    asio::co_spawn(io, watch(), asio::detached);
  }

  void shutdown() {
    stopped = true;
    set_available(false);
    watch_timer.cancel();
    follower->stop();
    write_connection->stop();  // fails every write in flight
    work.reset();
  }

  void set_available(bool up) {
    available.store(up, std::memory_order_release);
    if (metrics && up != reported_up) metrics->backend_up(up);
    reported_up = up;
  }

  // Sends one command, counting it, its latency and its failure.
  asio::awaitable<Reply> command(Connection& connection, Command words) {
    const auto started = clock.monotonic();
    auto reply = co_await connection.execute(std::move(words));
    ++commands;
    if (metrics)
      metrics->redis_command(std::chrono::duration<double>(clock.monotonic() - started).count());
    if (auto error = error_of(reply.status)) {
      count_error(*error);
    } else if (reply.value.is_error() && !reply.is_error("NOSCRIPT")) {
      count_error(RedisStateError::server);
    }
    co_return reply;
  }

  void count_error(RedisStateError error) {
    const auto index = static_cast<std::size_t>(error) - 1;
    ++errors[index];
    if (metrics) metrics->redis_error(static_cast<obs::RedisErrorKind>(index));
  }

  // Polls the follower (its state lives on this thread) for available(), and asks each new
  // write connection whether the server persists.
  asio::awaitable<void> watch() {
    while (!stopped) {
      set_available(follower->following() && follower->connection().ready() && reload_ok);
      if (write_connection->ready() && write_connection->generation() != checked_generation) {
        checked_generation = write_connection->generation();
        const auto reply = co_await command(*write_connection, make_command("INFO", "persistence"));
        const auto enabled = reply.ok() && reply.value.is_text()
                                 ? parse_aof_enabled(reply.value.string)
                                 : std::optional<bool>{};
        if (enabled) {
          aof.store(*enabled ? 1 : 0);
          if (on_persistence) on_persistence(*enabled);
        } else if (reply.status != Status::ok) {
          checked_generation = 0;  // not asked: ask again
        }
      }
      watch_timer.expires_after(std::chrono::milliseconds(5));
      co_await watch_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // ---- the follower ---------------------------------------------------------------------------

  void apply_entry(const StreamEntry& entry) {
    const auto change = codec::parse_change(entry.fields);
    if (!change) {
      ++bad_entries;
      return;
    }
    const auto error = apply_change(*change);
    if (error)
      ++bad_entries;
    else
      ++changes_applied;
  }

  std::error_code apply_change(const codec::Change& change) {
    return std::visit(
        [&](const auto& record) -> std::error_code {
          if constexpr (std::is_same_v<std::decay_t<decltype(record)>, codec::Unban>) {
            mirror.remove_ban(record.ip);
            return {};
          } else {
            return mirror.apply(record, now());
          }
        },
        change);
  }

  // Loads everything under the prefix into the mirror (a full resync), on the follower's
  // connection, which is idle meanwhile.
  asio::awaitable<bool> reload() {
    reload_ok = false;
    set_available(false);
    reloading = true;
    acknowledged_during_reload.clear();
    state::MirrorContents contents;
    const bool loaded = co_await load(codec::kRevocations, contents) &&
                        co_await load(codec::kCutoffs, contents) &&
                        co_await load(codec::kBans, contents);
    reloading = false;
    const bool replaced = loaded && !mirror.replace_all(contents, now());
    for (const auto& change : acknowledged_during_reload)
      apply_change(change);
    acknowledged_during_reload.clear();
    if (replaced) {
      reload_ok = true;
      ++resyncs;
      if (metrics) metrics->resync();
      co_return true;
    }
    ++resync_failures;
    co_return false;
  }

  // One key kind: SCAN batches, each batch's MGET sent together with the next SCAN (pipelined).
  asio::awaitable<bool> load(std::string_view kind, state::MirrorContents& contents) {
    auto& connection = follower->connection();
    const std::string prefix = options.redis.key_prefix + std::string(kind);
    const std::string pattern = codec::glob_prefix(prefix) + "*";
    const std::string count = std::to_string(std::max<std::size_t>(options.scan_count, 1));
    const auto scan = [&](const std::string& cursor) {
      return command(connection, make_command("SCAN", cursor, "MATCH", pattern, "COUNT", count));
    };
    const auto scan_ok = [](const Reply& reply) {
      return reply.ok() && reply.value.is_array() && reply.value.elements.size() == 2 &&
             reply.value.elements[0].is_text() && reply.value.elements[1].is_array();
    };
    Reply batch = co_await scan("0");
    while (true) {
      if (!scan_ok(batch)) co_return false;
      const std::string cursor = batch.value.elements[0].string;
      const auto keys = std::move(batch.value.elements[1].elements);
      const bool more = cursor != "0";
      if (keys.empty()) {
        if (!more) co_return true;
        batch = co_await scan(cursor);
        continue;
      }
      Command mget{"MGET"};
      for (const auto& key : keys)
        mget.push_back(key.string);
      Reply values;
      if (more) {
        std::tie(values, batch) = co_await (command(connection, std::move(mget)) && scan(cursor));
      } else {
        values = co_await command(connection, std::move(mget));
      }
      if (!values.ok() || !values.value.is_array() || values.value.elements.size() != keys.size())
        co_return false;
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const auto& value = values.value.elements[i];
        if (value.is_nil()) continue;  // expired or deleted since the SCAN
        if (!decode(kind, std::string_view(keys[i].string).substr(prefix.size()), value.string,
                    contents))
          ++bad_entries;
      }
      // Refuse early rather than hold more than the mirror could take.
      const auto& o = mirror.options();
      if (contents.revocations.size() > 2 * o.max_revocations ||
          contents.cutoffs.size() > 2 * o.max_cutoffs || contents.bans.size() > 2 * o.max_bans)
        co_return false;
      if (!more) co_return true;
    }
  }

  static bool decode(std::string_view kind, std::string_view suffix, std::string_view value,
                     state::MirrorContents& contents) {
    if (kind == codec::kBans) {
      auto ban = codec::parse_ban(suffix, value);
      if (!ban || !state::is_valid(*ban)) return false;
      contents.bans.push_back(std::move(*ban));
      return true;
    }
    auto pair = codec::parse_pair_suffix(suffix);
    const auto time = codec::parse_int(value);
    if (!pair || !time) return false;
    if (kind == codec::kRevocations) {
      state::Revocation r{std::move(pair->first), std::move(pair->second), *time};
      if (!state::is_valid(r)) return false;
      contents.revocations.push_back(std::move(r));
    } else {
      state::SubjectCutoff c{std::move(pair->first), std::move(pair->second), *time};
      if (!state::is_valid(c)) return false;
      contents.cutoffs.push_back(std::move(c));
    }
    return true;
  }

  // ---- writes ---------------------------------------------------------------------------------

  // Runs the write script; an empty error once Redis has the change.
  asio::awaitable<std::error_code> run_script(std::vector<std::string> args) {
    Command words{"EVALSHA", codec::write_script_sha1(), "2"};
    words.insert(words.end(), std::make_move_iterator(args.begin()),
                 std::make_move_iterator(args.end()));
    auto reply = co_await command(*write_connection, words);
    if (reply.is_error("NOSCRIPT")) {
      words[0] = "EVAL";
      words[1] = std::string(codec::kWriteScript);
      reply = co_await command(*write_connection, std::move(words));
    }
    if (const auto error = error_of(reply.status)) co_return make_error_code(*error);
    if (reply.value.is_error()) co_return make_error_code(RedisStateError::server);
    if (reply.value.type != Value::Type::integer)
      co_return make_error_code(RedisStateError::protocol);
    co_return std::error_code{};
  }

  template <class Record>
  asio::awaitable<void> put(Record record, std::string key, std::string value, std::int64_t time,
                            Done done) {
    std::error_code error = StateError::stopped;
    if (!stopped) {
      const auto keep_until_ms = mirror.options().retention.keep_until(record) * 1000;
      std::vector<std::string> args{std::move(key),
                                    stream,
                                    "put",
                                    std::to_string(options.stream_max_length),
                                    std::to_string(time),
                                    std::move(value),
                                    std::to_string(keep_until_ms)};
      for (auto& [name, text] : codec::change_fields(codec::Change{record})) {
        args.push_back(std::move(name));
        args.push_back(std::move(text));
      }
      error = co_await run_script(std::move(args));
      if (!error) error = mirror.apply(record, now());
      if (!error && reloading) acknowledged_during_reload.emplace_back(record);
    }
    finish(error, done);
  }

  asio::awaitable<void> erase_ban(core::IpAddress ip, Done done) {
    std::error_code error = StateError::stopped;
    if (!stopped) {
      std::vector<std::string> args{ban_key(options.redis.key_prefix, ip),
                                    stream,
                                    "del",
                                    std::to_string(options.stream_max_length),
                                    "0",
                                    "",
                                    "0"};
      for (auto& [name, text] : codec::change_fields(codec::Unban{ip})) {
        args.push_back(std::move(name));
        args.push_back(std::move(text));
      }
      error = co_await run_script(std::move(args));
      if (!error) mirror.remove_ban(ip);
      if (!error && reloading) acknowledged_during_reload.emplace_back(codec::Unban{ip});
    }
    finish(error, done);
  }

  void finish(std::error_code error, const Done& done) {
    if (error)
      ++writes_failed;
    else
      ++writes_ok;
    done(error);
  }
};

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
  for (std::size_t i = 0; i < stats.errors.size(); ++i)
    stats.errors[i] = impl_->errors[i].load();
  return stats;
}

namespace {

std::size_t held(const state::MirrorSizes& s, const state::Revocation&) {
  return s.revocations;
}
std::size_t held(const state::MirrorSizes& s, const state::SubjectCutoff&) {
  return s.cutoffs;
}
std::size_t held(const state::MirrorSizes& s, const state::Ban&) {
  return s.bans;
}
std::size_t cap(const state::MirrorOptions& o, const state::Revocation&) {
  return o.max_revocations;
}
std::size_t cap(const state::MirrorOptions& o, const state::SubjectCutoff&) {
  return o.max_cutoffs;
}
std::size_t cap(const state::MirrorOptions& o, const state::Ban&) {
  return o.max_bans;
}

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
  // A key not held yet needs room in every instance's mirror: refuse before Redis has it.
  if (!mirror_.contains(record) &&
      held(mirror_.sizes(), record) >= cap(mirror_.options(), record)) {
    mirror_.purge_expired(at);
    if (held(mirror_.sizes(), record) >= cap(mirror_.options(), record))
      return done(StateError::capacity_exceeded);
  }
  auto [key, value] = key_and_value(impl_->options.redis.key_prefix, record);
  {
    std::lock_guard lock(lifecycle_mutex_);
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

void RedisStateBackend::decide_limits(std::vector<LimitCheck> checks, Decided decided) {
  std::lock_guard lock(lifecycle_mutex_);
  if (!accepting_) {
    decided(StateError::stopped, {});
    return;
  }
  asio::co_spawn(
      impl_->io,
      [impl = impl_.get(), checks = std::move(checks),
       decided = std::move(decided)]() mutable -> asio::awaitable<void> {
        std::vector<GcraLimit> limits;
        limits.reserve(checks.size());
        for (const auto& check : checks) {
          GcraLimit limit;
          limit.key = impl->options.redis.key_prefix;
          limit.key.append("rl:").append(check.key);
          limit.emission_interval_us = check.emission_us;
          limit.burst_tolerance_us = (check.burst - 1) * check.emission_us;
          limits.push_back(std::move(limit));
        }
        const auto started = impl->clock.monotonic();
        const auto result = co_await gcra_decide(*impl->write_connection, limits);
        ++impl->commands;
        if (impl->metrics) {
          impl->metrics->redis_command(
              std::chrono::duration<double>(impl->clock.monotonic() - started).count());
        }
        if (!result.decided()) {
          if (const auto error = error_of(result.status)) {
            impl->count_error(*error);
            decided(make_error_code(*error), {});
          } else {
            impl->count_error(RedisStateError::server);
            decided(make_error_code(RedisStateError::server), {});
          }
          co_return;
        }
        // The headline: the denying limit with the longest wait, or the tightest passing one.
        state::Backend::LimitDecision decision;
        decision.allowed = result.allowed;
        const auto seconds_up = [](std::int64_t us) { return (us + 999'999) / 1'000'000; };
        bool chosen = false;
        for (std::size_t i = 0; i < result.limits.size(); ++i) {
          const auto& outcome = result.limits[i];
          const bool better =
              !chosen ||
              (result.allowed
                   ? outcome.remaining < result.limits[decision.deciding].remaining
                   : !outcome.passed && (result.limits[decision.deciding].passed ||
                                         outcome.retry_after_us >
                                             result.limits[decision.deciding].retry_after_us));
          if (better) {
            decision.deciding = i;
            chosen = true;
          }
        }
        const auto& headline = result.limits[decision.deciding];
        decision.limit = checks[decision.deciding].burst;
        decision.remaining = headline.remaining;
        decision.reset = seconds_up(headline.reset_us);
        decision.retry_after =
            result.allowed ? 0
                           : std::max<std::int64_t>(1, headline.retry_after_us < 0
                                                           ? decision.reset
                                                           : seconds_up(headline.retry_after_us));
        decided({}, decision);
      },
      asio::detached);
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
    std::lock_guard lock(lifecycle_mutex_);
    if (accepting_) {
      asio::co_spawn(impl_->io, impl_->erase_ban(ip, std::move(done)), asio::detached);
      return;
    }
  }
  done(StateError::stopped);
}

}  // namespace portcullis::redis
