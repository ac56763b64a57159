#include "portcullis/state/mirror.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace portcullis::state {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kIss = "https://idp.example";

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

MirrorOptions small_options() {
  MirrorOptions options;
  options.retention.after_exp = 30s;
  options.retention.max_token_lifetime = 3600s;
  options.shards = 4;
  return options;
}

TEST(Mirror, RevocationDeniesItsTokenUntilExpPlusSkew) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "j1", kNow + 100}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "j1", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "j1", "", kNoIssuedAt, kNow + 129));
  EXPECT_FALSE(mirror.is_revoked(kIss, "j1", "", kNoIssuedAt, kNow + 130));
  EXPECT_FALSE(mirror.is_revoked(kIss, "j2", "", kNoIssuedAt, kNow));
  EXPECT_EQ(mirror.sizes().revocations, 1u);
  EXPECT_EQ(mirror.purge_expired(kNow + 129), 0u);
  EXPECT_EQ(mirror.purge_expired(kNow + 130), 1u);
  EXPECT_EQ(mirror.sizes().revocations, 0u);
}

TEST(Mirror, IssuerSpecificAndAnyIssuerRevocations) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "scoped", kNow + 100}, kNow));
  ASSERT_FALSE(mirror.apply(Revocation{"", "global", kNow + 100}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "scoped", "", kNoIssuedAt, kNow));
  EXPECT_FALSE(mirror.is_revoked("https://other.example", "scoped", "", kNoIssuedAt, kNow));
  EXPECT_FALSE(mirror.is_revoked("", "scoped", "", kNoIssuedAt, kNow));  // token without iss
  EXPECT_TRUE(mirror.is_revoked(kIss, "global", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked("https://other.example", "global", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked("", "global", "", kNoIssuedAt, kNow));
  // Two issuers under one jti are two entries, removed one at a time.
  ASSERT_FALSE(mirror.apply(Revocation{"https://other.example", "scoped", kNow + 100}, kNow));
  EXPECT_EQ(mirror.sizes().revocations, 3u);
  EXPECT_TRUE(mirror.remove_revocation(kIss, "scoped"));
  EXPECT_FALSE(mirror.is_revoked(kIss, "scoped", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked("https://other.example", "scoped", "", kNoIssuedAt, kNow));
  EXPECT_FALSE(mirror.remove_revocation(kIss, "scoped"));
  EXPECT_EQ(mirror.sizes().revocations, 2u);
}

TEST(Mirror, RevocationMergeKeepsTheLaterExp) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "j", kNow + 500}, kNow));
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "j", kNow + 100}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "j", "", kNoIssuedAt, kNow + 300));
  EXPECT_EQ(mirror.sizes().revocations, 1u);
}

TEST(Mirror, ExpiredOrInvalidRecordsAreNotStored) {
  Mirror mirror(small_options());
  EXPECT_FALSE(mirror.apply(Revocation{kIss, "old", kNow - 31}, kNow));
  EXPECT_EQ(mirror.sizes().revocations, 0u);
  EXPECT_EQ(mirror.apply(Revocation{kIss, "", kNow + 10}, kNow), StateError::invalid_record);
  EXPECT_EQ(mirror.apply(Revocation{kIss, std::string(kMaxJtiBytes + 1, 'x'), kNow + 10}, kNow),
            StateError::invalid_record);
  EXPECT_EQ(mirror.apply(Revocation{kIss, "j", kMaxUnixSeconds + 1}, kNow),
            StateError::invalid_record);
  EXPECT_EQ(mirror.apply(SubjectCutoff{kIss, "", kNow}, kNow), StateError::invalid_record);
  EXPECT_EQ(mirror.apply(Ban{ip("192.0.2.1"), 0, ""}, kNow), StateError::invalid_record);
  EXPECT_EQ(
      mirror.apply(Ban{ip("192.0.2.1"), kNow + 5, std::string(kMaxReasonBytes + 1, 'r')}, kNow),
      StateError::invalid_record);
  EXPECT_EQ(mirror.sizes().bans, 0u);
}

TEST(Mirror, SubjectCutoffDeniesTokensIssuedBefore) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "alice", kNow}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow - 1, kNow));
  EXPECT_FALSE(mirror.is_revoked(kIss, "", "alice", kNow, kNow));  // issued at the cut-off
  EXPECT_FALSE(mirror.is_revoked(kIss, "", "alice", kNow + 10, kNow + 10));
  EXPECT_FALSE(mirror.is_revoked(kIss, "", "bob", kNow - 1, kNow));
  EXPECT_FALSE(mirror.is_revoked("https://other.example", "", "alice", kNow - 1, kNow));
  // A token without iat cannot show it came after the cut-off.
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNoIssuedAt, kNow));
  // A token with a jti is still checked against its subject's cut-off.
  EXPECT_TRUE(mirror.is_revoked(kIss, "some-jti", "alice", kNow - 1, kNow));
}

TEST(Mirror, AnyIssuerCutoffAppliesToEveryIssuer) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(SubjectCutoff{"", "alice", kNow}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow - 1, kNow));
  EXPECT_TRUE(mirror.is_revoked("https://other.example", "", "alice", kNow - 1, kNow));
  EXPECT_TRUE(mirror.remove_cutoff("", "alice"));
  EXPECT_FALSE(mirror.is_revoked(kIss, "", "alice", kNow - 1, kNow));
}

TEST(Mirror, CutoffIsKeptForMaxTokenLifetimeOnly) {
  Mirror mirror(small_options());  // max_token_lifetime 1h, after_exp 30s
  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "alice", kNow}, kNow));
  const std::int64_t end = kNow + 3600 + 30;
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow - 1, end - 1));
  EXPECT_FALSE(mirror.is_revoked(kIss, "", "alice", kNow - 1, end));
  EXPECT_EQ(mirror.purge_expired(end - 1), 0u);
  EXPECT_EQ(mirror.sizes().cutoffs, 1u);
  EXPECT_EQ(mirror.purge_expired(end), 1u);
  EXPECT_EQ(mirror.sizes().cutoffs, 0u);
  // A cut-off that is already past its retention is not stored.
  EXPECT_FALSE(mirror.apply(SubjectCutoff{kIss, "bob", kNow - 3631}, kNow));
  EXPECT_EQ(mirror.sizes().cutoffs, 0u);
}

TEST(Mirror, CutoffMergeKeepsTheLaterTime) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "alice", kNow}, kNow));
  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "alice", kNow - 100}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow - 50, kNow));
  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "alice", kNow + 100}, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow + 50, kNow + 60));
  EXPECT_EQ(mirror.sizes().cutoffs, 1u);
}

TEST(Mirror, BanExpires) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.7"), kNow + 60, "login_failures"}, kNow));
  const auto ban = mirror.ban_of(ip("192.0.2.7"), kNow);
  ASSERT_TRUE(ban);
  EXPECT_EQ(ban->until, kNow + 60);
  EXPECT_EQ(ban->reason, "login_failures");
  EXPECT_FALSE(mirror.ban_of(ip("192.0.2.8"), kNow));
  EXPECT_TRUE(mirror.ban_of(ip("192.0.2.7"), kNow + 59));
  EXPECT_FALSE(mirror.ban_of(ip("192.0.2.7"), kNow + 60));
  EXPECT_EQ(mirror.active_bans(kNow).size(), 1u);
  EXPECT_TRUE(mirror.active_bans(kNow + 60).empty());
  EXPECT_EQ(mirror.purge_expired(kNow + 60), 1u);
  EXPECT_EQ(mirror.sizes().bans, 0u);
}

TEST(Mirror, Ipv6BansCoverTheWhole64) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Ban{ip("2001:db8:1:2:aaaa::1"), kNow + 60, "manual"}, kNow));
  const auto ban = mirror.ban_of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), kNow);
  ASSERT_TRUE(ban);
  EXPECT_EQ(ban->ip.to_string(), "2001:db8:1:2::");
  EXPECT_FALSE(mirror.ban_of(ip("2001:db8:1:3::1"), kNow));
  EXPECT_TRUE(mirror.remove_ban(ip("2001:db8:1:2::99")));
  EXPECT_FALSE(mirror.ban_of(ip("2001:db8:1:2:aaaa::1"), kNow));
}

TEST(Mirror, BanMergeNeverShortens) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.7"), kNow + 600, "manual"}, kNow));
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.7"), kNow + 60, "login_failures"}, kNow));
  EXPECT_EQ(mirror.ban_of(ip("192.0.2.7"), kNow)->reason, "manual");
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.7"), kNow + 900, "login_failures"}, kNow));
  EXPECT_EQ(mirror.ban_of(ip("192.0.2.7"), kNow)->until, kNow + 900);
  EXPECT_EQ(mirror.ban_of(ip("192.0.2.7"), kNow)->reason, "login_failures");
  EXPECT_EQ(mirror.sizes().bans, 1u);
}

TEST(Mirror, CapsRefuseNewKeysAndNeverEvict) {
  MirrorOptions options = small_options();
  options.max_revocations = 3;
  options.max_cutoffs = 1;
  options.max_bans = 2;
  Mirror mirror(options);
  for (int i = 0; i < 3; ++i)
    ASSERT_FALSE(mirror.apply(Revocation{kIss, "j" + std::to_string(i), kNow + 100}, kNow));
  EXPECT_EQ(mirror.apply(Revocation{kIss, "j3", kNow + 100}, kNow), StateError::capacity_exceeded);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(mirror.is_revoked(kIss, "j" + std::to_string(i), "", kNoIssuedAt, kNow));
  EXPECT_FALSE(mirror.is_revoked(kIss, "j3", "", kNoIssuedAt, kNow));
  // Updating a held key needs no room.
  EXPECT_FALSE(mirror.apply(Revocation{kIss, "j0", kNow + 200}, kNow));
  EXPECT_EQ(mirror.sizes().revocations, 3u);

  ASSERT_FALSE(mirror.apply(SubjectCutoff{kIss, "a", kNow}, kNow));
  EXPECT_EQ(mirror.apply(SubjectCutoff{kIss, "b", kNow}, kNow), StateError::capacity_exceeded);
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.1"), kNow + 10, ""}, kNow));
  ASSERT_FALSE(mirror.apply(Ban{ip("192.0.2.2"), kNow + 100, ""}, kNow));
  EXPECT_EQ(mirror.apply(Ban{ip("192.0.2.3"), kNow + 100, ""}, kNow),
            StateError::capacity_exceeded);
  // Once a record has expired, a full table purges it to make room.
  EXPECT_FALSE(mirror.apply(Ban{ip("192.0.2.3"), kNow + 100, ""}, kNow + 10));
  EXPECT_TRUE(mirror.ban_of(ip("192.0.2.3"), kNow + 10));
  EXPECT_TRUE(mirror.ban_of(ip("192.0.2.2"), kNow + 10));
  EXPECT_EQ(mirror.sizes().bans, 2u);
}

TEST(Mirror, ReplaceAllSwapsContentsAndSkipsExpired) {
  Mirror mirror(small_options());
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "before", kNow + 100}, kNow));
  MirrorContents contents;
  contents.revocations = {{kIss, "after", kNow + 100}, {kIss, "stale", kNow - 1000}};
  contents.cutoffs = {{"", "alice", kNow}};
  contents.bans = {{ip("2001:db8::5"), kNow + 100, "manual"}};
  ASSERT_FALSE(mirror.replace_all(contents, kNow));
  EXPECT_FALSE(mirror.is_revoked(kIss, "before", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "after", "", kNoIssuedAt, kNow));
  EXPECT_TRUE(mirror.is_revoked(kIss, "", "alice", kNow - 1, kNow));
  EXPECT_TRUE(mirror.ban_of(ip("2001:db8::77"), kNow));
  const auto sizes = mirror.sizes();
  EXPECT_EQ(sizes.revocations, 1u);
  EXPECT_EQ(sizes.cutoffs, 1u);
  EXPECT_EQ(sizes.bans, 1u);
  const auto snapshot = mirror.snapshot(kNow);
  ASSERT_EQ(snapshot.revocations.size(), 1u);
  EXPECT_EQ(snapshot.revocations[0], (Revocation{kIss, "after", kNow + 100}));
  ASSERT_EQ(snapshot.cutoffs.size(), 1u);
  EXPECT_EQ(snapshot.cutoffs[0], (SubjectCutoff{"", "alice", kNow}));
}

TEST(Mirror, ReplaceAllOverTheCapChangesNothing) {
  MirrorOptions options = small_options();
  options.max_revocations = 2;
  Mirror mirror(options);
  ASSERT_FALSE(mirror.apply(Revocation{kIss, "kept", kNow + 100}, kNow));
  MirrorContents contents;
  for (int i = 0; i < 3; ++i)
    contents.revocations.push_back({kIss, std::to_string(i), kNow + 100});
  EXPECT_EQ(mirror.replace_all(contents, kNow), StateError::capacity_exceeded);
  contents.revocations.resize(1);
  contents.revocations.push_back({kIss, "", kNow + 100});
  EXPECT_EQ(mirror.replace_all(contents, kNow), StateError::invalid_record);
  EXPECT_TRUE(mirror.is_revoked(kIss, "kept", "", kNoIssuedAt, kNow));
  EXPECT_EQ(mirror.sizes().revocations, 1u);
}

TEST(Mirror, RefusesRetentionSettingsOutOfRange) {
  MirrorOptions options;
  options.retention.max_token_lifetime = std::chrono::hours(24 * 400);
  EXPECT_THROW(Mirror{options}, std::invalid_argument);
}

// Readers on several threads while a writer adds and removes: a revocation the writer has
// published is always seen, a jti never revoked is never reported, and the counts add up.
TEST(Mirror, ConcurrentReadersAndAWriterStayConsistent) {
  Mirror mirror(small_options());
  constexpr int kWrites = 20000;
  std::atomic<int> published{-1};
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::uint64_t checked = 0;
      while (!done.load() || checked < 100) {
        const int upto = published.load(std::memory_order_acquire);
        if (upto >= 0) {
          // Even-numbered revocations stay; odd ones are removed again by the writer.
          const auto any =
              static_cast<int>((checked * 7919) % static_cast<std::uint64_t>(upto + 1));
          const int pick = any - (any % 2);
          if (!mirror.is_revoked(kIss, "keep" + std::to_string(pick), "", kNoIssuedAt, kNow))
            failures.fetch_add(1);
        }
        if (mirror.is_revoked(kIss, "never" + std::to_string(r), "", kNoIssuedAt, kNow))
          failures.fetch_add(1);
        ++checked;
      }
    });
  }
  for (int i = 0; i < kWrites; ++i) {
    // EXPECT, not ASSERT: returning early would leave the readers running.
    EXPECT_FALSE(mirror.apply(Revocation{kIss, "keep" + std::to_string(i), kNow + 100}, kNow));
    if (i % 2 == 1) {
      EXPECT_TRUE(mirror.remove_revocation(kIss, "keep" + std::to_string(i)));
    }
    published.store(i, std::memory_order_release);
  }
  done.store(true);
  for (auto& reader : readers)
    reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mirror.sizes().revocations, static_cast<std::size_t>(kWrites / 2));
  EXPECT_EQ(mirror.snapshot(kNow).revocations.size(), static_cast<std::size_t>(kWrites / 2));
}

// A full resync while readers check: a key present before and after is never seen missing, and
// one present in neither is never seen revoked.
TEST(Mirror, ReplaceAllUnderConcurrentReads) {
  Mirror mirror(small_options());
  MirrorContents even;
  MirrorContents odd;
  for (int i = 0; i < 200; ++i) {
    even.revocations.push_back({kIss, "both" + std::to_string(i), kNow + 100});
    odd.revocations.push_back({kIss, "both" + std::to_string(i), kNow + 100});
  }
  even.revocations.push_back({kIss, "even-only", kNow + 100});
  odd.revocations.push_back({kIss, "odd-only", kNow + 100});
  ASSERT_FALSE(mirror.replace_all(even, kNow));
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      std::uint64_t checked = 0;
      while (!done.load() || checked < 100) {
        const auto key = "both" + std::to_string(checked % 200);
        if (!mirror.is_revoked(kIss, key, "", kNoIssuedAt, kNow)) failures.fetch_add(1);
        if (mirror.is_revoked(kIss, "neither", "", kNoIssuedAt, kNow)) failures.fetch_add(1);
        ++checked;
      }
    });
  }
  for (int round = 0; round < 200; ++round)
    EXPECT_FALSE(mirror.replace_all(round % 2 ? even : odd, kNow));
  done.store(true);
  for (auto& reader : readers)
    reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mirror.sizes().revocations, 201u);
  EXPECT_TRUE(mirror.is_revoked(kIss, "even-only", "", kNoIssuedAt, kNow));
  EXPECT_FALSE(mirror.is_revoked(kIss, "odd-only", "", kNoIssuedAt, kNow));
}

}  // namespace
}  // namespace portcullis::state
