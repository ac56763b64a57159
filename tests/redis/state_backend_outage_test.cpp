// The redis state backend when Redis goes away, comes back, loses its data, or a follower falls
// behind.

#include <prometheus/registry.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "portcullis/obs/state_metrics.hpp"
#include "redis/state_backend_support.hpp"

namespace portcullis::redis {
namespace {

using namespace test;

bool revoked(const RedisStateBackend& backend, const std::string& jti, std::int64_t now) {
  return backend.mirror().is_revoked("iss", jti, "", state::kNoIssuedAt, now);
}

TEST_F(StateBackendTest, AWriteWhileRedisIsDownIsRefusedInTime) {
  auto& a = backend();
  const auto now = unix_now();
  server_.kill();
  const auto killed = std::chrono::steady_clock::now();  // precise, for the printed delay
  ASSERT_TRUE(eventually([&] { return !a.available(); }, 2s));
  const auto noticed = std::chrono::steady_clock::now() - killed;
  std::printf("available() false %lld us after redis-server was killed\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(noticed).count()));
  EXPECT_LE(noticed, kCommandTimeout + 200ms);

  const auto started = test::now();
  const auto error = await_write([&](auto done) { a.revoke({"iss", "down", now + 600}, done); });
  EXPECT_TRUE(error);
  EXPECT_LE(test::now() - started, kCommandTimeout + 200ms);
  EXPECT_FALSE(revoked(a, "down", now));  // never acknowledged, never enforced as if it were
  EXPECT_GE(a.stats().writes_failed, 1u);
}

TEST_F(StateBackendTest, AWriteToAHungRedisTimesOut) {
  auto& a = backend();
  const auto now = unix_now();
  server_.pause();
  const auto started = test::now();
  const auto error = await_write([&](auto done) { a.revoke({"iss", "hung", now + 600}, done); });
  // A timeout, or disconnected when the connection's health check timed out first.
  EXPECT_TRUE(error == RedisStateError::timeout || error == RedisStateError::disconnected) << error;
  EXPECT_LE(test::now() - started, kCommandTimeout + 200ms);
  // The follower notices within its XREAD block plus command_timeout.
  EXPECT_TRUE(eventually([&] { return !a.available(); }, 2s));
  server_.resume();
  EXPECT_TRUE(eventually([&] { return a.available(); }));
  EXPECT_GE(a.stats().writes_failed, 1u);
}

TEST_F(StateBackendTest, StopRefusesWritesInFlight) {
  auto& a = backend();
  const auto now = unix_now();
  server_.pause();
  std::promise<std::error_code> outcome;
  a.revoke({"iss", "pending", now + 600}, [&](std::error_code e) { outcome.set_value(e); });
  a.stop();
  auto future = outcome.get_future();
  ASSERT_EQ(future.wait_for(1s), std::future_status::ready);
  EXPECT_TRUE(future.get());
  EXPECT_EQ(await_write([&](auto done) {
              a.revoke({"iss", "late", now + 600}, done);
            }),
            state::StateError::stopped);
  EXPECT_FALSE(a.available());
  server_.resume();
}

TEST_F(StateBackendTest, RecoversAfterARestartAndKeepsRevocationsWithAppendOnly) {
  server_.kill();
  start_server({"--appendonly", "yes", "--appendfsync", "always"});
  auto& a = backend();
  auto& b = backend();
  const auto now = unix_now();
  for (int i = 0; i < 20; ++i)
    ASSERT_FALSE(await_write([&](auto done) {
      a.revoke({"iss", "kept-" + std::to_string(i), now + 600}, done);
    }));
  ASSERT_TRUE(eventually([&] { return revoked(b, "kept-19", now); }));
  EXPECT_TRUE(eventually([&] { return a.aof_enabled() == true; }));

  server_.kill();
  EXPECT_TRUE(eventually([&] { return !a.available() && !b.available(); }, 2s));
  server_.start();  // same port, same dir: the append-only file is replayed
  ASSERT_TRUE(eventually([&] { return a.available() && b.available(); }));
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(revoked(a, "kept-" + std::to_string(i), now));
    EXPECT_TRUE(revoked(b, "kept-" + std::to_string(i), now));
  }
  // Writes work again without restarting anything.
  ASSERT_TRUE(eventually([&] {
    return !await_write([&](auto done) { a.revoke({"iss", "after", now + 600}, done); });
  }));
  EXPECT_TRUE(eventually([&] { return revoked(b, "after", now); }));
}

TEST_F(StateBackendTest, WithoutPersistenceARestartEmptiesTheMirrorThroughAResync) {
  auto& a = backend();
  const auto now = unix_now();
  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "lost", now + 600}, done); }));
  const auto resyncs = a.stats().resyncs;
  server_.kill();
  ASSERT_TRUE(eventually([&] { return !a.available(); }, 2s));
  server_.start();
  ASSERT_TRUE(eventually([&] { return a.available() && a.stats().resyncs > resyncs; }));
  // Redis forgot it, so the mirror says what Redis says: every instance agrees.
  EXPECT_FALSE(revoked(a, "lost", now));
  EXPECT_EQ(a.mirror().sizes().revocations, 0u);
  EXPECT_EQ(a.aof_enabled(), false);
}

// A gauge's or counter's value in `registry`, with `label` = `value` when given; -1 when absent.
double metric(prometheus::Registry& registry, const std::string& name,
              const std::string& label = {}, const std::string& value = {}) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      const bool match = label.empty() || std::any_of(m.label.begin(), m.label.end(), [&](auto& l) {
                           return l.name == label && l.value == value;
                         });
      if (!match) continue;
      if (family.type == prometheus::MetricType::Gauge) return m.gauge.value;
      if (family.type == prometheus::MetricType::Counter) return m.counter.value;
      if (family.type == prometheus::MetricType::Histogram)
        return static_cast<double>(m.histogram.sample_count);
    }
  }
  return -1;
}

TEST_F(StateBackendTest, FeedsTheStateMetrics) {
  prometheus::Registry registry;
  obs::StateMetrics metrics(registry);
  RedisStateBackend a(backend_options(), core::system_clock(), &metrics);
  EXPECT_EQ(metric(registry, "portcullis_state_backend_up"), 0);
  a.start();
  ASSERT_TRUE(eventually([&] { return a.available(); }));
  EXPECT_EQ(metric(registry, "portcullis_state_backend_up"), 1);
  EXPECT_EQ(metric(registry, "portcullis_state_resyncs_total"), 1);
  const auto now = unix_now();
  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "m", now + 600}, done); }));
  EXPECT_GE(metric(registry, "portcullis_redis_command_duration_seconds"), 3);  // SCANs, EVAL

  server_.kill();
  ASSERT_TRUE(eventually([&] { return !a.available(); }, 2s));
  EXPECT_EQ(metric(registry, "portcullis_state_backend_up"), 0);
  EXPECT_TRUE(await_write([&](auto done) { a.revoke({"iss", "n", now + 600}, done); }));
  EXPECT_GE(metric(registry, "portcullis_redis_errors_total", "kind", "disconnected"), 1);
  a.stop();
}

// B's connections use their own ACL user, so the test can keep B away while A writes.
class FollowerOutageTest : public StateBackendTest {
 protected:
  void SetUp() override {
    StateBackendTest::SetUp();
    ASSERT_TRUE(
        admin(make_command("ACL", "SETUSER", "b", "on", ">b-secret", "~*", "&*", "+@all")).ok());
  }
  RedisStateBackend& backend_b() {
    auto options = backend_options();
    options.redis.user = "b";
    options.redis.password = "b-secret";
    return backend(options);
  }
  void take_b_away() {
    ASSERT_TRUE(admin(make_command("ACL", "SETUSER", "b", "off")).ok());
    ASSERT_TRUE(admin(make_command("CLIENT", "KILL", "USER", "b")).ok());
  }
  void let_b_back() { ASSERT_TRUE(admin(make_command("ACL", "SETUSER", "b", "on")).ok()); }
};

TEST_F(FollowerOutageTest, AFollowerThatWasAwayCatchesUpWithoutLoss) {
  auto& a = backend();
  auto& b = backend_b();
  const auto now = unix_now();
  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "before", now + 600}, done); }));
  ASSERT_TRUE(eventually([&] { return revoked(b, "before", now); }));
  const auto resyncs = b.stats().resyncs;

  take_b_away();
  ASSERT_TRUE(eventually([&] { return !b.available(); }, 2s));
  for (int i = 0; i < 50; ++i)
    ASSERT_FALSE(await_write([&](auto done) {
      a.revoke({"iss", "away-" + std::to_string(i), now + 600}, done);
    }));
  ASSERT_FALSE(await_write([&](auto done) { a.cut_off({"iss", "dave", now}, done); }));
  EXPECT_FALSE(revoked(b, "away-0", now));
  let_b_back();

  ASSERT_TRUE(eventually([&] { return b.available() && revoked(b, "away-49", now); }));
  for (int i = 0; i < 50; ++i)
    EXPECT_TRUE(revoked(b, "away-" + std::to_string(i), now));
  EXPECT_TRUE(b.mirror().is_revoked("iss", "", "dave", now - 1, now));
  EXPECT_EQ(b.stats().resyncs, resyncs);  // the stream still had everything: no reload
}

TEST_F(FollowerOutageTest, TrimmedPastTheFollowerItReloadsAndEndsRight) {
  auto& a = backend();
  auto& b = backend_b();
  const auto now = unix_now();
  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "r0", now + 600}, done); }));
  ASSERT_FALSE(await_write([&](auto done) {
    a.ban({*core::IpAddress::parse("192.0.2.1"), now + 60, ""}, done);
  }));
  ASSERT_TRUE(eventually([&] { return revoked(b, "r0", now); }));
  const auto resyncs = b.stats().resyncs;

  take_b_away();
  ASSERT_TRUE(eventually([&] { return !b.available(); }, 2s));
  for (int i = 1; i <= 30; ++i)
    ASSERT_FALSE(await_write([&](auto done) {
      a.revoke({"iss", "r" + std::to_string(i), now + 600}, done);
    }));
  ASSERT_FALSE(
      await_write([&](auto done) { a.unban(*core::IpAddress::parse("192.0.2.1"), done); }));
  // The stream loses the entries B has not read.
  ASSERT_TRUE(admin(make_command("XTRIM", changes_key(kPrefix), "MAXLEN", "2")).ok());
  let_b_back();

  ASSERT_TRUE(eventually([&] { return b.available() && b.stats().resyncs > resyncs; }));
  for (int i = 0; i <= 30; ++i)
    EXPECT_TRUE(revoked(b, "r" + std::to_string(i), now)) << i;
  EXPECT_FALSE(b.mirror().ban_of(*core::IpAddress::parse("192.0.2.1"), now));
  EXPECT_EQ(b.mirror().sizes().revocations, 31u);
}

}  // namespace
}  // namespace portcullis::redis
