#include "portcullis/auth/verifier.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <boost/json.hpp>

#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using core::Reason;
using namespace testing;

ProviderSettings asymmetric_settings() {
  ProviderSettings settings;
  settings.name = "corp";
  settings.issuer = std::string(kIssuer);
  settings.audiences = {std::string(kAudience)};
  settings.algorithms = {Algorithm::rs256, Algorithm::rs384, Algorithm::rs512, Algorithm::ps256,
                         Algorithm::ps384, Algorithm::ps512, Algorithm::es256, Algorithm::es384,
                         Algorithm::es512, Algorithm::eddsa};
  settings.required_claims = {"jti"};
  return settings;
}

ProviderSettings symmetric_settings() {
  ProviderSettings settings = asymmetric_settings();
  settings.algorithms = {Algorithm::hs256, Algorithm::hs384, Algorithm::hs512};
  return settings;
}

// ---- one success per algorithm -----------------------------------------------------------------

struct AlgorithmCase {
  Algorithm algorithm;
  const TestKey& (*key)();
};

class EachAlgorithm : public ::testing::TestWithParam<Algorithm> {};

const TestKey& key_for(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::es256:
      return keys().ec256;
    case Algorithm::es384:
      return keys().ec384;
    case Algorithm::es512:
      return keys().ec521;
    case Algorithm::eddsa:
      return keys().ed;
    case Algorithm::hs256:
    case Algorithm::hs384:
    case Algorithm::hs512:
      return keys().secret;
    default:
      return keys().rsa;
  }
}

TEST_P(EachAlgorithm, VerifiesAGoodToken) {
  const Algorithm algorithm = GetParam();
  const bool symmetric = is_symmetric(algorithm);
  const Verifier verifier(symmetric ? symmetric_settings() : asymmetric_settings());
  const auto set =
      symmetric ? KeySet::from_secret(keys().secret.secret, "hmac-1").keys : provider_keys();
  const std::string token = make_token(algorithm, key_for(algorithm), good_claims());
  const auto result = verifier.verify(token, kNowTime, *set);
  ASSERT_EQ(result.reason, Reason::none) << to_string(algorithm);
  ASSERT_TRUE(result.principal);
  EXPECT_EQ(result.principal->algorithm, algorithm);
  EXPECT_EQ(result.principal->subject, "alice");
  EXPECT_EQ(result.principal->kid, key_for(algorithm).kid);
  EXPECT_EQ(result.token_hash, token_hash_prefix(token));

  // One flipped bit in the signature and the same token fails.
  std::string tampered = token;
  const auto last = tampered.size() - 2;
  tampered[last] = tampered[last] == 'A' ? 'B' : 'A';
  EXPECT_EQ(verifier.verify(tampered, kNowTime, *set).reason, Reason::jwt_bad_signature);
  // A changed payload under the original signature fails.
  auto claims = good_claims();
  claims["sub"] = "mallory";
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  const std::string swapped = token.substr(0, dot1 + 1) + b64url(claims) + token.substr(dot2);
  EXPECT_EQ(verifier.verify(swapped, kNowTime, *set).reason, Reason::jwt_bad_signature);
  EXPECT_EQ(ERR_peek_error(), 0u) << "a refusal must not leave errors on the OpenSSL queue";
}

INSTANTIATE_TEST_SUITE_P(Jose, EachAlgorithm,
                         ::testing::Values(Algorithm::rs256, Algorithm::rs384, Algorithm::rs512,
                                           Algorithm::ps256, Algorithm::ps384, Algorithm::ps512,
                                           Algorithm::es256, Algorithm::es384, Algorithm::es512,
                                           Algorithm::eddsa, Algorithm::hs256, Algorithm::hs384,
                                           Algorithm::hs512),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// ---- provider algorithm list and key type
// --------------------------------------------------------

TEST(Verifier, OnlyTheProvidersAlgorithmsAreAccepted) {
  auto settings = asymmetric_settings();
  settings.algorithms = {Algorithm::es256};
  const Verifier verifier(settings);
  EXPECT_EQ(verifier
                .verify(make_token(Algorithm::rs256, keys().rsa, good_claims()), kNowTime,
                        *provider_keys())
                .reason,
            Reason::jwt_alg_not_allowed);
  EXPECT_TRUE(verifier
                  .verify(make_token(Algorithm::es256, keys().ec256, good_claims()), kNowTime,
                          *provider_keys())
                  .ok());
}

TEST(Verifier, AlgorithmMustFitTheKeyCurve) {
  // ES384 signed by the P-384 key but naming the P-256 key's kid: wrong curve for that key.
  json::object header{{"kid", "ec-256"}};
  const auto token = make_token(Algorithm::es384, keys().ec384, good_claims(), header);
  EXPECT_EQ(Verifier(asymmetric_settings()).verify(token, kNowTime, *provider_keys()).reason,
            Reason::jwt_alg_not_allowed);
}

TEST(Verifier, JwkAlgRestrictsTheKey) {
  const auto set = key_set({public_jwk(keys().rsa, "RS384")});
  const Verifier verifier(asymmetric_settings());
  EXPECT_EQ(verifier.verify(make_token(Algorithm::rs256, keys().rsa, good_claims()), kNowTime, *set)
                .reason,
            Reason::jwt_alg_not_allowed);
  EXPECT_TRUE(
      verifier.verify(make_token(Algorithm::rs384, keys().rsa, good_claims()), kNowTime, *set)
          .ok());
}

TEST(Verifier, HmacSecretMustBeAtLeastTheHashLength) {
  const auto short_secret = make_secret("short", 32);
  const auto set = KeySet::from_secret(short_secret.secret, "short").keys;
  const Verifier verifier(symmetric_settings());
  EXPECT_TRUE(
      verifier.verify(make_token(Algorithm::hs256, short_secret, good_claims()), kNowTime, *set)
          .ok());
  EXPECT_EQ(
      verifier.verify(make_token(Algorithm::hs512, short_secret, good_claims()), kNowTime, *set)
          .reason,
      Reason::jwt_alg_not_allowed);
}

// ---- key selection ---------------------------------------------------------------------------

TEST(Verifier, TokenWithoutKidTriesKeysOfTheMatchingType) {
  TestKey rsa_no_kid = keys().rsa;
  rsa_no_kid.kid.clear();
  TestKey ec_no_kid = keys().ec256;
  ec_no_kid.kid.clear();
  const auto set = key_set({public_jwk(rsa_no_kid), public_jwk(ec_no_kid)});
  const Verifier verifier(asymmetric_settings());
  EXPECT_TRUE(
      verifier.verify(make_token(Algorithm::es256, ec_no_kid, good_claims()), kNowTime, *set).ok());
  const auto result =
      verifier.verify(make_token(Algorithm::rs256, rsa_no_kid, good_claims()), kNowTime, *set);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.principal->kid, "");
  // Keys that have a kid are candidates too when the token names none.
  EXPECT_TRUE(verifier
                  .verify(make_token(Algorithm::es256, ec_no_kid, good_claims()), kNowTime,
                          *key_set({public_jwk(keys().ec256)}))
                  .ok());
}

TEST(Verifier, TokenWithoutKidAndNoKeyOfItsTypeIsUnknownKid) {
  TestKey ed_no_kid = keys().ed;
  ed_no_kid.kid.clear();
  const auto set = key_set({public_jwk(keys().rsa)});
  EXPECT_EQ(Verifier(asymmetric_settings())
                .verify(make_token(Algorithm::eddsa, ed_no_kid, good_claims()), kNowTime, *set)
                .reason,
            Reason::jwt_unknown_kid);
}

TEST(Verifier, KeylessTokensTryAtMostABoundedNumberOfKeys) {
  std::vector<json::object> jwks;
  for (std::size_t i = 0; i < kMaxKeylessCandidates; ++i)
    jwks.push_back(public_jwk(make_ec("", "P-256")));
  TestKey signer = keys().ec256;
  signer.kid.clear();
  jwks.push_back(public_jwk(signer));  // the right key, one past the cap
  const auto set = key_set(jwks);
  EXPECT_EQ(Verifier(asymmetric_settings())
                .verify(make_token(Algorithm::es256, signer, good_claims()), kNowTime, *set)
                .reason,
            Reason::jwt_bad_signature);
}

// ---- claims ----------------------------------------------------------------------------------

class Claims : public ::testing::Test {
 protected:
  Reason verify(const json::object& claims, std::chrono::system_clock::time_point now = kNowTime) {
    return verifier_
        .verify(make_token(Algorithm::es256, keys().ec256, claims), now, *provider_keys())
        .reason;
  }
  Verifier verifier_{asymmetric_settings()};  // clock_skew 30s, required jti
};

TEST_F(Claims, ExpiryHonoursClockSkew) {
  auto claims = good_claims();
  claims["exp"] = kNow;
  EXPECT_EQ(verify(claims, at(kNow + 29)), Reason::none);
  EXPECT_EQ(verify(claims, at(kNow + 30)), Reason::jwt_expired);
  EXPECT_EQ(verify(claims, at(kNow + 10'000)), Reason::jwt_expired);
}

TEST_F(Claims, ExpIsRequiredUnlessTheProviderSaysOtherwise) {
  auto claims = good_claims();
  claims.erase("exp");
  EXPECT_EQ(verify(claims), Reason::jwt_missing_claim);
  auto settings = asymmetric_settings();
  settings.require_exp = false;
  EXPECT_TRUE(
      Verifier(settings)
          .verify(make_token(Algorithm::es256, keys().ec256, claims), kNowTime, *provider_keys())
          .ok());
}

TEST_F(Claims, NotBeforeHonoursClockSkew) {
  auto claims = good_claims();
  claims["nbf"] = kNow + 30;
  EXPECT_EQ(verify(claims), Reason::none);
  claims["nbf"] = kNow + 31;
  EXPECT_EQ(verify(claims), Reason::jwt_not_yet_valid);
}

TEST_F(Claims, IssuedAtInTheFutureIsRefused) {
  auto claims = good_claims();
  claims["iat"] = kNow + 30;
  EXPECT_EQ(verify(claims), Reason::none);
  claims["iat"] = kNow + 31;
  EXPECT_EQ(verify(claims), Reason::jwt_issued_in_future);
}

TEST_F(Claims, DatesMayBeFractionalButMustBeNumbers) {
  auto claims = good_claims();
  claims["exp"] = static_cast<double>(kNow) + 600.5;
  EXPECT_EQ(verify(claims), Reason::none);
  claims["exp"] = std::to_string(kNow + 600);
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
  claims["exp"] = 1e300;  // saturates: far future
  EXPECT_EQ(verify(claims), Reason::none);
  claims["exp"] = kNow + 600;
  claims["nbf"] = true;
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
}

TEST_F(Claims, IssuerMustMatchExactly) {
  auto claims = good_claims();
  claims["iss"] = "https://idp.bank.example/";
  EXPECT_EQ(verify(claims), Reason::jwt_wrong_issuer);
  claims["iss"] = "HTTPS://IDP.BANK.EXAMPLE";
  EXPECT_EQ(verify(claims), Reason::jwt_wrong_issuer);
  claims.erase("iss");
  EXPECT_EQ(verify(claims), Reason::jwt_missing_claim);
  claims["iss"] = json::array{kIssuer};
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
}

TEST_F(Claims, AudienceStringOrArrayMustShareAValue) {
  auto claims = good_claims();
  claims["aud"] = json::array{"other", kAudience};
  EXPECT_EQ(verify(claims), Reason::none);
  claims["aud"] = json::array{"other", "more"};
  EXPECT_EQ(verify(claims), Reason::jwt_wrong_audience);
  claims["aud"] = json::array{};
  EXPECT_EQ(verify(claims), Reason::jwt_wrong_audience);
  claims["aud"] = "core-banking-test";
  EXPECT_EQ(verify(claims), Reason::jwt_wrong_audience);
  claims["aud"] = 7;
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
  claims["aud"] = json::array{kAudience, 7};
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
  claims.erase("aud");
  EXPECT_EQ(verify(claims), Reason::jwt_missing_claim);
}

TEST_F(Claims, AnyConfiguredAudienceIsEnough) {
  auto settings = asymmetric_settings();
  settings.audiences = {"payments", "core-banking"};
  auto claims = good_claims();
  claims["aud"] = "payments";
  EXPECT_TRUE(
      Verifier(settings)
          .verify(make_token(Algorithm::es256, keys().ec256, claims), kNowTime, *provider_keys())
          .ok());
}

TEST_F(Claims, RequiredClaimsMustBePresentAndNotNull) {
  auto claims = good_claims();
  claims.erase("jti");
  EXPECT_EQ(verify(claims), Reason::jwt_missing_claim);
  claims["jti"] = nullptr;  // jti is a registered string claim: null is a wrong type
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
  claims["jti"] = "x";
  EXPECT_EQ(verify(claims), Reason::none);

  auto settings = asymmetric_settings();
  settings.required_claims = {"jti", "tenant"};
  const Verifier strict(settings);
  const auto with = [&](const json::object& c) {
    return strict.verify(make_token(Algorithm::es256, keys().ec256, c), kNowTime, *provider_keys())
        .reason;
  };
  EXPECT_EQ(with(claims), Reason::jwt_missing_claim);
  claims["tenant"] = nullptr;
  EXPECT_EQ(with(claims), Reason::jwt_missing_claim);
  claims["tenant"] = false;
  EXPECT_EQ(with(claims), Reason::none);
}

TEST_F(Claims, RegisteredStringClaimsMustBeStrings) {
  for (const char* name : {"sub", "jti"}) {
    auto claims = good_claims();
    claims[name] = 42;
    EXPECT_EQ(verify(claims), Reason::jwt_malformed) << name;
  }
}

TEST_F(Claims, ScopesComeFromScopeAndScp) {
  auto claims = good_claims();
  claims["scope"] = "b  a c";
  claims["scp"] = json::array{"d", "a"};
  const auto result = verifier_.verify(make_token(Algorithm::es256, keys().ec256, claims), kNowTime,
                                       *provider_keys());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.principal->scopes, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(result.principal->has_scope("d"));
  EXPECT_FALSE(result.principal->has_scope("e"));

  claims.erase("scope");
  claims["scp"] = "x y";
  const auto as_string = verifier_.verify(make_token(Algorithm::es256, keys().ec256, claims),
                                          kNowTime, *provider_keys());
  ASSERT_TRUE(as_string.ok());
  EXPECT_EQ(as_string.principal->scopes, (std::vector<std::string>{"x", "y"}));

  claims["scp"] = json::array{"x", 1};
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
  claims.erase("scp");
  claims["scope"] = json::array{"x"};
  EXPECT_EQ(verify(claims), Reason::jwt_malformed);
}

TEST_F(Claims, PrincipalCarriesTheClaims) {
  auto claims = good_claims();
  claims["amr"] = json::array{"pwd", "mfa"};
  const std::string token = make_token(Algorithm::es256, keys().ec256, claims);
  const auto result = verifier_.verify(token, kNowTime, *provider_keys());
  ASSERT_TRUE(result.ok());
  const Principal& p = *result.principal;
  EXPECT_EQ(p.subject, "alice");
  EXPECT_EQ(p.issuer, kIssuer);
  EXPECT_EQ(p.jti, "token-1");
  EXPECT_EQ(p.expires_at->time_since_epoch().count(), kNow + 600);
  EXPECT_EQ(p.issued_at->time_since_epoch().count(), kNow - 10);
  EXPECT_EQ(p.not_before->time_since_epoch().count(), kNow - 10);
  EXPECT_EQ(p.claims.at("amr"), (json::array{"pwd", "mfa"}));
  EXPECT_EQ(p.token_hash, token_hash_prefix(token));
  EXPECT_EQ(p.token_hash.size(), 12u);
}

// ---- settings ------------------------------------------------------------------------------

TEST(ProviderSettingsCheck, DefaultsOfAGoodProviderPass) {
  EXPECT_TRUE(Verifier::check(asymmetric_settings()).empty());
  EXPECT_TRUE(Verifier::check(symmetric_settings()).empty());
}

TEST(ProviderSettingsCheck, SymmetricAndAsymmetricNeverMix) {
  auto settings = asymmetric_settings();
  settings.algorithms = {Algorithm::rs256, Algorithm::hs256};
  EXPECT_EQ(Verifier::check(settings).size(), 1u);
  EXPECT_THROW(Verifier{settings}, std::invalid_argument);
}

TEST(ProviderSettingsCheck, EveryProblemIsReported) {
  ProviderSettings settings;
  settings.clock_skew = std::chrono::hours{1};
  settings.max_token_bytes = 10;
  settings.max_json_depth = 1000;
  settings.required_claims = {""};
  // name, issuer, audiences, algorithms, skew, size, depth, claim name
  EXPECT_EQ(Verifier::check(settings).size(), 8u);
}

TEST(ProviderSettingsCheck, FingerprintFollowsDecidingSettings) {
  const Verifier a(asymmetric_settings());
  const Verifier b(asymmetric_settings());
  auto other = asymmetric_settings();
  other.audiences.push_back("more");
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_NE(a.fingerprint(), Verifier(other).fingerprint());
}

// ---- logging -------------------------------------------------------------------------------

TEST(RejectionLog, NamesReasonHashAndVerifiedSubjectOnly) {
  const Verifier verifier(asymmetric_settings());
  auto claims = good_claims();
  claims["exp"] = kNow - 3600;
  const std::string expired = make_token(Algorithm::es256, keys().ec256, claims);
  const auto result = verifier.verify(expired, kNowTime, *provider_keys());
  ASSERT_EQ(result.reason, Reason::jwt_expired);
  const auto fields = rejection_log_fields("corp", result);
  EXPECT_EQ(fields.at("event"), "jwt_rejected");
  EXPECT_EQ(fields.at("provider"), "corp");
  EXPECT_EQ(fields.at("reason"), "jwt_expired");
  EXPECT_EQ(fields.at("sub"), "alice");
  EXPECT_EQ(fields.at("token"), json::value(token_hash_prefix(expired)));
  const std::string line = json::serialize(fields);
  for (std::string_view part = expired; !part.empty();) {
    const auto dot = part.find('.');
    EXPECT_EQ(line.find(part.substr(0, std::min<std::size_t>(dot, 16))), std::string::npos);
    if (dot == std::string_view::npos) break;
    part.remove_prefix(dot + 1);
  }

  // Forged: the payload says "alice" but nothing vouches for it, so no subject is logged.
  const std::string forged = make_token(Algorithm::es256, keys().attacker_ec, good_claims(),
                                        json::object{{"kid", "ec-256"}});
  const auto bad = verifier.verify(forged, kNowTime, *provider_keys());
  ASSERT_EQ(bad.reason, Reason::jwt_bad_signature);
  EXPECT_TRUE(bad.subject.empty());
  EXPECT_FALSE(rejection_log_fields("corp", bad).contains("sub"));
}

TEST(TokenHash, IsTwelveHexDigitsOfSha256) {
  // SHA-256("abc") = ba7816bf8f01cfea...
  EXPECT_EQ(token_hash_prefix(std::string_view("abc")), "ba7816bf8f01");
}

TEST(AlgorithmNames, AreExactJoseNames) {
  EXPECT_EQ(parse_algorithm("EdDSA"), Algorithm::eddsa);
  EXPECT_EQ(parse_algorithm("ES512"), Algorithm::es512);
  EXPECT_FALSE(parse_algorithm("rs256"));
  EXPECT_FALSE(parse_algorithm("none"));
  EXPECT_FALSE(parse_algorithm("ES256K"));
  EXPECT_FALSE(parse_algorithm(""));
  for (int i = 0; i <= static_cast<int>(Algorithm::hs512); ++i) {
    const auto algorithm = static_cast<Algorithm>(i);
    EXPECT_EQ(parse_algorithm(to_string(algorithm)), algorithm);
  }
}

}  // namespace
}  // namespace portcullis::auth
