#include "portcullis/limits/login_failures.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <random>

namespace portcullis::limits {
namespace {

using namespace std::chrono_literals;

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

struct LoginFailuresTest : ::testing::Test {
  core::ManualClock clock;
  LoginFailureTracker tracker{{std::size_t{1} << 20, 4}};
  LoginPolicy policy{15min, 5};
  FailureResult fail(const char* address) {
    return tracker.record_failure(0, ip(address), policy, clock.monotonic());
  }
};

TEST_F(LoginFailuresTest, BansAtMaxFailuresAndStartsAgain) {
  for (std::uint32_t i = 1; i < 5; ++i) {
    const FailureResult r = fail("192.0.2.1");
    EXPECT_EQ(r.failures, i);
    EXPECT_FALSE(r.ban);
    clock.advance(1min);
  }
  const FailureResult fifth = fail("192.0.2.1");
  EXPECT_EQ(fifth.failures, 5u);
  EXPECT_TRUE(fifth.ban);
  EXPECT_EQ(tracker.failures(0, ip("192.0.2.1"), policy, to_micros(clock.monotonic())), 0u);
  EXPECT_FALSE(fail("192.0.2.1").ban);
  // Other clients and other protections count on their own.
  EXPECT_EQ(fail("192.0.2.2").failures, 1u);
  EXPECT_EQ(tracker.record_failure(1, ip("192.0.2.1"), policy, clock.monotonic()).failures, 1u);
}

TEST_F(LoginFailuresTest, NoFreshWindowAtABoundary) {
  // Four failures just before a fixed 15-minute boundary and one just after: a fixed window
  // would see 4 and then 1; the sliding count sees 5.
  clock.advance(15min - 1s);
  for (int i = 0; i < 4; ++i)
    EXPECT_FALSE(fail("198.51.100.9").ban);
  clock.advance(2s);
  EXPECT_TRUE(fail("198.51.100.9").ban);
}

TEST_F(LoginFailuresTest, OldFailuresAreForgotten) {
  for (int i = 0; i < 4; ++i)
    fail("203.0.113.1");
  // Remembered for the whole window ...
  clock.advance(15min - 1ms);
  EXPECT_EQ(tracker.failures(0, ip("203.0.113.1"), policy, to_micros(clock.monotonic())), 4u);
  // ... and gone once the window and one sub-window (15 min / 8) have passed.
  clock.advance(112'500ms + 2ms);  // 15 min / 8
  EXPECT_EQ(fail("203.0.113.1").failures, 1u);
}

TEST_F(LoginFailuresTest, Ipv6CountsBySlash64) {
  for (int i = 0; i < 4; ++i)
    fail("2001:db8:5:6::1");
  EXPECT_TRUE(fail("2001:db8:5:6:aaaa::99").ban);
}

TEST_F(LoginFailuresTest, NeverMoreThanMaxWithinAnyWindowAgainstAnExactLog) {
  // Random failure times from several clients; after each failure the tracker's count must lie
  // between the exact count within `window` and the exact count within `window + window/8`
  // (rounded up), and a ban must come no later than the exact count reaching the maximum.
  policy = LoginPolicy{10s, 6};
  const std::int64_t window = 10'000'000;
  const std::int64_t slack = (window + 7) / 8;
  std::mt19937 random(11);
  std::deque<std::int64_t> log;  // failures since the last ban, one client
  for (int i = 0; i < 20'000; ++i) {
    clock.advance(std::chrono::microseconds(random() % 4'000'000));
    const std::int64_t now = to_micros(clock.monotonic());
    const FailureResult r = fail("192.0.2.200");
    log.push_back(now);
    while (!log.empty() && log.front() <= now - window - slack)
      log.pop_front();
    std::uint32_t exact = 0;
    for (const auto t : log)
      exact += t > now - window;
    ASSERT_GE(r.failures, exact) << i;
    ASSERT_LE(r.failures, log.size()) << i;
    ASSERT_LT(exact, 7u);
    if (exact >= 6) {
      ASSERT_TRUE(r.ban) << i;
    }
    if (r.ban) log.clear();
  }
}

TEST(LoginFailureTracker, MemoryIsBounded) {
  LoginFailureTracker tracker({std::size_t{1} << 20, 8});
  const LoginPolicy policy{15min, 5};
  for (std::uint32_t i = 0; i < 200'000; ++i) {
    tracker.record_failure(0, core::IpAddress::from_v4(i), policy, 3'600'000'000 + i);
  }
  const KeyTableStats stats = tracker.stats();
  EXPECT_LE(stats.memory_bytes, std::size_t{1} << 20);
  EXPECT_LE(stats.size, stats.capacity);
  EXPECT_EQ(stats.evictions_active, 200'000u - stats.size);
}

}  // namespace
}  // namespace portcullis::limits
