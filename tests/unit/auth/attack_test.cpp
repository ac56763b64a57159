// The attack suite: every forged, replayed or malformed token is refused with the expected reason,
// and a valid token presented right after it still succeeds (no poisoned cache, no stuck state,
// no leftover OpenSSL errors).

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <boost/json.hpp>

#include "portcullis/auth/token_cache.hpp"
#include "portcullis/auth/verifier.hpp"
#include "unit/auth/jwt_test_support.hpp"

namespace portcullis::auth {
namespace {

using core::Reason;
using namespace testing;

ProviderSettings corp_settings() {
  ProviderSettings settings;
  settings.name = "corp";
  settings.issuer = std::string(kIssuer);
  settings.audiences = {std::string(kAudience)};
  settings.algorithms = {Algorithm::rs256, Algorithm::es256};  // as in the reference policy
  settings.required_claims = {"exp", "jti"};
  return settings;
}

std::string segment(std::string_view token, int index) {
  for (int i = 0; i < index; ++i)
    token.remove_prefix(token.find('.') + 1);
  return std::string(token.substr(0, token.find('.')));
}

class Attack : public ::testing::Test {
 protected:
  // The attack token is refused with `reason`, through the cache too; a valid token that follows
  // still passes, and a refusal leaves nothing on the OpenSSL error queue.
  void expect_refused(const std::string& token, Reason reason) {
    EXPECT_EQ(verifier_.verify(token, kNowTime, *keys_).reason, reason);
    EXPECT_EQ(verify_cached(verifier_, cache_, token, kNowTime, *keys_).reason, reason);
    EXPECT_EQ(ERR_peek_error(), 0u);
    const auto valid = verify_cached(verifier_, cache_, good_, kNowTime, *keys_);
    EXPECT_TRUE(valid.ok()) << "valid token refused after attack: "
                            << core::to_string(valid.reason);
    EXPECT_TRUE(verifier_.verify(fresh_token(), kNowTime, *keys_).ok());
  }

  std::string fresh_token() { return make_token(Algorithm::es256, keys().ec256, good_claims()); }

  Verifier verifier_{corp_settings()};
  std::shared_ptr<const KeySet> keys_ = provider_keys();
  VerifiedTokenCache cache_;
  std::string good_ = make_token(Algorithm::rs256, keys().rsa, good_claims());
};

TEST_F(Attack, AlgNoneInEveryCasing) {
  const std::string payload = b64url(good_claims());
  for (int mask = 0; mask < 16; ++mask) {
    std::string alg = "none";
    for (int i = 0; i < 4; ++i) {
      if (mask & (1 << i)) alg[i] = static_cast<char>(alg[i] - 32);
    }
    const std::string header = b64url(json::object{{"alg", alg}, {"typ", "JWT"}});
    expect_refused(header + "." + payload + ".", Reason::jwt_alg_not_allowed);
    // With a signature that is really the RS256 one of the same payload, still refused.
    expect_refused(header + "." + payload + "." + segment(good_, 2), Reason::jwt_alg_not_allowed);
  }
}

TEST_F(Attack, AlgMissingEmptyOrNotAString) {
  const std::string payload = b64url(good_claims());
  expect_refused(b64url(json::object{{"typ", "JWT"}}) + "." + payload + ".", Reason::jwt_malformed);
  expect_refused(b64url(json::object{{"alg", ""}}) + "." + payload + ".",
                 Reason::jwt_alg_not_allowed);
  expect_refused(b64url(json::object{{"alg", json::array{"RS256"}}}) + "." + payload + ".",
                 Reason::jwt_malformed);
  expect_refused(b64url(json::object{{"alg", nullptr}}) + "." + payload + ".",
                 Reason::jwt_malformed);
}

TEST_F(Attack, Hs256SignedWithTheRsaPublicKeyAsSecret) {
  // The classic confusion: the attacker knows the public key and uses its bytes as HMAC secret.
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, keys().rsa.pkey.get());
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::vector<std::string> secrets = {std::string(data, static_cast<std::size_t>(size))};
  BIO_free(bio);
  const auto jwk = public_jwk(keys().rsa);
  secrets.push_back(json::serialize(jwk));
  secrets.push_back(std::string(jwk.at("n").as_string()));
  for (const auto& secret : secrets) {
    TestKey forged;
    forged.secret = secret;
    forged.kid = "rsa-1";
    expect_refused(make_token(Algorithm::hs256, forged, good_claims()),
                   Reason::jwt_alg_not_allowed);
  }

  // Even a symmetric provider handed the RSA JWKS never lets the RSA key verify HS256.
  auto symmetric = corp_settings();
  symmetric.algorithms = {Algorithm::hs256};
  const Verifier hmac_verifier(symmetric);
  TestKey forged;
  forged.secret = secrets.front();
  forged.kid = "rsa-1";
  EXPECT_EQ(
      hmac_verifier.verify(make_token(Algorithm::hs256, forged, good_claims()), kNowTime, *keys_)
          .reason,
      Reason::jwt_alg_not_allowed);
  forged.kid.clear();
  EXPECT_EQ(
      hmac_verifier.verify(make_token(Algorithm::hs256, forged, good_claims()), kNowTime, *keys_)
          .reason,
      Reason::jwt_unknown_kid);
}

TEST_F(Attack, StrippedSignature) {
  const std::string unsigned_part = good_.substr(0, good_.rfind('.'));
  expect_refused(unsigned_part + ".", Reason::jwt_bad_signature);
  expect_refused(unsigned_part, Reason::jwt_malformed);
  // A truncated signature (re-encoded, so that only its length is wrong).
  const std::string full = sign(Algorithm::rs256, keys().rsa, unsigned_part);
  expect_refused(unsigned_part + "." + b64url(full.substr(0, full.size() - 3)),
                 Reason::jwt_bad_signature);
}

TEST_F(Attack, Es256WithZeroOrOutOfRangeRAndS) {
  const std::string header = b64url(json::object{{"alg", "ES256"}, {"kid", "ec-256"}});
  const std::string input = header + "." + b64url(good_claims());
  // r = s = 0 (the "psychic signature" of CVE-2022-21449).
  expect_refused(input + "." + b64url(std::string(64, '\0')), Reason::jwt_bad_signature);
  // r = s = n, the group order of P-256: outside 1..n-1.
  static constexpr char kOrder[] =
      "\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"
      "\xbc\xe6\xfa\xad\xa7\x17\x9e\x84\xf3\xb9\xca\xc2\xfc\x63\x25\x51";
  static_assert(sizeof(kOrder) == 33);
  const std::string order_bytes(kOrder, 32);  // embedded zeros: never through strlen
  expect_refused(input + "." + b64url(order_bytes + order_bytes), Reason::jwt_bad_signature);
  // A genuine r with s = 0.
  const std::string sig =
      sign(Algorithm::es256, keys().ec256, input).substr(0, 32) + std::string(32, '\0');
  expect_refused(input + "." + b64url(sig), Reason::jwt_bad_signature);
  // All 0xff: r, s above the order.
  expect_refused(input + "." + b64url(std::string(64, '\xff')), Reason::jwt_bad_signature);
  // DER instead of raw R || S is the wrong length and refused.
  expect_refused(input + "." + b64url(std::string(70, '\x30')), Reason::jwt_bad_signature);
}

TEST_F(Attack, EmbeddedJwkIsNeverUsed) {
  // Signed by the attacker, carrying the attacker's own public key in the header.
  json::object header{{"jwk", public_jwk(keys().attacker_ec)}};
  expect_refused(make_token(Algorithm::es256, keys().attacker_ec, good_claims(), header),
                 Reason::jwt_unknown_kid);  // kid "attacker" is not configured
  header["kid"] = "ec-256";
  expect_refused(make_token(Algorithm::es256, keys().attacker_ec, good_claims(), header),
                 Reason::jwt_bad_signature);
  TestKey no_kid = keys().attacker_ec;
  no_kid.kid.clear();
  expect_refused(make_token(Algorithm::es256, no_kid, good_claims(),
                            json::object{{"jwk", public_jwk(no_kid)}}),
                 Reason::jwt_bad_signature);
}

TEST_F(Attack, JkuX5uX5cAreNeverUsed) {
  // A local address the verifier would have to contact if it honoured these headers. Nothing in
  // the auth library opens a socket; the verdict comes from the configured keys alone.
  const std::string local = "http://127.0.0.1:9/jwks.json";
  const json::object pointers{{"jku", local},
                              {"x5u", local},
                              {"x5c", json::array{b64url(std::string("not a certificate"))}},
                              {"x5t", b64url(std::string(20, 'x'))}};
  json::object header = pointers;
  expect_refused(make_token(Algorithm::es256, keys().attacker_ec, good_claims(), header),
                 Reason::jwt_unknown_kid);
  header["kid"] = "ec-256";
  expect_refused(make_token(Algorithm::es256, keys().attacker_ec, good_claims(), header),
                 Reason::jwt_bad_signature);
  // The same pointers on a token signed by the configured key change nothing either.
  json::object honest = pointers;
  EXPECT_TRUE(verifier_
                  .verify(make_token(Algorithm::es256, keys().ec256, good_claims(), honest),
                          kNowTime, *keys_)
                  .ok());
}

TEST_F(Attack, UnknownKid) {
  TestKey stranger = keys().ec256;
  stranger.kid = "rotated-away";
  expect_refused(make_token(Algorithm::es256, stranger, good_claims()), Reason::jwt_unknown_kid);
  expect_refused(
      make_token(Algorithm::es256, keys().ec256, good_claims(), json::object{{"kid", ""}}),
      Reason::jwt_unknown_kid);
  expect_refused(
      make_token(Algorithm::es256, keys().ec256, good_claims(), json::object{{"kid", 7}}),
      Reason::jwt_malformed);
}

TEST_F(Attack, AnotherKeyWithTheSameKid) {
  expect_refused(make_token(Algorithm::rs256, keys().rsa_same_kid, good_claims()),
                 Reason::jwt_bad_signature);
}

TEST_F(Attack, AlgSwappedWithinTheFamily) {
  // An RS256 signature relabelled PS256 or RS384 (not allowed here) fails.
  const std::string payload = segment(good_, 1);
  const std::string sig = segment(good_, 2);
  expect_refused(
      b64url(json::object{{"alg", "RS384"}, {"kid", "rsa-1"}}) + "." + payload + "." + sig,
      Reason::jwt_alg_not_allowed);
  auto settings = corp_settings();
  settings.algorithms = {Algorithm::rs256, Algorithm::ps256};
  EXPECT_EQ(Verifier(settings)
                .verify(b64url(json::object{{"alg", "PS256"}, {"kid", "rsa-1"}}) + "." + payload +
                            "." + sig,
                        kNowTime, *keys_)
                .reason,
            Reason::jwt_bad_signature);
  // ES256 signature presented against the RSA kid.
  expect_refused(
      make_token(Algorithm::es256, keys().ec256, good_claims(), json::object{{"kid", "rsa-1"}}),
      Reason::jwt_alg_not_allowed);
}

TEST_F(Attack, CritNamingAnythingIsRefused) {
  expect_refused(make_token(Algorithm::es256, keys().ec256, good_claims(),
                            json::object{{"crit", json::array{"exp"}}, {"exp", 1}}),
                 Reason::jwt_crit_unsupported);
  expect_refused(make_token(Algorithm::es256, keys().ec256, good_claims(),
                            json::object{{"crit", json::array{"b64"}}, {"b64", false}}),
                 Reason::jwt_crit_unsupported);
  expect_refused(make_token(Algorithm::es256, keys().ec256, good_claims(),
                            json::object{{"crit", json::array{}}}),
                 Reason::jwt_malformed);
  expect_refused(
      make_token(Algorithm::es256, keys().ec256, good_claims(), json::object{{"crit", "exp"}}),
      Reason::jwt_malformed);
}

TEST_F(Attack, WrongIssuerOrAudience) {
  auto claims = good_claims();
  claims["iss"] = "https://evil.example";
  expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_wrong_issuer);
  claims = good_claims();
  claims["aud"] = "another-service";
  expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_wrong_audience);
}

TEST_F(Attack, ExpiredAndNotYetValid) {
  auto claims = good_claims();
  claims["exp"] = kNow - 31;
  expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_expired);
  claims = good_claims();
  claims["nbf"] = kNow + 3600;
  expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_not_yet_valid);
  claims = good_claims();
  claims["iat"] = kNow + 3600;
  expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_issued_in_future);
}

TEST_F(Attack, MissingRequiredClaims) {
  for (const char* name : {"exp", "jti", "iss", "aud"}) {
    auto claims = good_claims();
    claims.erase(name);
    expect_refused(make_token(Algorithm::es256, keys().ec256, claims), Reason::jwt_missing_claim);
  }
}

TEST_F(Attack, MalformedBase64) {
  const std::string h = segment(good_, 0), p = segment(good_, 1), s = segment(good_, 2);
  expect_refused(h + "=." + p + "." + s, Reason::jwt_malformed);       // padding
  expect_refused(h + "." + p + "==." + s, Reason::jwt_malformed);      // padding
  expect_refused(h + " ." + p + "." + s, Reason::jwt_malformed);       // whitespace
  expect_refused(h + ".\n" + p + "." + s, Reason::jwt_malformed);      // newline
  expect_refused(h + "." + p + "." + s + " ", Reason::jwt_malformed);  // trailing space
  std::string std_alphabet = s;
  for (char& c : std_alphabet) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  if (std_alphabet != s) expect_refused(h + "." + p + "." + std_alphabet, Reason::jwt_malformed);
  expect_refused(h + "." + p + "." + s.substr(0, s.size() - 1) + "+", Reason::jwt_malformed);
  expect_refused(h + "." + p + ".A", Reason::jwt_malformed);  // a length of 4k+1
  expect_refused(h + "%." + p + "." + s, Reason::jwt_malformed);
  // Non-canonical: "QQ" is "A"; "QR" decodes alike but has non-zero unused bits.
  expect_refused(b64url(json::object{{"alg", "ES256"}}).append("x") + "." + p + "." + s,
                 Reason::jwt_malformed);
}

TEST_F(Attack, NonCanonicalBase64IsRefusedEvenWhereItWouldDecodeAlike) {
  // Header ending in a 2-byte tail: flip an unused low bit of the last character.
  const std::string members = R"("alg":"ES256","kid":"ec-256"})";
  std::string header_json = "{";
  while ((header_json.size() + members.size()) % 3 != 1)
    header_json += ' ';
  header_json += members;
  const std::string token =
      make_raw_token(Algorithm::es256, keys().ec256, header_json, json::serialize(good_claims()));
  ASSERT_TRUE(verifier_.verify(token, kNowTime, *keys_).ok());
  std::string tweaked = token;
  const auto end = tweaked.find('.') - 1;
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  tweaked[end] = alphabet[alphabet.find(tweaked[end]) ^ 1];
  expect_refused(tweaked, Reason::jwt_malformed);
}

TEST_F(Attack, MalformedStructure) {
  expect_refused("", Reason::jwt_malformed);
  expect_refused(".", Reason::jwt_malformed);
  expect_refused("..", Reason::jwt_malformed);
  expect_refused(good_ + ".", Reason::jwt_malformed);     // four parts
  expect_refused(good_ + ".x.y", Reason::jwt_malformed);  // five parts (JWE shape)
  expect_refused("not-a-jwt-at-all", Reason::jwt_malformed);
}

TEST_F(Attack, MalformedJson) {
  const auto raw = [](std::string_view header, std::string_view payload) {
    return make_raw_token(Algorithm::es256, keys().ec256, header, payload);
  };
  const std::string good_header = R"({"alg":"ES256","kid":"ec-256"})";
  const std::string good_payload = json::serialize(good_claims());
  expect_refused(raw("not json", good_payload), Reason::jwt_malformed);
  expect_refused(raw(R"(["ES256"])", good_payload), Reason::jwt_malformed);
  expect_refused(raw(good_header + "x", good_payload), Reason::jwt_malformed);  // trailing bytes
  expect_refused(raw(R"({"alg":"ES256","kid":"ec-256",})", good_payload),
                 Reason::jwt_malformed);  // trailing comma
  expect_refused(raw(R"({"alg":"ES256",/*c*/"kid":"ec-256"})", good_payload),
                 Reason::jwt_malformed);  // comment
  expect_refused(raw(good_header, "[]"), Reason::jwt_malformed);
  expect_refused(raw(good_header, "{"), Reason::jwt_malformed);
  expect_refused(raw(good_header, ""), Reason::jwt_malformed);
  expect_refused(raw(good_header, std::string(R"({"sub":"\xff"})")), Reason::jwt_malformed);
  // Deeper than max_json_depth (10).
  std::string deep = R"({"iss":"https://idp.bank.example","x":)";
  for (int i = 0; i < 20; ++i)
    deep += "[";
  for (int i = 0; i < 20; ++i)
    deep += "]";
  deep += "}";
  expect_refused(raw(good_header, deep), Reason::jwt_malformed);
}

TEST_F(Attack, DuplicateNamesInHeaderOrPayload) {
  const std::string payload = json::serialize(good_claims());
  // Boost.JSON alone would keep the last "alg"; a second parser might keep the first.
  expect_refused(make_raw_token(Algorithm::es256, keys().ec256,
                                R"({"alg":"none","alg":"ES256","kid":"ec-256"})", payload),
                 Reason::jwt_malformed);
  expect_refused(make_raw_token(Algorithm::es256, keys().ec256,
                                R"({"alg":"ES256","kid":"x","kid":"ec-256"})", payload),
                 Reason::jwt_malformed);
  const std::string duplicated = concat(R"({"sub":"admin",)", payload.substr(1));
  expect_refused(make_raw_token(Algorithm::es256, keys().ec256, R"({"alg":"ES256","kid":"ec-256"})",
                                duplicated),
                 Reason::jwt_malformed);
  // Nested duplicates, and duplicates spelled with escapes.
  const std::string nested = concat(R"({"ctx":{"role":"user","role":"admin"},)", payload.substr(1));
  expect_refused(
      make_raw_token(Algorithm::es256, keys().ec256, R"({"alg":"ES256","kid":"ec-256"})", nested),
      Reason::jwt_malformed);
  const std::string escaped = concat(R"({"s\u0075b":"admin",)", payload.substr(1));
  expect_refused(
      make_raw_token(Algorithm::es256, keys().ec256, R"({"alg":"ES256","kid":"ec-256"})", escaped),
      Reason::jwt_malformed);
}

TEST_F(Attack, OversizedToken) {
  auto claims = good_claims();
  claims["padding"] = std::string(9000, 'a');
  const std::string big = make_token(Algorithm::es256, keys().ec256, claims);
  ASSERT_GT(big.size(), 8192u);
  expect_refused(big, Reason::jwt_too_large);
  expect_refused(std::string(1 << 20, 'A'), Reason::jwt_too_large);

  // Just under the cap is fine.
  claims["padding"] = "";
  const std::size_t base = make_token(Algorithm::es256, keys().ec256, claims).size();
  claims["padding"] = std::string((8192 - base) * 3 / 4, 'a');
  const std::string fits = make_token(Algorithm::es256, keys().ec256, claims);
  ASSERT_LE(fits.size(), 8192u);
  EXPECT_TRUE(verifier_.verify(fits, kNowTime, *keys_).ok());
}

TEST_F(Attack, ResignedHeaderBytesMustMatchExactly) {
  // Same JSON meaning, different bytes: the signature covers bytes, not meaning.
  const std::string original =
      make_raw_token(Algorithm::es256, keys().ec256, R"({"alg":"ES256","kid":"ec-256"})",
                     json::serialize(good_claims()));
  const std::string respaced = b64url(std::string(R"({ "alg":"ES256","kid":"ec-256"})")) + "." +
                               segment(original, 1) + "." + segment(original, 2);
  expect_refused(respaced, Reason::jwt_bad_signature);
}

}  // namespace
}  // namespace portcullis::auth

namespace portcullis::auth {
namespace {

using namespace testing;

TEST(AttackMutation, NoMutatedTokenVerifies) {
  const Verifier verifier(corp_settings());
  const auto keys_set = provider_keys();
  const std::string original = make_token(Algorithm::es256, keys().ec256, good_claims());
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00\xff";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);  // with the NUL byte
  std::uint64_t state = 0x9e3779b97f4a7c15ull;                   // fixed seed: reproducible
  const auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int i = 0; i < 3000; ++i) {
    std::string token = original;
    const int edits = 1 + static_cast<int>(next() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at_pos = next() % token.size();
      const char c = alphabet[next() % alphabet.size()];
      switch (next() % 3) {
        case 0:
          token[at_pos] = c;
          break;
        case 1:
          token.insert(token.begin() + static_cast<std::ptrdiff_t>(at_pos), c);
          break;
        default:
          token.erase(at_pos, 1);
          break;
      }
    }
    if (token == original) continue;
    const auto result = verifier.verify(token, kNowTime, *keys_set);
    EXPECT_FALSE(result.ok()) << token;
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_TRUE(verifier.verify(original, kNowTime, *keys_set).ok());
}

}  // namespace
}  // namespace portcullis::auth
