#pragma once
// The `redis` state backend: revocations, subject cut-offs and bans shared by a fleet through one
// Redis. Every instance keeps the whole state in its local Mirror (the request path never waits
// on Redis) and follows a change stream to keep it current; a write is acknowledged only once
// Redis has it.
//
// Layout in Redis (every key under key_prefix, every record key with a TTL at its retention end,
// state::Retention::keep_until, so Redis forgets what no longer denies anything):
//   <prefix>rev:<len(issuer)>:<issuer>:<jti>      value "<exp>"
//   <prefix>cut:<len(issuer)>:<issuer>:<subject>  value "<issued_before>"
//   <prefix>ban:<client key of the ip>            value "<until>:<reason>"
//   <prefix>changes                               a stream, one entry per change
//   <prefix>rl:<limit name>:<ip|sub>:<client>      a rate limit's TAT (redis/gcra.hpp)
//   <prefix>instances                             a sorted set: instance id -> last seen (ms)
// The issuer's length makes a key unambiguous whatever bytes issuer, jti or subject hold.
// A write is one Lua script (EVALSHA, EVAL when the server does not know it yet) that merges
// like the Mirror (the later exp / issued_before / ban end wins, so a write never shortens a
// denial; unban deletes), sets the value with its TTL (SET ... PXAT) and appends the change to
// the stream (XADD MAXLEN ~ stream_max_length), atomically.
//
// The stream is only a feed: the keys hold the whole state. A follower that fell behind by more
// than the stream keeps (an outage during more than stream_max_length changes, a server that lost
// its data) reloads everything: SCAN <prefix>rev:* / cut:* / ban:* with MGET per batch, then
// Mirror::replace_all. So stream_max_length only decides how long an outage is ridden out without
// a full reload: at R changes per second it covers stream_max_length / R seconds. Entries older
// than the longest retention (max_token_lifetime + after_exp) are never needed: every record they
// carry is also in its key until then.
// A reload needs the whole state within this instance's mirror caps (MirrorOptions): give every
// instance of a fleet the same caps and retention. A write that adds a key is refused with
// capacity_exceeded when the writer's own mirror is full.
//
// Threads: the backend runs one io_context on one thread of its own, with a write connection and a
// stream follower (its own connection). Every public member may be called from any thread; `done`
// runs on the backend's thread (post it to your executor). Writes never block the caller.
//
// Availability: available() is true while the follower is connected, reading, and its last full
// reload succeeded; it turns false as soon as the follower's connection breaks (at once when the
// server goes away, within the XREAD block + command_timeout when it hangs) and true again on its
// own once Redis is back and the reload is done.
//
// Wiring:
//   redis::StateBackendOptions options;
//   options.redis = redis::redis_options(policy.state.redis, password_from_file);
//   options.mirror.retention.max_token_lifetime = policy.state.max_token_lifetime;
//   auto backend = std::make_unique<redis::RedisStateBackend>(options, clock, &state_metrics);
//   backend->on_persistence_checked([](bool aof) { if (!aof) warn(...); });
//   backend->start();                              // does not wait for Redis
//   ... share as state::Backend&, call maintain() from a timer ...
//   backend->stop();                               // before the clock or the metrics go away

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>

#include "portcullis/config/policy.hpp"
#include "portcullis/core/clock.hpp"
#include "portcullis/limits/lease_table.hpp"
#include "portcullis/redis/options.hpp"
#include "portcullis/redis/reply.hpp"
#include "portcullis/state/backend.hpp"
#include "portcullis/state/mirror_rooms.hpp"

namespace portcullis::obs {
class StateMetrics;
}

namespace portcullis::redis {

struct StateBackendOptions {
  RedisOptions redis;
  state::MirrorOptions mirror;
  // XADD MAXLEN ~ this (see above): 100k entries are ~20 MB in Redis and ride out about 30 min
  // at 50 changes per second.
  std::size_t stream_max_length = 100'000;
  // SCAN ... COUNT and the MGET batch of a full reload.
  std::size_t scan_count = 1000;
  // How long one XREAD blocks: a hung (not closed) server is noticed within this plus
  // command_timeout. Each instance sends about one XREAD per block when idle.
  std::chrono::milliseconds follow_block{250};
  // Budgets leased for high-rate limits (limits/lease_table.hpp); false: one script per request.
  bool lease_limits = true;
  // Leases running low are refilled ahead of need (false: only when a request finds none left).
  bool refill_leases = true;
  limits::LeaseTableOptions leases;
  // How often this instance announces itself in <prefix>instances; an instance not heard from
  // for three announcements no longer counts as live.
  std::chrono::milliseconds announce_interval{2000};
};

// The connection settings of the policy's state.redis; `password` is the content of its
// password_file, read by the caller (empty when there is none).
RedisOptions redis_options(const config::RedisSettings& settings, std::string password);

// Why a write was not acknowledged, beyond state::StateError.
enum class RedisStateError {
  timeout = 1,   // no reply within command_timeout
  disconnected,  // not connected, or the connection broke
  overloaded,    // too many commands in flight
  protocol,      // the server's reply was not understood
  server,        // Redis answered with an error
};

const std::error_category& redis_state_category();
std::error_code make_error_code(RedisStateError error);

// Counters since construction (for metrics and tests).
struct StateBackendStats {
  std::uint64_t resyncs = 0;          // full reloads that succeeded
  std::uint64_t resync_failures = 0;  // full reloads that failed (retried)
  std::uint64_t changes_applied = 0;  // stream entries applied to the mirror
  std::uint64_t bad_entries = 0;      // stream entries or keys that could not be read
  std::uint64_t writes_ok = 0;
  std::uint64_t writes_failed = 0;
  std::uint64_t commands = 0;             // commands sent by this backend (writes and reloads)
  std::uint64_t limit_calls = 0;          // rate-limit scripts sent (decide_limits)
  std::uint64_t leased_decisions = 0;     // rate-limit decisions served from leased budgets
  std::array<std::uint64_t, 5> errors{};  // by RedisStateError - 1
};

// The keys, for operators and tests.
std::string revocation_key(std::string_view prefix, std::string_view issuer, std::string_view jti);
std::string cutoff_key(std::string_view prefix, std::string_view issuer, std::string_view subject);
std::string ban_key(std::string_view prefix, const core::IpAddress& ip);
std::string changes_key(std::string_view prefix);

class RedisStateBackend final : public state::Backend {
 public:
  // Throws std::runtime_error when the TLS settings cannot be loaded, std::invalid_argument for
  // retention settings out of range. `metrics` may be null; it must outlive the backend.
  RedisStateBackend(StateBackendOptions options, const core::Clock& clock,
                    obs::StateMetrics* metrics = nullptr);
  ~RedisStateBackend() override;
  RedisStateBackend(const RedisStateBackend&) = delete;
  RedisStateBackend& operator=(const RedisStateBackend&) = delete;

  const state::Mirror& mirror() const override { return mirror_; }
  void revoke(state::Revocation revocation, Done done) override;
  void cut_off(state::SubjectCutoff cutoff, Done done) override;
  void ban(state::Ban ban, Done done) override;
  void unban(core::IpAddress ip, Done done) override;
  bool available() const override { return available_.load(std::memory_order_acquire); }
  bool durable() const override { return true; }
  // Rate limits: one GCRA script per decision (EVALSHA, every limit in one round trip, Redis
  // time). A high-rate limit is leased in slices (limits/lease_table.hpp): the script takes k
  // tokens at once and the next k - 1 requests are decided here. A request partly covered by
  // leases asks Redis for the rest only, and gives the leased tokens back when refused.
  bool shares_limits() const override { return true; }
  void decide_limits(std::vector<LimitCheck> checks, Decided decided) override;
  bool decide_from_leases(std::span<const LimitCheck> checks,
                          LimitDecision& decision) const override;
  // Each instance announces itself every announce_interval (ZADD <prefix>instances, Redis time);
  // this is the count of those heard from within three intervals, as of the last announcement
  // that got an answer (1 before the first).
  std::size_t live_instances() const override;
  // Passes of the announcing loop so far (every announce_interval, every 50 ms while Redis is
  // unreachable), for tests that must see time pass on the backend's own schedule.
  std::uint64_t announce_rounds() const;
  // Tokens this instance holds in a live lease of a limit key (LimitCheck::key), for tests.
  std::int64_t leased_tokens(std::string_view key) const;
  // Starts the thread and connecting; never waits for Redis. Writes before start() complete
  // with StateError::stopped.
  void start() override;
  // Refuses the writes in flight (they complete with an error), stops the connections and joins
  // the thread. Later writes complete with StateError::stopped. Called from a `done`, it only
  // queues the shutdown (the destructor joins); never destroy the backend from a `done`.
  void stop() override;
  void maintain() override;

  // Called on the backend's thread after each (re)connect of the write connection with whether
  // the server writes an append-only file (INFO persistence). Set before start(). A fleet whose
  // Redis runs with `appendonly no` loses every revocation and ban when Redis restarts.
  void on_persistence_checked(std::function<void(bool aof_enabled)> handler);
  // The last answer to that question; nothing until it was asked.
  std::optional<bool> aof_enabled() const;

  StateBackendStats stats() const;

 private:
  struct Impl;
  template <class Record>
  void write(Record record, Done done);

  const core::Clock& clock_;
  state::Mirror mirror_;
  state::MirrorRooms rooms_{mirror_};  // writes adding a key, until they land or fail
  std::atomic<bool> available_{false};
  std::unique_ptr<Impl> impl_;
  // Orders start/stop (exclusive) against work handed to the thread (shared: the request path's
  // limit decisions on several workers never wait for one another).
  mutable std::shared_mutex lifecycle_mutex_;
  bool accepting_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace portcullis::redis

template <>
struct std::is_error_code_enum<portcullis::redis::RedisStateError> : std::true_type {};
