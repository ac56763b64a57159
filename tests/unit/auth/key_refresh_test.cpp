#include "portcullis/auth/key_refresh.hpp"

#include <gtest/gtest.h>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using namespace testing;
using std::chrono::seconds;

TEST(KeySetHolder, KeepsTheLastGoodSet) {
  KeySetHolder holder;
  EXPECT_EQ(holder.current(), nullptr);
  const auto good = KeySet::from_jwks(jwks_text({public_jwk(keys().ec256)}));
  EXPECT_TRUE(holder.offer(good));
  EXPECT_EQ(holder.current(), good.keys);
  // A failed fetch or a broken document leaves the good set in place.
  EXPECT_FALSE(holder.offer(KeySet::from_jwks("<html>502 Bad Gateway</html>")));
  EXPECT_FALSE(holder.offer(KeySet::from_jwks(R"({"keys":[]})")));
  EXPECT_EQ(holder.current(), good.keys);
  const auto next = KeySet::from_jwks(jwks_text({public_jwk(keys().rsa)}));
  EXPECT_TRUE(holder.offer(next));
  EXPECT_EQ(holder.current(), next.keys);
}

TEST(RefreshSchedule, PeriodicRefresh) {
  RefreshSchedule schedule(seconds{300});
  EXPECT_TRUE(schedule.refresh_due(kNowTime));
  schedule.record_attempt(kNowTime);
  EXPECT_FALSE(schedule.refresh_due(at(kNow + 299)));
  EXPECT_TRUE(schedule.refresh_due(at(kNow + 300)));
}

TEST(RefreshSchedule, UnknownKidRefetchAtMostOncePerInterval) {
  RefreshSchedule schedule(seconds{300}, seconds{60});
  EXPECT_TRUE(schedule.claim_unknown_kid_refetch(kNowTime));
  // A flood of made-up kids within the interval causes no further fetch.
  for (int i = 1; i < 60; ++i)
    EXPECT_FALSE(schedule.claim_unknown_kid_refetch(at(kNow + i)));
  EXPECT_TRUE(schedule.claim_unknown_kid_refetch(at(kNow + 60)));
  EXPECT_FALSE(schedule.claim_unknown_kid_refetch(at(kNow + 61)));
}

TEST(RefreshSchedule, UnknownKidIntervalDefaultsToTheRefreshInterval) {
  RefreshSchedule schedule(seconds{120});
  EXPECT_TRUE(schedule.claim_unknown_kid_refetch(kNowTime));
  EXPECT_FALSE(schedule.claim_unknown_kid_refetch(at(kNow + 119)));
  EXPECT_TRUE(schedule.claim_unknown_kid_refetch(at(kNow + 120)));
}

}  // namespace
}  // namespace portcullis::auth
