#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using testing::diagnostics_of;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kMinimal;
using ::testing::SizeIs;

class JwtProviderTest : public ::testing::Test {
 protected:
  JwtProviderTest() {
    dir_.write("keys/jwks.json", R"({"keys":[]})");
    dir_.write("keys/secret", std::string(48, 'k'));
  }
  Policy load(const std::string& text) { return load_policy_text(text, dir_ / "policy.yaml"); }
  std::vector<std::string> errors(const std::string& text) {
    return diagnostics_of(text, dir_.path());
  }
  static std::string policy(const std::string& provider, const std::string& route_auth = "none") {
    return std::string(kMinimal) + "jwt_providers:\n  corp:\n" + provider +
           "upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\nroutes:\n  - name: r\n"
           "    match: { path_prefix: /api }\n    upstream: core\n    auth: " +
           route_auth + "\n";
  }
  static constexpr const char* kGood =
      "    issuer: https://idp.bank.example\n    audiences: [core-banking]\n"
      "    jwks_file: keys/jwks.json\n";

  testing::TempDir dir_;
};

TEST_F(JwtProviderTest, ProviderAndRouteAuthLoadWithDefaults) {
  const Policy loaded =
      load(policy(kGood,
                  "{ jwt: corp, scopes: [accounts:read], claims: { amr: mfa, level: 2, "
                  "staff: true, code: '7' } }"));
  ASSERT_THAT(loaded.jwt_providers, SizeIs(1));
  const JwtProvider& corp = loaded.jwt_providers[0];
  EXPECT_EQ(corp.name, "corp");
  EXPECT_EQ(corp.issuer, "https://idp.bank.example");
  EXPECT_THAT(corp.audiences, ElementsAre("core-banking"));
  EXPECT_EQ(corp.jwks_file, (dir_ / "keys/jwks.json").string());
  EXPECT_THAT(corp.algorithms, ElementsAre("RS256", "ES256"));
  EXPECT_EQ(corp.clock_skew, std::chrono::seconds(30));
  EXPECT_EQ(corp.jwks_refresh, std::chrono::minutes(5));
  EXPECT_TRUE(corp.require_exp);
  EXPECT_EQ(corp.token_header, "Authorization");
  EXPECT_EQ(corp.token_scheme, "Bearer");
  ASSERT_TRUE(loaded.routes[0].auth);
  const RouteAuth& auth = *loaded.routes[0].auth;
  EXPECT_EQ(auth.provider_index, 0u);
  EXPECT_THAT(auth.scopes, ElementsAre("accounts:read"));
  ASSERT_THAT(auth.claims, SizeIs(4));
  EXPECT_EQ(auth.claims[0].kind, ClaimRequirement::Kind::string);
  EXPECT_EQ(auth.claims[1].kind, ClaimRequirement::Kind::integer);
  EXPECT_EQ(auth.claims[2].kind, ClaimRequirement::Kind::boolean);
  EXPECT_EQ(auth.claims[3].kind, ClaimRequirement::Kind::string);  // quoted stays a string
  EXPECT_EQ(auth.claims[3].value, "7");
}

TEST_F(JwtProviderTest, AlgNoneIsRefusedInAnyCase) {
  for (const std::string none : {"none", "None", "NONE"}) {
    EXPECT_THAT(errors(policy(std::string(kGood) + "    algorithms: [ES256, " + none + "]\n")),
                ElementsAre(HasSubstr("'none' is never accepted")))
        << none;
  }
}

TEST_F(JwtProviderTest, SymmetricAndAsymmetricNeverMix) {
  EXPECT_THAT(errors(policy(std::string(kGood) + "    algorithms: [RS256, HS256]\n")),
              ElementsAre(HasSubstr("either symmetric or asymmetric")));
  EXPECT_THAT(errors(policy("    issuer: i\n    audiences: [a]\n    secret_file: keys/secret\n"
                            "    algorithms: [ES256]\n")),
              ElementsAre(HasSubstr("secret_file works with HS256/384/512 only")));
  const Policy hmac =
      load(policy("    issuer: i\n    audiences: [a]\n    secret_file: keys/secret\n"));
  EXPECT_THAT(hmac.jwt_providers[0].algorithms, ElementsAre("HS256"));
}

TEST_F(JwtProviderTest, ExactlyOneKeySource) {
  EXPECT_THAT(errors(policy("    issuer: i\n    audiences: [a]\n")),
              ElementsAre(HasSubstr("give exactly one of jwks_file, jwks_url and secret_file (0")));
  EXPECT_THAT(errors(policy(std::string(kGood) + "    jwks_url: https://idp.bank.example/keys\n")),
              ElementsAre(HasSubstr("(2 given)")));
  EXPECT_THAT(errors(policy("    issuer: i\n    audiences: [a]\n"
                            "    jwks_url: http://idp.bank.example/keys\n")),
              ElementsAre(HasSubstr("must be an https:// URL")));
}

TEST_F(JwtProviderTest, RequiredFieldsAndUnknownKeys) {
  const auto found = errors(policy("    jwks_file: keys/jwks.json\n    audince: [x]\n"));
  ASSERT_THAT(found, SizeIs(3));
  EXPECT_THAT(found[0], HasSubstr("jwt_providers.corp: issuer is required"));
  EXPECT_THAT(found[1], HasSubstr("jwt_providers.corp: audiences is required"));
  EXPECT_THAT(found[2], HasSubstr("unknown key 'audince'"));
}

TEST_F(JwtProviderTest, TokenLocationAndForwardedClaims) {
  const Policy loaded =
      load(policy(std::string(kGood) +
                  "    token: { cookie: session }\n"
                  "    forward_claims: { sub: X-Auth-Subject, scope: X-Auth-Scope }\n"));
  EXPECT_EQ(loaded.jwt_providers[0].token_cookie, "session");
  ASSERT_THAT(loaded.jwt_providers[0].forward_claims, SizeIs(2));
  EXPECT_EQ(loaded.jwt_providers[0].forward_claims[0].second, "X-Auth-Subject");
  EXPECT_THAT(errors(policy(std::string(kGood) + "    token: { cookie: s, header: X-Token }\n")),
              ElementsAre(HasSubstr("either cookie, or header")));
  EXPECT_THAT(errors(policy(std::string(kGood) + "    forward_claims: { sub: Content-Length }\n")),
              ElementsAre(HasSubstr("cannot carry a claim")));
}

TEST_F(JwtProviderTest, MissingKeyFileIsReportedAtItsKey) {
  const auto found =
      errors(policy("    issuer: i\n    audiences: [a]\n    jwks_file: keys/absent.json\n"));
  ASSERT_THAT(found, SizeIs(1));
  EXPECT_THAT(found[0], HasSubstr("policy.yaml:10:16: jwt_providers.corp.jwks_file"));
}

}  // namespace
}  // namespace portcullis::config
