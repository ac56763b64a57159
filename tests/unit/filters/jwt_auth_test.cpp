// The JWT gate's per-connection memo and per-thread table of recent tokens: a repeated token is
// recognised by its bytes, and only for as long, and under the same keys, as the verified-token
// cache would keep it.

#include "portcullis/filters/jwt_auth.hpp"

#include <gtest/gtest.h>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::filters {
namespace {

using auth::Algorithm;
using namespace auth::testing;
using core::Reason;

class TokenMemoTest : public ::testing::Test {
 protected:
  TokenMemoTest() : holder_(std::make_shared<auth::KeySetHolder>(provider_keys())) {
    provider_.name = "corp";
    provider_.issuer = std::string(kIssuer);
    provider_.audiences = {std::string(kAudience)};
    provider_.algorithms = {"ES256"};
    provider_.required_claims = {"exp"};
    gate_ = std::make_unique<JwtProviderGate>(provider_, holder_);
  }

  JwtVerdict present(const std::string& token, std::chrono::system_clock::time_point now,
                     TokenMemo* memo) {
    head_.headers = {{"Authorization", bearer_ = "Bearer " + token}};
    return gate_->authenticate(head_, cache_, now, memo);
  }

  config::JwtProvider provider_;
  std::shared_ptr<auth::KeySetHolder> holder_;
  std::unique_ptr<JwtProviderGate> gate_;
  auth::VerifiedTokenCache cache_;
  http::RequestHead head_;
  std::string bearer_;
  TokenMemo memo_;
};

TEST_F(TokenMemoTest, TheSameTokenAgainIsTakenFromTheMemoWithoutTheCache) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  auto first = present(token, kNowTime, &memo_);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first.cache_hit);
  ASSERT_NE(memo_.principal, nullptr);
  EXPECT_EQ(memo_.token, token);

  cache_.clear();  // only the memo can answer now, and a fresh verification would refill it
  auto again = present(token, kNowTime + std::chrono::seconds(1), &memo_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.cache_hit);
  EXPECT_EQ(again.subject, "alice");
  EXPECT_EQ(again.token_hash, first.token_hash);
  EXPECT_EQ(again.principal, first.principal);
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(TokenMemoTest, AnotherTokenReplacesItAndAFailureEmptiesIt) {
  auto claims = good_claims();
  const auto alice = make_token(Algorithm::es256, keys().ec256, claims);
  claims["sub"] = "bob";
  const auto bob = make_token(Algorithm::es256, keys().ec256, claims);
  ASSERT_TRUE(present(alice, kNowTime, &memo_).ok());
  const auto verdict = present(bob, kNowTime, &memo_);
  ASSERT_TRUE(verdict.ok());
  EXPECT_EQ(verdict.subject, "bob");
  EXPECT_EQ(memo_.token, bob);

  // A forged token (another key under a known kid) is refused, and forgets what was kept.
  const auto forged =
      make_token(Algorithm::es256, keys().attacker_ec, good_claims(), {{"kid", "ec-256"}});
  EXPECT_EQ(present(forged, kNowTime, &memo_).reason, Reason::jwt_bad_signature);
  EXPECT_EQ(memo_.principal, nullptr);
}

TEST_F(TokenMemoTest, KeptNoLongerThanTheCacheWouldKeepIt) {
  // The cache's TTL (300 s by default) first, for a token with 600 s left.
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_TRUE(present(token, kNowTime, &memo_).ok());
  EXPECT_EQ(memo_.expires, kNowTime + cache_.ttl());
  // The token's exp first, for one with 100 s left; after it (and the verifier's clock skew)
  // the token is verified afresh and refused.
  auto claims = good_claims();
  claims["exp"] = kNow + 100;
  const auto short_lived = make_token(Algorithm::es256, keys().ec256, claims);
  ASSERT_TRUE(present(short_lived, kNowTime, &memo_).ok());
  EXPECT_EQ(memo_.expires, kNowTime + std::chrono::seconds(100));
  const auto later = present(short_lived, kNowTime + std::chrono::seconds(100 + 31), &memo_);
  EXPECT_EQ(later.reason, Reason::jwt_expired);
  EXPECT_FALSE(later.cache_hit);
  EXPECT_EQ(memo_.principal, nullptr);
}

TEST_F(TokenMemoTest, ANewKeySetIsNotAnsweredFromTheMemo) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_TRUE(present(token, kNowTime, &memo_).ok());
  // The provider's JWKS drops the signing key: the remembered verification no longer holds.
  ASSERT_TRUE(holder_->offer(auth::KeySetLoad{key_set({public_jwk(keys().rsa)}), {}, {}}));
  const auto verdict = present(token, kNowTime + std::chrono::seconds(1), &memo_);
  EXPECT_FALSE(verdict.ok());
  EXPECT_EQ(verdict.reason, Reason::jwt_unknown_kid);
}

TEST_F(TokenMemoTest, WithoutAMemoTheCacheStillAnswers) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_TRUE(present(token, kNowTime, nullptr).ok());
  const auto again = present(token, kNowTime, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.cache_hit);
  EXPECT_EQ(again.subject, "alice");
}

// The thread's table of recent tokens answers a token another connection presented, without
// the shared cache, and only for the exact bytes and the same keys.
TEST_F(TokenMemoTest, ATokenSeenOnThisThreadIsAnsweredWithoutTheCache) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  const auto first = present(token, kNowTime, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first.cache_hit);
  cache_.clear();
  const auto again = present(token, kNowTime + std::chrono::seconds(1), nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.cache_hit);
  EXPECT_EQ(again.principal, first.principal);
  EXPECT_EQ(again.subject, "alice");
  EXPECT_EQ(cache_.size(), 0u);  // not refilled: no verification happened
}

TEST_F(TokenMemoTest, TheRecentTokensTableWantsTheExactBytes) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_TRUE(present(token, kNowTime, nullptr).ok());
  // The same token with its signature's last character changed: verified afresh, and refused.
  auto altered = token;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  const auto verdict = present(altered, kNowTime, nullptr);
  EXPECT_FALSE(verdict.ok());
  EXPECT_FALSE(verdict.cache_hit);
  // The refusal did not take the genuine token's place.
  cache_.clear();
  EXPECT_TRUE(present(token, kNowTime, nullptr).cache_hit);
}

TEST_F(TokenMemoTest, TheRecentTokensTableFollowsTheKeySetAndTheExpiry) {
  auto claims = good_claims();
  claims["exp"] = kNow + 100;
  const auto token = make_token(Algorithm::es256, keys().ec256, claims);
  ASSERT_TRUE(present(token, kNowTime, nullptr).ok());
  cache_.clear();
  const auto expired = present(token, kNowTime + std::chrono::seconds(100 + 31), nullptr);
  EXPECT_EQ(expired.reason, Reason::jwt_expired);
  EXPECT_FALSE(expired.cache_hit);

  const auto fresh = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_TRUE(present(fresh, kNowTime, nullptr).ok());
  cache_.clear();
  ASSERT_TRUE(holder_->offer(auth::KeySetLoad{key_set({public_jwk(keys().rsa)}), {}, {}}));
  const auto verdict = present(fresh, kNowTime + std::chrono::seconds(1), nullptr);
  EXPECT_EQ(verdict.reason, Reason::jwt_unknown_kid);
}

}  // namespace
}  // namespace portcullis::filters
