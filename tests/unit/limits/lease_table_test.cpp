#include "portcullis/limits/lease_table.hpp"

#include <gtest/gtest.h>

#include <string>

#include "portcullis/core/clock.hpp"
#include "portcullis/limits/gcra.hpp"

namespace portcullis::limits {
namespace {

using namespace std::chrono_literals;

struct LeaseTableTest : ::testing::Test {
  core::ManualClock clock;
  LeaseTable table{{64, 1}};
  // 1000 per second (T = 1 ms), burst 400: slice 50, lifetime 50 ms.
  LeaseTerms terms = lease_terms(1000, 400);
  std::int64_t now() const { return to_micros(clock.monotonic()); }

  // Asks like the backend does and has the fleet grant everything asked; returns the quantity.
  std::int64_t ask_and_grant(const std::string& key, std::int64_t remaining = 300) {
    const auto asked = table.quantity(key, terms, now());
    if (asked > 1) table.granted(key, asked, remaining, terms, now());
    return asked;
  }
  int take_all(const std::string& key) {
    int taken = 0;
    while (table.take(key, now()))
      ++taken;
    return taken;
  }
};

TEST(LeaseTermsTest, SliceIsFiftyMillisecondsOfTokensAtMostAQuarterOfTheBurst) {
  EXPECT_EQ(lease_terms(1000, 400).slice, 50);  // 1000/s: 50 in 50 ms
  EXPECT_EQ(lease_terms(1000, 400).lifetime_us, 50'000);
  EXPECT_EQ(lease_terms(1000, 100).slice, 25);            // a quarter of the burst
  EXPECT_EQ(lease_terms(100, 4000).slice, 500);           // 10 000/s
  EXPECT_EQ(lease_terms(100, 1000).lifetime_us, 25'000);  // a quarter of the burst: 25 ms
  EXPECT_FALSE(lease_terms(100'000, 1000).leased());      // 10/s: one call per request
  EXPECT_FALSE(lease_terms(1000, 7).leased());            // a small burst is never leased
  EXPECT_TRUE(lease_terms(25'000, 8).leased());           // 40/s, burst 8: slice 2
  EXPECT_EQ(lease_terms(25'000, 8).slice, 2);
  EXPECT_FALSE(lease_terms(0, 100).leased());
}

TEST_F(LeaseTableTest, ANewKeyAsksForOneThenRampsUpWhileLeasesRunOut) {
  EXPECT_FALSE(table.take("k", now()));
  EXPECT_EQ(ask_and_grant("k"), 1);  // a single request takes no slice
  EXPECT_EQ(ask_and_grant("k"), 2);
  EXPECT_EQ(take_all("k"), 1);
  EXPECT_EQ(ask_and_grant("k"), 4);
  EXPECT_EQ(take_all("k"), 3);
  EXPECT_EQ(ask_and_grant("k"), 8);
  EXPECT_EQ(take_all("k"), 7);
  EXPECT_EQ(ask_and_grant("k"), 16);
  EXPECT_EQ(take_all("k"), 15);
  EXPECT_EQ(ask_and_grant("k"), 32);
  EXPECT_EQ(take_all("k"), 31);
  EXPECT_EQ(ask_and_grant("k"), 50);  // the slice caps it
  EXPECT_EQ(take_all("k"), 49);
  EXPECT_EQ(ask_and_grant("k"), 50);
}

TEST_F(LeaseTableTest, ALeaseExpiresAfterItsLifetimeAndUnusedTokensAreLost) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  ASSERT_EQ(ask_and_grant("k"), 4);
  clock.advance(49ms);
  EXPECT_TRUE(table.take("k", now()));
  clock.advance(1ms);
  EXPECT_FALSE(table.take("k", now()));  // two tokens lost
  // Two of the four served (the asking request and one): the next ask is 2 + 0 + 1.
  EXPECT_EQ(ask_and_grant("k"), 3);
}

TEST_F(LeaseTableTest, AKeyNotSeenLatelyStartsAgainAtOne) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  clock.advance(250ms);  // longer than the demand record keeps (4 lifetimes)
  EXPECT_EQ(ask_and_grant("k"), 1);
}

TEST_F(LeaseTableTest, OnlyOneAskPerKeyIsInFlight) {
  ask_and_grant("k");
  const auto first = table.quantity("k", terms, now());
  EXPECT_EQ(first, 2);
  EXPECT_EQ(table.quantity("k", terms, now()), 1);  // another request meanwhile: no second lease
  table.abandoned("k");
  EXPECT_EQ(table.quantity("k", terms, now()), 2);
  // An ask whose answer never came stops blocking after a second.
  clock.advance(1s);
  table.granted("k", 1, 10, terms, now());  // a shrunk grant: nothing to lease
  EXPECT_FALSE(table.take("k", now()));
  EXPECT_EQ(table.quantity("k", terms, now()), 2);
  EXPECT_EQ(table.quantity("k", terms, now()), 1);
}

TEST_F(LeaseTableTest, RemainingIsTheFleetsAnswerMinusLocalUse) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  const auto asked = table.quantity("k", terms, now());
  ASSERT_EQ(asked, 4);
  // The fleet had 300 left before this grant of 4: 296 after it, 299 seen from here.
  table.granted("k", asked, 296, terms, now());
  LeaseTable::Taken taken;
  ASSERT_TRUE(table.take("k", now(), &taken));
  EXPECT_EQ(taken.remaining, 298);
  ASSERT_TRUE(table.take("k", now(), &taken));
  EXPECT_EQ(taken.remaining, 297);
}

TEST_F(LeaseTableTest, ALeaseRunningLowAsksForARefillOnceAndKeepsWhatIsLeft) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  ASSERT_EQ(ask_and_grant("k"), 4);
  take_all("k");
  ASSERT_EQ(ask_and_grant("k"), 8);  // 7 tokens here
  LeaseTable::Taken taken;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(table.take("k", now(), &taken, &terms)) << i;
    EXPECT_EQ(taken.refill, 0) << i;  // 3 or more left: more than a quarter of 8
  }
  ASSERT_TRUE(table.take("k", now(), &taken, &terms));  // 2 left: low
  // Used 6 of 8 at once: the projected demand is more than a slice.
  EXPECT_EQ(taken.refill, terms.slice);
  ASSERT_TRUE(table.take("k", now(), &taken, &terms));
  EXPECT_EQ(taken.refill, 0);  // one refill in flight at a time
  ASSERT_TRUE(table.take("k", now(), &taken, &terms));
  EXPECT_FALSE(table.take("k", now(), &taken, &terms));
  EXPECT_EQ(table.quantity("k", terms, now()), 1);  // and no second lease meanwhile
  clock.advance(10ms);
  table.refilled("k", 50, 200, terms, now());
  int served = 0;
  while (table.take("k", now()))
    ++served;
  EXPECT_EQ(served, 50);
}

TEST_F(LeaseTableTest, ALeaseNearItsEndIsRefilledAtTheRateItIsUsed) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  ask_and_grant("k");
  take_all("k");
  ASSERT_EQ(ask_and_grant("k"), 8);  // 7 tokens, 50 ms
  LeaseTable::Taken taken;
  clock.advance(40ms);  // the last quarter of its lifetime
  ASSERT_TRUE(table.take("k", now(), &taken, &terms));
  // 2 used in 40 ms: 2.5 per lifetime, plus a quarter, plus one.
  EXPECT_EQ(taken.refill, 3);
  table.refilled("k", 3, 100, terms, now());
  clock.advance(45ms);  // past the old lease's end, within the refill's
  int served = 0;
  while (table.take("k", now()))
    ++served;
  EXPECT_EQ(served, 6 + 3);  // what was left is carried into the refill
}

TEST_F(LeaseTableTest, AGivenBackTokenServesAnotherRequest) {
  ask_and_grant("k");
  ask_and_grant("k");
  take_all("k");
  ASSERT_EQ(ask_and_grant("k"), 4);
  ASSERT_TRUE(table.take("k", now()));
  ASSERT_TRUE(table.take("k", now()));
  ASSERT_TRUE(table.take("k", now()));
  EXPECT_FALSE(table.take("k", now()));
  table.give_back("k", now());
  EXPECT_TRUE(table.take("k", now()));
  EXPECT_FALSE(table.take("k", now()));
  // Given back after the lease ended: lost.
  table.give_back("k", now() + 50'000);
  clock.advance(50ms);
  EXPECT_FALSE(table.take("k", now()));
}

TEST_F(LeaseTableTest, TheTableIsBoundedAndDropsKeysWhoseRecordIsOver) {
  for (int i = 0; i < 64; ++i)
    ask_and_grant("key" + std::to_string(i));
  EXPECT_EQ(table.size(), 64u);
  // Full of live records: a new key is not tracked (asks for 1, leases nothing).
  EXPECT_EQ(table.quantity("new", terms, now()), 1);
  EXPECT_EQ(table.size(), 64u);
  clock.advance(250ms);  // every record is over
  EXPECT_EQ(table.quantity("new", terms, now()), 1);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_LE(table.size(), table.capacity());
}

TEST_F(LeaseTableTest, ALimitThatIsNotLeasedAsksForOneAndKeepsNothing) {
  const auto slow = lease_terms(100'000, 1000);
  EXPECT_EQ(table.quantity("slow", slow, now()), 1);
  EXPECT_EQ(table.quantity("slow", slow, now()), 1);
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace portcullis::limits
