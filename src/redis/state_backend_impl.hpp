#pragma once
// Internal to the Redis state backend: the state that lives on its thread (Impl), shared by
// state_backend.cpp (writes, mirror following) and limit_decisions.cpp (shared rate limits).

#include <openssl/rand.h>
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
#include "portcullis/limits/lease_table.hpp"
#include "portcullis/obs/state_metrics.hpp"
#include "portcullis/redis/commands.hpp"
#include "portcullis/redis/connection.hpp"
#include "portcullis/redis/gcra.hpp"
#include "portcullis/redis/state_backend.hpp"
#include "portcullis/redis/stream_follower.hpp"
#include "state_codec.hpp"

namespace portcullis::redis {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using state::StateError;

inline std::optional<RedisStateError> error_of(Status status) {
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

inline std::int64_t unix_seconds(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

// One limit of a request being decided: by a lease (covered) or by the script.
struct LimitPlan {
  limits::LeaseTerms terms;
  bool covered = false;    // a leased token was taken for it
  std::int64_t asked = 1;  // the script's quantity (when not covered)
  GcraOutcome outcome;     // its figures (for a covered limit: the lease's estimate)
};

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
        announce_timer(io),
        stream(changes_key(options.redis.key_prefix)),
        instances_key(options.redis.key_prefix + "instances"),
        instance_id(make_instance_id()),
        leases(options.leases) {
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
  asio::steady_timer announce_timer;
  std::string stream;
  std::string instances_key;
  std::string instance_id;
  limits::LeaseTable leases;  // used from any thread (it locks itself)
  std::atomic<std::size_t> live{1};
  std::atomic<std::uint64_t> announce_rounds{0};  // passes of announce()'s loop, answered or not
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
      writes_ok{0}, writes_failed{0}, commands{0}, limit_calls{0}, leased_decisions{0};
  std::array<std::atomic<std::uint64_t>, 5> errors{};

  std::int64_t now() const { return unix_seconds(clock); }

  void start() {
    follower->connection().on_state_change([this](bool ready, std::string_view) {
      if (!ready) set_available(false);
    });
    write_connection->start();
    follower->start();
    asio::co_spawn(io, watch(), asio::detached);
    asio::co_spawn(io, announce(), asio::detached);
  }

  void shutdown() {
    stopped = true;
    set_available(false);
    watch_timer.cancel();
    announce_timer.cancel();
    asio::co_spawn(io, farewell(), asio::detached);
  }

  // Leaves the live set at once (the others count one fewer from their next announcement),
  // then stops the connections, which fails every write still in flight.
  asio::awaitable<void> farewell() {
    if (write_connection->ready())
      co_await write_connection->execute(make_command("ZREM", instances_key, instance_id));
    follower->stop();
    write_connection->stop();
    work.reset();
  }

  static std::string make_instance_id() {
    std::array<unsigned char, 8> bytes{};
    RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string id;
    for (const unsigned char byte : bytes) {
      id += kDigits[byte >> 4];
      id += kDigits[byte & 15];
    }
    return id;
  }

  // Every announce_interval: this instance's last-seen time (Redis TIME, ms) in the instances
  // set, the ones not heard from within three intervals dropped, the rest counted.
  asio::awaitable<void> announce() {
    static constexpr std::string_view kScript = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - keep)
redis.call('PEXPIRE', KEYS[1], keep)
return redis.call('ZCARD', KEYS[1])
)lua";
    const auto interval = std::max(options.announce_interval, std::chrono::milliseconds(10));
    const auto keep_ms = std::to_string(3 * interval.count());
    while (!stopped) {
      if (write_connection->ready()) {
        const auto reply = co_await command(
            *write_connection,
            make_command("EVAL", kScript, "1", instances_key, instance_id, keep_ms));
        if (reply.ok() && reply.value.type == Value::Type::integer) {
          const auto count =
              static_cast<std::size_t>(std::max<std::int64_t>(1, reply.value.integer));
          live.store(count);
          if (metrics) metrics->live_instances(count);
        }
      }
      announce_rounds.fetch_add(1, std::memory_order_relaxed);
      announce_timer.expires_after(write_connection->ready() ? interval
                                                             : std::chrono::milliseconds(50));
      co_await announce_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
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

  // Asks for `quantity` more tokens for a lease running low, without a request waiting on it
  // (limit_decisions.cpp); with `accepting` false it only ends the ask.
  void refill(const LimitCheck& check, std::int64_t quantity, bool accepting);
  // Runs the GCRA script for the limits no lease covered (limit_decisions.cpp).
  asio::awaitable<void> decide(std::vector<LimitCheck> checks, std::vector<LimitPlan> plans,
                               Decided decided);

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

}  // namespace portcullis::redis
