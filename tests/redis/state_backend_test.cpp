#include <algorithm>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "redis/state_backend_support.hpp"

namespace portcullis::redis {
namespace {

using namespace test;
using state::Ban;
using state::Revocation;
using state::SubjectCutoff;

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

TEST_F(StateBackendTest, ChangesThroughOneInstanceReachTheOther) {
  auto& a = backend();
  auto& b = backend();
  const auto now = unix_now();

  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "jti-1", now + 600}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { a.cut_off({"iss", "alice", now}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { a.ban({ip("192.0.2.7"), now + 60, "manual"}, done); }));
  // Acknowledged means in the writer's own mirror already.
  EXPECT_TRUE(a.mirror().is_revoked("iss", "jti-1", "", state::kNoIssuedAt, now));
  EXPECT_TRUE(eventually(
      [&] { return b.mirror().is_revoked("iss", "jti-1", "", state::kNoIssuedAt, now); }));
  EXPECT_TRUE(eventually([&] { return b.mirror().is_revoked("iss", "", "alice", now - 10, now); }));
  EXPECT_FALSE(b.mirror().is_revoked("iss", "", "alice", now + 1, now));  // issued after
  ASSERT_TRUE(eventually([&] { return b.mirror().ban_of(ip("192.0.2.7"), now).has_value(); }));
  EXPECT_EQ(b.mirror().ban_of(ip("192.0.2.7"), now)->reason, "manual");

  ASSERT_FALSE(await_write([&](auto done) { a.unban(ip("192.0.2.7"), done); }));
  EXPECT_FALSE(a.mirror().ban_of(ip("192.0.2.7"), now));
  EXPECT_TRUE(eventually([&] { return !b.mirror().ban_of(ip("192.0.2.7"), now); }));
  EXPECT_FALSE(await_write([&](auto done) { a.unban(ip("192.0.2.8"), done); }));  // no ban: fine
  EXPECT_TRUE(a.durable());
  EXPECT_GE(b.stats().changes_applied, 4u);
}

TEST_F(StateBackendTest, PropagationDelayOverTwoHundredRevocations) {
  auto& a = backend();
  auto& b = backend();
  const auto now = unix_now();
  std::vector<double> delays_ms;
  for (int i = 0; i < 200; ++i) {
    const std::string jti = "prop-" + std::to_string(i);
    // A precise clock: the gateway's monotonic clock is coarse (a few milliseconds).
    const auto started = std::chrono::steady_clock::now();
    ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", jti, now + 600}, done); }));
    ASSERT_TRUE(eventually(
        [&] { return b.mirror().is_revoked("iss", jti, "", state::kNoIssuedAt, now); }, 2s));
    delays_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count());
  }
  std::sort(delays_ms.begin(), delays_ms.end());
  const double p50 = delays_ms[delays_ms.size() / 2];
  const double p99 = delays_ms[delays_ms.size() * 99 / 100];
  std::printf("revocation through A enforced by B: p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%zu)\n",
              p50, p99, delays_ms.back(), delays_ms.size());
  RecordProperty("propagation_p50_ms", std::to_string(p50));
  RecordProperty("propagation_p99_ms", std::to_string(p99));
  EXPECT_LE(p50, 100.0);
  EXPECT_LE(p99, 100.0);
}

TEST_F(StateBackendTest, EveryKeyHasATtlAtItsRetentionEnd) {
  auto options = backend_options();
  auto& a = backend(options);
  const auto now = unix_now();
  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "ttl", now + 600}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { a.cut_off({"", "bob", now}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { a.ban({ip("2001:db8::1"), now + 60, "x"}, done); }));

  const auto pttl = [&](const std::string& key) {
    return admin(make_command("PTTL", key)).value.integer;
  };
  const auto retention = options.mirror.retention;
  const auto rev = pttl(revocation_key(kPrefix, "iss", "ttl"));
  EXPECT_GT(rev, 0);
  EXPECT_LE(rev, (600 + retention.after_exp.count()) * 1000);
  EXPECT_GT(rev, (600 + retention.after_exp.count() - 5) * 1000);
  const auto cut = pttl(cutoff_key(kPrefix, "", "bob"));
  EXPECT_GT(cut, 0);
  EXPECT_LE(cut, (retention.max_token_lifetime + retention.after_exp).count() * 1000);
  const auto ban = pttl(ban_key(kPrefix, ip("2001:db8::1")));
  EXPECT_GT(ban, 0);
  EXPECT_LE(ban, 60'000);
  EXPECT_EQ(ban_key(kPrefix, ip("2001:db8::1")), std::string(kPrefix) + "ban:2001:db8::");

  // Nothing outside the prefix, and the only key without a TTL is the stream.
  const auto keys = admin(make_command("KEYS", "*")).value.elements;
  EXPECT_EQ(keys.size(), 4u);
  for (const auto& key : keys) {
    EXPECT_TRUE(key.string.starts_with(kPrefix)) << key.string;
    if (key.string != changes_key(kPrefix)) {
      EXPECT_GT(pttl(key.string), 0) << key.string;
    }
  }
  EXPECT_EQ(admin(make_command("XLEN", changes_key(kPrefix))).value.integer, 3);
}

TEST_F(StateBackendTest, WritesMergeAndNeverShortenADenial) {
  auto& a = backend();
  auto& b = backend();
  const auto now = unix_now();
  const auto get = [&](const std::string& key) { return admin(make_command("GET", key)).value; };

  ASSERT_FALSE(await_write([&](auto done) { a.revoke({"iss", "m", now + 900}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { b.revoke({"iss", "m", now + 100}, done); }));
  EXPECT_EQ(get(revocation_key(kPrefix, "iss", "m")).string, std::to_string(now + 900));
  ASSERT_FALSE(await_write([&](auto done) { b.revoke({"iss", "m", now + 1200}, done); }));
  EXPECT_EQ(get(revocation_key(kPrefix, "iss", "m")).string, std::to_string(now + 1200));
  EXPECT_GT(admin(make_command("PTTL", revocation_key(kPrefix, "iss", "m"))).value.integer,
            1000 * 1000);

  ASSERT_FALSE(await_write([&](auto done) { a.cut_off({"iss", "carol", now}, done); }));
  ASSERT_FALSE(await_write([&](auto done) { b.cut_off({"iss", "carol", now - 100}, done); }));
  EXPECT_EQ(get(cutoff_key(kPrefix, "iss", "carol")).string, std::to_string(now));
  EXPECT_TRUE(eventually([&] { return a.mirror().is_revoked("iss", "", "carol", now - 50, now); }));

  ASSERT_FALSE(await_write([&](auto done) {
    a.ban({ip("198.51.100.1"), now + 600, "long"}, done);
  }));
  ASSERT_FALSE(await_write([&](auto done) {
    b.ban({ip("198.51.100.1"), now + 60, "short"}, done);
  }));
  EXPECT_EQ(get(ban_key(kPrefix, ip("198.51.100.1"))).string, std::to_string(now + 600) + ":long");
  ASSERT_TRUE(eventually([&] {
    const auto ban = a.mirror().ban_of(ip("198.51.100.1"), now);
    return ban && ban->until == now + 600;
  }));
  EXPECT_EQ(b.mirror().ban_of(ip("198.51.100.1"), now)->until, now + 600);

  // Refused before Redis sees them: invalid records; already past retention: nothing to keep.
  EXPECT_EQ(await_write([&](auto done) {
              a.revoke({"iss", "", now + 10}, done);
            }),
            state::StateError::invalid_record);
  EXPECT_FALSE(await_write([&](auto done) { a.revoke({"iss", "old", now - 3600}, done); }));
  EXPECT_TRUE(get(revocation_key(kPrefix, "iss", "old")).is_nil());
}

TEST_F(StateBackendTest, KeysAreUnambiguousAndAFreshInstanceLoadsEverything) {
  auto& a = backend();
  const auto now = unix_now();
  // Issuers and ids with colons, glob characters and other bytes: distinct records stay distinct.
  const std::vector<Revocation> revocations = {{"a:1", "b", now + 600},
                                               {"a", "1:b", now + 700},
                                               {"*", "[x]?", now + 800},
                                               {"", "any-issuer", now + 900},
                                               {std::string("bin\0\xff", 5), "\r\n", now + 1000}};
  EXPECT_NE(revocation_key(kPrefix, "a:1", "b"), revocation_key(kPrefix, "a", "1:b"));
  for (const auto& r : revocations)
    ASSERT_FALSE(await_write([&](auto done) { a.revoke(r, done); }));
  ASSERT_FALSE(await_write([&](auto done) { a.cut_off({"iss:x", "sub:y", now}, done); }));
  for (int i = 0; i < 2500; ++i)  // more than one SCAN batch
    ASSERT_FALSE(await_write([&](auto done) {
      a.revoke({"bulk", "j" + std::to_string(i), now + 600}, done);
    }));
  ASSERT_FALSE(await_write([&](auto done) { a.ban({ip("203.0.113.9"), now + 60, "r:x"}, done); }));
  // A key under another prefix is not ours.
  ASSERT_TRUE(admin(make_command("SET", "other:rev:1:x:y", "99999999999")).ok());

  auto options = backend_options();
  options.scan_count = 1000;
  auto& fresh = backend(options);
  EXPECT_GE(fresh.stats().resyncs, 1u);
  const auto snapshot = fresh.mirror().snapshot(now);
  EXPECT_EQ(snapshot.revocations.size(), revocations.size() + 2500);
  for (const auto& r : revocations)
    EXPECT_TRUE(fresh.mirror().contains(r)) << r.issuer << " " << r.jti;
  EXPECT_FALSE(fresh.mirror().is_revoked("a", "b", "", state::kNoIssuedAt, now));
  EXPECT_TRUE(fresh.mirror().is_revoked("a:1", "b", "", state::kNoIssuedAt, now));
  EXPECT_TRUE(fresh.mirror().is_revoked("iss:x", "", "sub:y", now - 1, now));
  ASSERT_TRUE(fresh.mirror().ban_of(ip("203.0.113.9"), now).has_value());
  EXPECT_EQ(fresh.mirror().ban_of(ip("203.0.113.9"), now)->reason, "r:x");
  EXPECT_EQ(fresh.stats().bad_entries, 0u);
  EXPECT_EQ(fresh.mirror().sizes().revocations, a.mirror().sizes().revocations);
}

TEST_F(StateBackendTest, AFullReloadOfFiftyThousandRevocations) {
  const auto now = unix_now();
  constexpr int kRecords = 50'000;
  for (int batch = 0; batch < kRecords / 1000; ++batch) {
    Command mset{"MSET"};
    for (int i = batch * 1000; i < (batch + 1) * 1000; ++i) {
      mset.push_back(
          revocation_key(kPrefix, "https://idp.example.com/", "jti-" + std::to_string(i)));
      mset.push_back(std::to_string(now + 3600));
    }
    ASSERT_TRUE(admin(std::move(mset)).ok());
  }
  const auto started = std::chrono::steady_clock::now();  // precise, for the printed time
  auto& fresh = backend();
  const auto took = std::chrono::steady_clock::now() - started;
  std::printf(
      "full reload of %d revocations: %lld ms\n", kRecords,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_EQ(fresh.mirror().sizes().revocations, static_cast<std::size_t>(kRecords));
  EXPECT_TRUE(fresh.mirror().is_revoked("https://idp.example.com/", "jti-49999", "",
                                        state::kNoIssuedAt, now));
}

TEST_F(StateBackendTest, ReportsWhetherTheServerPersists) {
  auto& a = backend();
  std::optional<bool> reported;
  ASSERT_TRUE(eventually([&] { return a.aof_enabled().has_value(); }));
  EXPECT_EQ(a.aof_enabled(), false);  // the test server runs with --appendonly no

  auto options = backend_options();
  auto other = std::make_unique<RedisStateBackend>(options, core::system_clock());
  std::atomic<int> calls{0};
  other->on_persistence_checked([&](bool aof) {
    reported = aof;
    ++calls;
  });
  other->start();
  ASSERT_TRUE(eventually([&] { return calls.load() > 0; }));
  other->stop();
  EXPECT_EQ(reported, false);
}

}  // namespace
}  // namespace portcullis::redis

namespace portcullis::redis {
namespace {

TEST(RedisOptionsFromPolicy, TakesEverySettingOfStateRedis) {
  config::RedisSettings settings;
  settings.tls = true;
  settings.host = "redis.internal";
  settings.port = 6380;
  settings.user = "gateway";
  settings.database = 3;
  settings.ca_file = "/etc/portcullis/redis-ca.pem";
  settings.key_prefix = "fleet-a:";
  settings.command_timeout = std::chrono::milliseconds(75);
  const auto options = redis_options(settings, "secret");
  EXPECT_TRUE(options.tls);
  EXPECT_EQ(options.host, "redis.internal");
  EXPECT_EQ(options.port, 6380);
  EXPECT_EQ(options.user, "gateway");
  EXPECT_EQ(options.password, "secret");
  EXPECT_EQ(options.database, 3);
  EXPECT_EQ(options.ca_file, "/etc/portcullis/redis-ca.pem");
  EXPECT_EQ(options.key_prefix, "fleet-a:");
  EXPECT_EQ(options.command_timeout, std::chrono::milliseconds(75));
}

// Writes in flight count against the mirror's cap: of five new revocations sent at once to an
// instance that can hold three, two are refused before Redis has them, so the fleet never holds
// what the instance that acknowledged it could not enforce.
TEST_F(StateBackendTest, TheMirrorsCapCountsWritesInFlight) {
  auto options = backend_options();
  options.mirror.max_revocations = 3;
  auto& a = backend(options);
  const auto now = unix_now();
  std::vector<std::shared_ptr<std::promise<std::error_code>>> outcomes;
  for (int i = 0; i < 5; ++i) {
    auto outcome = std::make_shared<std::promise<std::error_code>>();
    outcomes.push_back(outcome);
    a.revoke({"iss", "burst-" + std::to_string(i), now + 600},
             [outcome](std::error_code error) { outcome->set_value(error); });
  }
  int acknowledged = 0;
  int refused = 0;
  for (auto& outcome : outcomes) {
    auto future = outcome->get_future();
    ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    const auto error = future.get();
    if (!error) ++acknowledged;
    if (error == std::error_code(state::StateError::capacity_exceeded)) ++refused;
  }
  EXPECT_EQ(acknowledged, 3);
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(a.mirror().sizes().revocations, 3u);
  // A fresh instance loads what Redis holds: the three acknowledged, nothing else.
  auto& fresh = backend();
  EXPECT_EQ(fresh.mirror().sizes().revocations, 3u);
  // An update of a held key needs no room, at the cap.
  EXPECT_FALSE(await_write([&](auto done) { a.revoke({"iss", "burst-0", now + 900}, done); }));
}

}  // namespace
}  // namespace portcullis::redis
