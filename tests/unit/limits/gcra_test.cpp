#include "portcullis/limits/gcra.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace portcullis::limits {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kStart = 3'600'000'000;  // an arbitrary monotonic time, in microseconds
constexpr std::int64_t kSecond = 1'000'000;

// A key's stored TAT and the decisions made on it, as a store would keep it.
struct Key {
  GcraLimit limit;
  std::int64_t tat = 0;
  GcraResult hit(std::int64_t now) {
    const GcraResult result = gcra_decide(limit, now, tat);
    tat = result.new_tat;
    return result;
  }
};

TEST(Gcra, MakeRoundsTheEmissionIntervalUp) {
  EXPECT_EQ(GcraLimit::make(100, 1s, 200), (GcraLimit{10'000, 200}));
  EXPECT_EQ(GcraLimit::make(10, 1min, 10), (GcraLimit{6 * kSecond, 10}));
  EXPECT_EQ(GcraLimit::make(3, 1s, 1).emission_us, 333'334);  // never faster than 3 per second
  EXPECT_EQ(GcraLimit::make(0, 0s, 0), (GcraLimit{1, 1}));
  const GcraLimit huge = GcraLimit::make(1, 24h * 365 * 200, 1'000'000);
  EXPECT_LE(huge.window_us(), kMaxWindowMicros);
  EXPECT_GE(huge.burst, 1);
}

TEST(Gcra, BurstAtOnceThenOneEveryEmissionInterval) {
  Key key{GcraLimit::make(10, 1s, 5)};  // T = 100 ms
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(key.hit(kStart).allowed) << i;
  EXPECT_FALSE(key.hit(kStart).allowed);
  EXPECT_FALSE(key.hit(kStart + 99'999).allowed);
  EXPECT_TRUE(key.hit(kStart + 100'000).allowed);
  EXPECT_FALSE(key.hit(kStart + 100'000).allowed);
  // From here exactly one request per 100 ms, never two.
  for (int step = 2; step < 50; ++step) {
    const std::int64_t at = kStart + step * 100'000;
    EXPECT_FALSE(key.hit(at - 1).allowed) << step;
    EXPECT_TRUE(key.hit(at).allowed) << step;
    EXPECT_FALSE(key.hit(at).allowed) << step;
  }
}

TEST(Gcra, RejectedRequestsConsumeNothing) {
  Key key{GcraLimit::make(1, 1s, 2)};
  EXPECT_TRUE(key.hit(kStart).allowed);
  EXPECT_TRUE(key.hit(kStart).allowed);
  const std::int64_t tat = key.tat;
  for (int i = 0; i < 1000; ++i) {
    const GcraResult denied = key.hit(kStart + i * 100);
    EXPECT_FALSE(denied.allowed);
    EXPECT_EQ(denied.new_tat, tat);
  }
  EXPECT_EQ(key.tat, tat);
  // One emission interval after the burst: exactly one more, however many were refused.
  EXPECT_TRUE(key.hit(kStart + kSecond).allowed);
  EXPECT_FALSE(key.hit(kStart + kSecond).allowed);
}

TEST(Gcra, HeaderFigures) {
  Key key{GcraLimit::make(1, 1s, 3)};
  GcraResult r = key.hit(kStart);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.limit, 3);
  EXPECT_EQ(r.remaining, 2);
  EXPECT_EQ(r.reset, 1);
  EXPECT_EQ(r.retry_after, 0);
  r = key.hit(kStart);
  EXPECT_EQ(r.remaining, 1);
  EXPECT_EQ(r.reset, 2);
  r = key.hit(kStart);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.remaining, 0);
  EXPECT_EQ(r.reset, 3);
  r = key.hit(kStart);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.remaining, 0);
  EXPECT_EQ(r.reset, 3);
  EXPECT_EQ(r.retry_after, 1);
  // Half a second later: 0.5 s to wait is still a whole second in Retry-After; reset 2.5 -> 3.
  r = key.hit(kStart + kSecond / 2);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.retry_after, 1);
  EXPECT_EQ(r.reset, 3);
  // 1.2 s later one request is back (remaining 0 after taking it), the full burst at 3 s.
  r = key.hit(kStart + 1'200'000);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.remaining, 0);
  EXPECT_EQ(r.reset, 3);  // TAT is now start + 4 s: 2.8 s away
}

TEST(Gcra, RetryAfterIsTheWaitInWholeSeconds) {
  Key key{GcraLimit::make(10, 1min, 1)};  // one every 6 s
  EXPECT_TRUE(key.hit(kStart).allowed);
  GcraResult r = key.hit(kStart);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.retry_after, 6);
  r = key.hit(kStart + 5'000'001);
  EXPECT_EQ(r.retry_after, 1);
  r = key.hit(kStart + 5'999'999);
  EXPECT_EQ(r.retry_after, 1);  // never 0 while denied
  EXPECT_TRUE(key.hit(kStart + 6 * kSecond).allowed);

  // Retry-After is exact: waiting that long is enough, and a second less is not.
  Key slow{GcraLimit::make(1, 1h, 2)};
  slow.hit(kStart);
  slow.hit(kStart);
  const GcraResult denied = slow.hit(kStart + 17 * kSecond);
  EXPECT_EQ(denied.retry_after, 3600 - 17);
  EXPECT_FALSE(slow.hit(kStart + 17 * kSecond + (denied.retry_after - 1) * kSecond).allowed);
  EXPECT_TRUE(slow.hit(kStart + 17 * kSecond + denied.retry_after * kSecond).allowed);
}

TEST(Gcra, LongIdleGivesTheFullBurstBackAndNoMore) {
  Key key{GcraLimit::make(100, 1s, 20)};
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(key.hit(kStart).allowed);
  ASSERT_FALSE(key.hit(kStart).allowed);
  for (const std::int64_t idle : {std::int64_t{200'000}, 3600 * kSecond}) {
    const std::int64_t at = key.tat + idle;
    int passed = 0;
    while (key.hit(at).allowed)
      ++passed;
    EXPECT_EQ(passed, 20) << idle;
  }
  // Half the window (100 ms) after emptying it: half the burst.
  const std::int64_t at = key.tat - 100'000;
  int passed = 0;
  while (key.hit(at).allowed)
    ++passed;
  EXPECT_EQ(passed, 10);
}

TEST(Gcra, SustainedRateNeverAboveConfigured) {
  Key key{GcraLimit::make(3, 1s, 3)};
  int passed = 0;
  // A request every millisecond for 10 seconds: at most the burst plus 3 per second.
  for (std::int64_t t = 0; t <= 10 * kSecond; t += 1000)
    passed += key.hit(kStart + t).allowed;
  EXPECT_LE(passed, 3 + 30);
  EXPECT_GE(passed, 3 + 29);
}

TEST(Gcra, SeveralLimitsAllOrNothing) {
  const std::vector<GcraLimit> limits = {GcraLimit::make(100, 1s, 10), GcraLimit::make(1, 1s, 2)};
  std::vector<std::int64_t> tats = {0, 0};
  GcraMultiResult r = gcra_decide_all(limits, kStart, tats);
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.deciding, 1u);  // fewest remaining: the second limit
  EXPECT_EQ(r.headline.remaining, 1);
  EXPECT_EQ(r.headline.limit, 2);
  r = gcra_decide_all(limits, kStart, tats);
  EXPECT_TRUE(r.allowed);
  const std::vector<std::int64_t> before = tats;
  r = gcra_decide_all(limits, kStart, tats);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.deciding, 1u);
  EXPECT_EQ(r.headline.retry_after, 1);
  EXPECT_EQ(tats, before);  // the first limit, which allowed, consumed nothing either

  // The first limit still has 8 of its 10: with the second out of the way they all pass.
  const std::vector<GcraLimit> first_only = {limits[0]};
  std::vector<std::int64_t> first_tat = {tats[0]};
  int passed = 0;
  while (gcra_decide_all(first_only, kStart, first_tat).allowed)
    ++passed;
  EXPECT_EQ(passed, 8);

  // Two denying limits: the headline is the longer wait.
  const std::vector<GcraLimit> two = {GcraLimit::make(1, 10s, 1), GcraLimit::make(1, 1min, 1)};
  std::vector<std::int64_t> two_tats = {0, 0};
  ASSERT_TRUE(gcra_decide_all(two, kStart, two_tats).allowed);
  r = gcra_decide_all(two, kStart, two_tats);
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.deciding, 1u);
  EXPECT_EQ(r.headline.retry_after, 60);

  std::vector<std::int64_t> none;
  EXPECT_TRUE(gcra_decide_all({}, kStart, none).allowed);
}

// Fixed inputs and outputs of the documented arithmetic: any other implementation of the
// decision (the Redis script) must reproduce this table exactly.
TEST(Gcra, ReferenceVectors) {
  struct Vector {
    std::uint64_t rate;
    std::chrono::nanoseconds per;
    std::uint64_t burst;
    std::int64_t now, tat;
    bool allowed;
    std::int64_t new_tat, remaining, reset, retry_after;
  };
  const Vector vectors[] = {
      {100, 1s, 200, 1'000'000, 0, true, 1'010'000, 199, 1, 0},
      {100, 1s, 200, 1'000'000, 2'995'000, false, 2'995'000, 0, 2, 1},
      {100, 1s, 200, 1'000'000, 2'990'000, true, 3'000'000, 0, 2, 0},
      {10, 1min, 10, 100'000'000, 160'000'000, false, 160'000'000, 0, 60, 6},
      {10, 1min, 10, 100'000'001, 160'000'000, false, 160'000'000, 0, 60, 6},
      {3, 1s, 2, 5'000'000, 5'400'000, false, 5'400'000, 0, 1, 1},
      {3, 1s, 2, 5'066'666, 5'400'000, true, 5'733'334, 0, 1, 0},
  };
  for (const Vector& v : vectors) {
    const GcraResult r = gcra_decide(GcraLimit::make(v.rate, v.per, v.burst), v.now, v.tat);
    SCOPED_TRACE(testing::Message() << v.rate << "/" << v.per.count() << "ns burst " << v.burst
                                    << " now " << v.now << " tat " << v.tat);
    EXPECT_EQ(r.allowed, v.allowed);
    EXPECT_EQ(r.new_tat, v.new_tat);
    EXPECT_EQ(r.limit, static_cast<std::int64_t>(v.burst));
    EXPECT_EQ(r.remaining, v.remaining);
    EXPECT_EQ(r.reset, v.reset);
    EXPECT_EQ(r.retry_after, v.retry_after);
  }
}

}  // namespace
}  // namespace portcullis::limits
