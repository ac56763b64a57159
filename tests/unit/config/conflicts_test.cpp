// Two keys that cannot go together: the error stands at one of them and names the other's line,
// so an operator finds both without searching.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using testing::diagnostics_of;
using testing::kMinimal;
using ::testing::SizeIs;

class ConflictTest : public ::testing::Test {
 protected:
  ConflictTest() {
    dir_.write("keys/jwks.json", R"({"keys":[]})");
    dir_.write("keys/secret", std::string(48, 'k'));
  }
  std::string error(const std::string& text) {
    const auto found = diagnostics_of(text, dir_.path());
    EXPECT_THAT(found, SizeIs(1)) << text;
    return found.empty() ? std::string() : found.front();
  }
  // A provider `corp` whose keys start on line 8.
  static std::string provider(const std::string& keys) {
    return std::string(kMinimal) + "jwt_providers:\n  corp:\n" + keys;
  }

  testing::TempDir dir_;
};

TEST_F(ConflictTest, PathAndPathPrefix) {
  const std::string head = std::string(kMinimal) +
                           "upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\n"
                           "routes:\n  - name: r\n    upstream: core\n    match:\n";
  EXPECT_EQ(error(head + "      path_prefix: /a\n      path: /b\n"),
            "policy.yaml:12:13: routes[0].match: give path or path_prefix, not both (path_prefix "
            "is at line 11)");
  EXPECT_EQ(error(head + "      path: /b\n      path_prefix: /a\n"),
            "policy.yaml:12:20: routes[0].match: give path or path_prefix, not both (path is at "
            "line 11)");
}

TEST_F(ConflictTest, TlsAndRedirectOnOneListener) {
  testing::write_key_pair(dir_, "a.crt", "a.key");
  EXPECT_EQ(error("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      tls:\n"
                  "        certificates: [{ cert: a.crt, key: a.key }]\n"
                  "      redirect_https: true\n"),
            "policy.yaml:7:23: server.listen[0]: a listener has either tls or redirect_https: "
            "true, not both (tls is at line 5)");
}

TEST_F(ConflictTest, TwoKeySources) {
  EXPECT_EQ(error(provider("    issuer: i\n    audiences: [a]\n    jwks_file: keys/jwks.json\n"
                           "    secret_file: keys/secret\n    algorithms: [HS256]\n")),
            "policy.yaml:11:5: jwt_providers.corp: give exactly one of jwks_file, jwks_url and "
            "secret_file (2 given); also given: jwks_file at line 10");
  EXPECT_EQ(error(provider("    jwks_url: https://idp.bank.example/keys\n    issuer: i\n"
                           "    audiences: [a]\n    jwks_file: keys/jwks.json\n")),
            "policy.yaml:11:5: jwt_providers.corp: give exactly one of jwks_file, jwks_url and "
            "secret_file (2 given); also given: jwks_url at line 8");
}

TEST_F(ConflictTest, CookieAndHeader) {
  EXPECT_EQ(error(provider("    issuer: i\n    audiences: [a]\n    jwks_file: keys/jwks.json\n"
                           "    token:\n      header: X-Token\n      cookie: session\n")),
            "policy.yaml:13:15: jwt_providers.corp.token: give either cookie, or header (and "
            "scheme), not both (header is at line 12)");
}

TEST_F(ConflictTest, SecretFileAndPublicKeyAlgorithms) {
  EXPECT_EQ(error(provider("    issuer: i\n    audiences: [a]\n    secret_file: keys/secret\n"
                           "    algorithms: [ES256]\n")),
            "policy.yaml:11:17: jwt_providers.corp: secret_file works with HS256/384/512 only "
            "(secret_file is at line 10)");
}

TEST_F(ConflictTest, SameSiteNoneAndInsecureCookies) {
  EXPECT_EQ(error(std::string(kMinimal) +
                  "headers:\n  cookies:\n    secure: false\n    same_site: None\n"),
            "policy.yaml:9:16: headers.cookies.same_site: None needs secure: true (browsers refuse "
            "it otherwise); secure: false is at line 8");
}

TEST_F(ConflictTest, ClientAuthWithAnEmptyClientCa) {
  testing::write_key_pair(dir_, "a.crt", "a.key");
  EXPECT_EQ(error("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      tls:\n"
                  "        certificates: [{ cert: a.crt, key: a.key }]\n"
                  "        client_ca: \"\"\n        client_auth: required\n"),
            "policy.yaml:8:22: server.listen[0].tls.client_auth: required needs client_ca (the CA "
            "bundle client certificates are checked against); client_ca is empty at line 7");
}

}  // namespace
}  // namespace portcullis::config
