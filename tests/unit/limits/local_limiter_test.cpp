#include "portcullis/limits/local_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "portcullis/limits/denied_until.hpp"

namespace portcullis::limits {
namespace {

using namespace std::chrono_literals;

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

struct Fixture : ::testing::Test {
  core::ManualClock clock;
  LocalLimiter limiter{{std::size_t{1} << 20, 8}};
  Decision hit(std::vector<LimitRequest> requests) {
    return limiter.decide(requests, clock.monotonic());
  }
};

using LocalLimiterTest = Fixture;

TEST_F(LocalLimiterTest, BurstThenRefusedThenOneEveryInterval) {
  const GcraLimit limit = GcraLimit::make(10, 1s, 3);
  const LimitKey key = LimitKey::ip(0, ip("192.0.2.7"));
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(hit({{key, limit}}).allowed);
  const Decision denied = hit({{key, limit}});
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.retry_after, 1);
  EXPECT_EQ(denied.limit, 3);
  EXPECT_EQ(denied.remaining, 0);
  clock.advance(99ms);
  EXPECT_FALSE(hit({{key, limit}}).allowed);
  clock.advance(1ms);
  EXPECT_TRUE(hit({{key, limit}}).allowed);
  EXPECT_FALSE(hit({{key, limit}}).allowed);
  // Another client is untouched.
  EXPECT_TRUE(hit({{LimitKey::ip(0, ip("192.0.2.8")), limit}}).allowed);
}

TEST_F(LocalLimiterTest, Ipv6AddressesOfOneSlash64ShareABudget) {
  const GcraLimit limit = GcraLimit::make(1, 1min, 2);
  EXPECT_TRUE(hit({{LimitKey::ip(0, ip("2001:db8:aa:bb::1")), limit}}).allowed);
  EXPECT_TRUE(hit({{LimitKey::ip(0, ip("2001:db8:aa:bb::2")), limit}}).allowed);
  EXPECT_FALSE(hit({{LimitKey::ip(0, ip("2001:db8:aa:bb:1234:5678:9abc:def0")), limit}}).allowed);
  EXPECT_TRUE(hit({{LimitKey::ip(0, ip("2001:db8:aa:bc::1")), limit}}).allowed);
}

TEST_F(LocalLimiterTest, AllLimitsMustPassAndADenialConsumesNothing) {
  const GcraLimit per_ip = GcraLimit::make(100, 1s, 5);
  const GcraLimit per_user = GcraLimit::make(1, 1s, 2);
  const LimitKey client = LimitKey::ip(0, ip("198.51.100.1"));
  const LimitKey alice = *LimitKey::subject(1, "alice");
  const LimitKey bob = *LimitKey::subject(1, "bob");
  EXPECT_TRUE(hit({{client, per_ip}, {alice, per_user}}).allowed);
  EXPECT_TRUE(hit({{client, per_ip}, {alice, per_user}}).allowed);
  const std::size_t held = limiter.stats().size;
  for (int i = 0; i < 10; ++i) {
    const Decision d = hit({{client, per_ip}, {alice, per_user}});
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.deciding, 1u);
    EXPECT_EQ(d.limit, 2);
  }
  // Alice's refusals left the per-IP budget alone: 3 of 5 remain for bob on the same address.
  for (int i = 0; i < 2; ++i)
    EXPECT_TRUE(hit({{client, per_ip}, {bob, per_user}}).allowed);
  const Decision third = hit({{client, per_ip}, {bob, per_user}});
  EXPECT_TRUE(hit({{client, per_ip}}).allowed);
  EXPECT_FALSE(third.allowed);                    // bob's own limit
  EXPECT_FALSE(hit({{client, per_ip}}).allowed);  // 5 used: 2 alice, 2 bob, 1 alone
  // A denied request for a new key inserts nothing.
  const LimitKey carol = *LimitKey::subject(1, "carol");
  EXPECT_FALSE(hit({{client, per_ip}, {carol, per_user}}).allowed);
  EXPECT_EQ(limiter.stats().size, held + 1);  // only bob was added
}

TEST_F(LocalLimiterTest, AllowedHeadlineIsTheTightestLimit) {
  const Decision d = hit({{LimitKey::ip(0, ip("203.0.113.5")), GcraLimit::make(100, 1s, 200)},
                          {*LimitKey::subject(1, "u"), GcraLimit::make(20, 1s, 20)}});
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.deciding, 1u);
  EXPECT_EQ(d.limit, 20);
  EXPECT_EQ(d.remaining, 19);
  EXPECT_EQ(d.reset, 1);
}

TEST_F(LocalLimiterTest, TooManyLimitsAreRefused) {
  std::vector<LimitRequest> many(kMaxBatchKeys + 1,
                                 {LimitKey::ip(0, ip("192.0.2.1")), GcraLimit::make(1, 1s, 1)});
  for (std::size_t i = 0; i < many.size(); ++i)
    many[i].key.limit = static_cast<std::uint32_t>(i);
  EXPECT_FALSE(hit(many).allowed);
  EXPECT_TRUE(hit({}).allowed);
}

TEST(LocalLimiterThreads, SharedBudgetIsExactUnderContention) {
  core::ManualClock clock;  // frozen: exactly the burst may pass, whichever thread asks
  LocalLimiter limiter({std::size_t{1} << 20, 16});
  const GcraLimit limit = GcraLimit::make(1, 1h, 1000);
  const GcraLimit wide = GcraLimit::make(1, 1h, 1'000'000);
  const LimitKey shared = LimitKey::ip(0, ip("192.0.2.1"));
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        // Each request also carries a per-thread limit in another shard: lock order is tested.
        const LimitRequest pair[2] = {{shared, limit},
                                      {*LimitKey::subject(1, std::to_string(t)), wide}};
        allowed += limiter.decide(pair, clock.monotonic()).allowed;
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(allowed.load(), 1000);
}

TEST(LocalLimiterThreads, DistinctKeysWithEvictionFromManyThreads) {
  core::ManualClock clock;
  LocalLimiter limiter({std::size_t{256} << 10, 8});
  const GcraLimit limit = GcraLimit::make(1, 1s, 2);
  std::vector<std::thread> threads;
  std::atomic<int> allowed{0};
  for (std::uint32_t t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < 50'000; ++i) {
        const LimitRequest request{
            LimitKey::ip(0, core::IpAddress::from_v4((t << 24) | (i % 20'000))), limit};
        allowed += limiter.decide(std::span(&request, 1), clock.monotonic()).allowed;
        if (t == 0 && i % 1000 == 0) clock.advance(10ms);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  const KeyTableStats stats = limiter.stats();
  EXPECT_LE(stats.size, stats.capacity);
  EXPECT_GT(stats.evictions_idle + stats.evictions_active, 0u);
  EXPECT_GT(allowed.load(), 0);
}

TEST(DeniedUntilCache, RemembersTheLatestDenialUntilItPasses) {
  DeniedUntilCache cache({std::size_t{1} << 20, 4});
  const LimitKey a = LimitKey::ip(0, ip("192.0.2.1"));
  const LimitKey b = *LimitKey::subject(1, "bob");
  EXPECT_FALSE(cache.check(a, 100));
  cache.deny(a, 5'000, 100);
  cache.deny(a, 3'000, 200);  // an earlier end does not shorten it
  EXPECT_EQ(cache.check(a, 4'999)->until, 5'000);
  EXPECT_FALSE(cache.check(a, 5'000));
  cache.deny(b, 9'000, 100);
  const LimitKey both[] = {a, b};
  ASSERT_TRUE(cache.check(both, 1'000));
  EXPECT_EQ(cache.check(both, 1'000)->until, 9'000);
  EXPECT_EQ(cache.check(both, 1'000)->key_index, 1u);  // b says so
  cache.deny(b, 50, 100);                              // already over: not stored
  cache.forget(b);
  EXPECT_EQ(cache.check(both, 1'000)->until, 5'000);
  EXPECT_EQ(cache.check(both, 1'000)->key_index, 0u);
}

}  // namespace
}  // namespace portcullis::limits
