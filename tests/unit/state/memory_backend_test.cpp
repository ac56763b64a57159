#include "portcullis/state/memory_backend.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "unit/state/state_test_support.hpp"

namespace portcullis::state {
namespace {

using namespace std::chrono_literals;
using testing::Ack;
using testing::TempDir;

const std::string kIss = "https://idp.example";

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

std::int64_t unix_now(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

TEST(MemoryBackend, WithoutAPathWritesApplyAtOnce) {
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackend backend({}, clock);
  EXPECT_FALSE(backend.durable());
  EXPECT_TRUE(backend.available());
  backend.start();
  std::optional<std::error_code> result;
  backend.revoke(Revocation{kIss, "j", now + 60}, [&](std::error_code e) { result = e; });
  ASSERT_TRUE(result);  // completed before revoke() returned
  EXPECT_FALSE(*result);
  EXPECT_TRUE(backend.mirror().is_revoked(kIss, "j", "", kNoIssuedAt, now));

  backend.ban(Ban{ip("192.0.2.4"), now + 60, "manual"}, [&](std::error_code e) { result = e; });
  EXPECT_FALSE(*result);
  EXPECT_TRUE(backend.mirror().ban_of(ip("192.0.2.4"), now));
  backend.unban(ip("192.0.2.4"), [&](std::error_code e) { result = e; });
  EXPECT_FALSE(*result);
  EXPECT_FALSE(backend.mirror().ban_of(ip("192.0.2.4"), now));

  backend.cut_off(SubjectCutoff{kIss, "", now}, [&](std::error_code e) { result = e; });
  EXPECT_EQ(*result, std::error_code(StateError::invalid_record));
  backend.stop();
}

TEST(MemoryBackend, AWriteReachesTheMirrorOnlyOnceItIsOnDisk) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  MemoryBackend backend(options, clock);
  EXPECT_TRUE(backend.durable());
  Ack ack;
  backend.revoke(Revocation{kIss, "j", now + 60}, ack.callback());
  // Not started: the store has not committed, so nothing is enforced yet.
  EXPECT_FALSE(ack.ready());
  EXPECT_FALSE(backend.mirror().is_revoked(kIss, "j", "", kNoIssuedAt, now));
  backend.start();
  EXPECT_EQ(ack.wait(), std::error_code());
  EXPECT_TRUE(backend.mirror().is_revoked(kIss, "j", "", kNoIssuedAt, now));
  EXPECT_EQ(backend.store_stats().writes, 1u);
}

TEST(MemoryBackend, StateSurvivesARestart) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  {
    MemoryBackend backend(options, clock);
    backend.start();
    Ack revoked, cut, banned, banned_too, unbanned;
    backend.revoke(Revocation{kIss, "j", now + 600}, revoked.callback());
    backend.cut_off(SubjectCutoff{"", "alice", now}, cut.callback());
    backend.ban(Ban{ip("2001:db8:aa:bb::1"), now + 600, "manual"}, banned.callback());
    backend.ban(Ban{ip("192.0.2.1"), now + 600, "manual"}, banned_too.callback());
    backend.unban(ip("192.0.2.1"), unbanned.callback());
    for (auto* ack : {&revoked, &cut, &banned, &banned_too, &unbanned})
      EXPECT_EQ(ack->wait(), std::error_code());
    backend.stop();
  }
  clock.advance(10s);
  MemoryBackend restarted(options, clock);
  const auto later = unix_now(clock);
  EXPECT_TRUE(restarted.mirror().is_revoked(kIss, "j", "", kNoIssuedAt, later));
  EXPECT_TRUE(restarted.mirror().is_revoked(kIss, "", "alice", now - 1, later));
  EXPECT_TRUE(restarted.mirror().ban_of(ip("2001:db8:aa:bb:ffff::9"), later));
  EXPECT_FALSE(restarted.mirror().ban_of(ip("192.0.2.1"), later));
  const auto bans = restarted.mirror().active_bans(later);
  ASSERT_EQ(bans.size(), 1u);
  EXPECT_EQ(bans[0].ip.to_string(), "2001:db8:aa:bb::");
}

TEST(MemoryBackend, TheCapCountsWritesInFlight) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  options.mirror.max_revocations = 2;
  MemoryBackend backend(options, clock);
  Ack a, b, c;
  backend.revoke(Revocation{kIss, "a", now + 60}, a.callback());
  backend.revoke(Revocation{kIss, "b", now + 60}, b.callback());
  backend.revoke(Revocation{kIss, "c", now + 60}, c.callback());
  EXPECT_EQ(c.wait(), std::error_code(StateError::capacity_exceeded));  // refused before disk
  backend.start();
  EXPECT_EQ(a.wait(), std::error_code());
  EXPECT_EQ(b.wait(), std::error_code());
  EXPECT_EQ(backend.mirror().sizes().revocations, 2u);
  // A held key can still be updated at the cap.
  Ack again;
  backend.revoke(Revocation{kIss, "a", now + 120}, again.callback());
  EXPECT_EQ(again.wait(), std::error_code());
  backend.stop();
  EXPECT_EQ(backend.store_stats().writes, 3u);  // "c" never reached the file
}

TEST(MemoryBackend, ExpiredRecordsAreAcceptedAndNotKept) {
  core::ManualClock clock;
  const auto now = unix_now(clock);
  TempDir dir;
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  MemoryBackend backend(options, clock);
  backend.start();
  Ack ack;
  backend.revoke(Revocation{kIss, "old", now - 3600}, ack.callback());
  EXPECT_EQ(ack.wait(), std::error_code());
  EXPECT_EQ(backend.mirror().sizes().revocations, 0u);
  EXPECT_EQ(backend.store_stats().writes, 0u);
}

TEST(MemoryBackend, MaintainDropsExpiredRecords) {
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.mirror.retention.after_exp = 0s;
  MemoryBackend backend(options, clock);
  backend.revoke(Revocation{kIss, "j", now + 5}, [](std::error_code) {});
  backend.ban(Ban{ip("192.0.2.1"), now + 5, ""}, [](std::error_code) {});
  EXPECT_EQ(backend.mirror().sizes().revocations, 1u);
  clock.advance(5s);
  backend.maintain();
  EXPECT_EQ(backend.mirror().sizes().revocations, 0u);
  EXPECT_EQ(backend.mirror().sizes().bans, 0u);
}

TEST(MemoryBackend, WritesAfterStopAreRefused) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  MemoryBackend backend(options, clock);
  backend.start();
  backend.stop();
  Ack ack;
  backend.revoke(Revocation{kIss, "j", now + 60}, ack.callback());
  EXPECT_EQ(ack.wait(), std::error_code(StateError::stopped));
  EXPECT_FALSE(backend.mirror().is_revoked(kIss, "j", "", kNoIssuedAt, now));
}

TEST(MemoryBackend, ACorruptFileFailsConstruction) {
  TempDir dir;
  core::ManualClock clock;
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  {
    std::FILE* file = std::fopen(options.path.c_str(), "wb");
    ASSERT_NE(file, nullptr);
    std::fputs(std::string(8192, 'x').c_str(), file);
    std::fclose(file);
  }
  EXPECT_THROW(MemoryBackend(options, clock), DurableStoreError);
}

// Writers on several threads through the store while readers check the mirror: every
// acknowledged revocation is visible, and the mirror and the file agree at the end.
TEST(MemoryBackend, ConcurrentWritersAndReaders) {
  TempDir dir;
  core::ManualClock clock;
  const auto now = unix_now(clock);
  MemoryBackendOptions options;
  options.path = dir.file("state.db");
  MemoryBackend backend(options, clock);
  backend.start();
  constexpr int kThreads = 3;
  constexpr int kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string jti = std::to_string(t);
        jti += '-';
        jti += std::to_string(i);
        Ack ack;
        backend.revoke(Revocation{kIss, jti, now + 600}, ack.callback());
        if (ack.wait() != std::error_code()) failures.fetch_add(1);
        if (!backend.mirror().is_revoked(kIss, jti, "", kNoIssuedAt, now)) failures.fetch_add(1);
        if (backend.mirror().is_revoked(kIss, "never", "", kNoIssuedAt, now)) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(backend.mirror().sizes().revocations, std::size_t{kThreads * kPerThread});
  backend.stop();
  EXPECT_GE(backend.store_stats().transactions, 1u);
  MemoryBackend reopened(options, clock);
  EXPECT_EQ(reopened.mirror().sizes().revocations, std::size_t{kThreads * kPerThread});
}

}  // namespace
}  // namespace portcullis::state
