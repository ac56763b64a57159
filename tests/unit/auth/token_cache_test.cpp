#include "portcullis/auth/token_cache.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <thread>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using core::Reason;
using namespace testing;

ProviderSettings settings() {
  ProviderSettings s;
  s.name = "corp";
  s.issuer = std::string(kIssuer);
  s.audiences = {std::string(kAudience)};
  s.algorithms = {Algorithm::es256, Algorithm::rs256};
  return s;
}

TokenDigest digest_of(int i) {
  return token_digest(std::to_string(i));
}

std::shared_ptr<const Principal> principal_expiring(std::int64_t exp) {
  auto p = std::make_shared<Principal>();
  p->expires_at = std::chrono::sys_seconds{std::chrono::seconds{exp}};
  return p;
}

const Sha256Digest kContext{};

class CachedVerification : public ::testing::Test {
 protected:
  Verifier verifier_{settings()};
  std::shared_ptr<const KeySet> keys_ = provider_keys();
  VerifiedTokenCache cache_{TokenCacheOptions{1000, 4, std::chrono::seconds{300}}};
};

TEST_F(CachedVerification, RepeatedTokenIsALookup) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  const auto first = verify_cached(verifier_, cache_, token, kNowTime, *keys_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(cache_.size(), 1u);
  const auto second = verify_cached(verifier_, cache_, token, at(kNow + 1), *keys_);
  ASSERT_TRUE(second.ok());
  // The very same principal object: no second verification built a new one.
  EXPECT_EQ(second.principal.get(), first.principal.get());
  EXPECT_EQ(second.token_hash, first.token_hash);
  EXPECT_EQ(second.subject, "alice");
  // A plain verify builds a fresh principal.
  EXPECT_NE(verifier_.verify(token, kNowTime, *keys_).principal.get(), first.principal.get());
}

TEST_F(CachedVerification, DifferentTokenWithTheSameClaimsIsAMiss) {
  // ECDSA signatures are randomised: same claims, different token bytes.
  const auto a = make_token(Algorithm::es256, keys().ec256, good_claims());
  const auto b = make_token(Algorithm::es256, keys().ec256, good_claims());
  ASSERT_NE(a, b);
  const auto first = verify_cached(verifier_, cache_, a, kNowTime, *keys_);
  const auto second = verify_cached(verifier_, cache_, b, kNowTime, *keys_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first.principal.get(), second.principal.get());
  EXPECT_EQ(cache_.size(), 2u);
}

TEST_F(CachedVerification, EntryNeverOutlivesExp) {
  auto claims = good_claims();
  claims["exp"] = kNow + 100;
  const auto token = make_token(Algorithm::es256, keys().ec256, claims);
  const auto first = verify_cached(verifier_, cache_, token, kNowTime, *keys_);
  ASSERT_TRUE(first.ok());
  const auto digest = token_digest(token);
  const auto context = cache_context(verifier_, *keys_);
  EXPECT_TRUE(cache_.find(digest, context, at(kNow + 99)));
  EXPECT_FALSE(cache_.find(digest, context, at(kNow + 100)));
  EXPECT_EQ(cache_.size(), 0u);  // the expired entry is gone
  // Within the clock skew the token still verifies, but freshly, not from the cache...
  const auto late = verify_cached(verifier_, cache_, token, at(kNow + 110), *keys_);
  ASSERT_TRUE(late.ok());
  EXPECT_NE(late.principal.get(), first.principal.get());
  // ...and it is not cached past exp either.
  EXPECT_EQ(cache_.size(), 0u);
  EXPECT_EQ(verify_cached(verifier_, cache_, token, at(kNow + 130), *keys_).reason,
            Reason::jwt_expired);
}

TEST_F(CachedVerification, EntryLivesAtMostTheTtl) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());  // exp now+600
  ASSERT_TRUE(verify_cached(verifier_, cache_, token, kNowTime, *keys_).ok());
  const auto context = cache_context(verifier_, *keys_);
  EXPECT_TRUE(cache_.find(token_digest(token), context, at(kNow + 299)));
  EXPECT_FALSE(cache_.find(token_digest(token), context, at(kNow + 300)));
}

TEST_F(CachedVerification, FailuresAreNotCached) {
  auto claims = good_claims();
  claims["aud"] = "other";
  const auto token = make_token(Algorithm::es256, keys().ec256, claims);
  EXPECT_EQ(verify_cached(verifier_, cache_, token, kNowTime, *keys_).reason,
            Reason::jwt_wrong_audience);
  EXPECT_EQ(cache_.size(), 0u);
}

TEST_F(CachedVerification, OtherSettingsOrKeysMiss) {
  const auto token = make_token(Algorithm::es256, keys().ec256, good_claims());
  const auto first = verify_cached(verifier_, cache_, token, kNowTime, *keys_);
  ASSERT_TRUE(first.ok());

  // A reload that narrows the audience must not serve the old verdict.
  auto narrowed = settings();
  narrowed.audiences = {"payments"};
  EXPECT_EQ(verify_cached(Verifier(narrowed), cache_, token, kNowTime, *keys_).reason,
            Reason::jwt_wrong_audience);

  // A JWKS refresh that drops the signing key must not serve the old verdict.
  ASSERT_TRUE(verify_cached(verifier_, cache_, token, kNowTime, *keys_).ok());
  const auto rotated = key_set({public_jwk(keys().rsa)});
  EXPECT_EQ(verify_cached(verifier_, cache_, token, kNowTime, *rotated).reason,
            Reason::jwt_unknown_kid);

  // The same JWKS fetched again (a new KeySet object, same keys) keeps the entry.
  const auto first_again = verify_cached(verifier_, cache_, token, kNowTime, *keys_);
  const auto refetched =
      key_set({public_jwk(keys().rsa), public_jwk(keys().ec256), public_jwk(keys().ec384),
               public_jwk(keys().ec521), public_jwk(keys().ed)});
  EXPECT_EQ(verify_cached(verifier_, cache_, token, kNowTime, *refetched).principal.get(),
            first_again.principal.get());
}

TEST_F(CachedVerification, OversizedTokensAreRefusedBeforeAnyLookup) {
  EXPECT_EQ(verify_cached(verifier_, cache_, std::string(9000, 'a'), kNowTime, *keys_).reason,
            Reason::jwt_too_large);
}

TEST(VerifiedTokenCache, MissThenHit) {
  VerifiedTokenCache cache;
  EXPECT_FALSE(cache.find(digest_of(1), kContext, kNowTime));
  const auto p = principal_expiring(kNow + 60);
  cache.insert(digest_of(1), kContext, p, kNowTime);
  EXPECT_EQ(cache.find(digest_of(1), kContext, kNowTime), p);
  EXPECT_FALSE(cache.find(digest_of(2), kContext, kNowTime));
  Sha256Digest other{};
  other[0] = 1;
  EXPECT_FALSE(cache.find(digest_of(1), other, kNowTime));
  EXPECT_EQ(cache.size(), 0u);  // a context mismatch drops the entry
}

TEST(VerifiedTokenCache, BoundIsRespected) {
  VerifiedTokenCache cache(TokenCacheOptions{64, 8, std::chrono::seconds{300}});
  EXPECT_EQ(cache.capacity(), 64u);
  for (int i = 0; i < 10'000; ++i)
    cache.insert(digest_of(i), kContext, principal_expiring(kNow + 600), kNowTime);
  EXPECT_LE(cache.size(), 64u);
  EXPECT_GT(cache.size(), 32u);  // shards fill roughly evenly
  // Recent entries survive; the earliest were evicted.
  EXPECT_TRUE(cache.find(digest_of(9'999), kContext, kNowTime));
  EXPECT_FALSE(cache.find(digest_of(0), kContext, kNowTime));
}

TEST(VerifiedTokenCache, EvictsLeastRecentlyUsed) {
  VerifiedTokenCache cache(TokenCacheOptions{2, 1, std::chrono::seconds{300}});
  cache.insert(digest_of(1), kContext, principal_expiring(kNow + 600), kNowTime);
  cache.insert(digest_of(2), kContext, principal_expiring(kNow + 600), kNowTime);
  ASSERT_TRUE(cache.find(digest_of(1), kContext, kNowTime));  // 1 is now most recent
  cache.insert(digest_of(3), kContext, principal_expiring(kNow + 600), kNowTime);
  EXPECT_TRUE(cache.find(digest_of(1), kContext, kNowTime));
  EXPECT_FALSE(cache.find(digest_of(2), kContext, kNowTime));
  EXPECT_TRUE(cache.find(digest_of(3), kContext, kNowTime));
}

TEST(VerifiedTokenCache, AlreadyExpiredOrAbsurdExpiries) {
  VerifiedTokenCache cache;
  cache.insert(digest_of(1), kContext, principal_expiring(kNow), kNowTime);
  cache.insert(digest_of(2), kContext, principal_expiring(std::numeric_limits<std::int64_t>::min()),
               kNowTime);
  EXPECT_EQ(cache.size(), 0u);
  cache.insert(digest_of(3), kContext, principal_expiring(std::numeric_limits<std::int64_t>::max()),
               kNowTime);
  EXPECT_TRUE(cache.find(digest_of(3), kContext, at(kNow + 299)));
  EXPECT_FALSE(cache.find(digest_of(3), kContext, at(kNow + 300)));  // the ttl still applies
  cache.insert(digest_of(4), kContext, std::make_shared<Principal>(), kNowTime);  // no exp: ttl
  EXPECT_TRUE(cache.find(digest_of(4), kContext, at(kNow + 299)));
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerifiedTokenCache, ConcurrentUseIsSafe) {
  VerifiedTokenCache cache(TokenCacheOptions{256, 4, std::chrono::seconds{300}});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 5'000; ++i) {
        const auto d = digest_of((i * 7 + t) % 512);
        if (!cache.find(d, kContext, kNowTime))
          cache.insert(d, kContext, principal_expiring(kNow + 600), kNowTime);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_LE(cache.size(), 256u);
}

TEST(SameToken, EqualOnlyForTheSameBytesAndLength) {
  const std::string token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
  EXPECT_TRUE(same_token(token, token));
  EXPECT_TRUE(same_token("", ""));
  EXPECT_FALSE(same_token(token, token.substr(0, token.size() - 1)));
  EXPECT_FALSE(same_token(token.substr(0, 8), token.substr(0, 7) + "x"));  // one word, last byte
  for (const std::size_t at : {std::size_t{0}, std::size_t{7}, std::size_t{8}, token.size() - 1}) {
    auto other = token;
    other[at] = static_cast<char>(other[at] ^ 0x01);
    EXPECT_FALSE(same_token(token, other)) << "differs at " << at;
  }
}

}  // namespace
}  // namespace portcullis::auth
