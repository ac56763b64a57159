// Files a policy names: relative paths, certificates and keys, CA bundles, token files.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using testing::diagnostics_of;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::make_ec_key;
using testing::make_rsa_key;
using testing::self_signed_pem;
using ::testing::SizeIs;
using testing::write_key_pair;

class FilesTest : public ::testing::Test {
 protected:
  // The policy lives in dir_/conf, so relative paths resolve against that folder.
  std::filesystem::path policy_file() const { return dir_ / "conf" / "policy.yaml"; }
  Policy load(const std::string& text) { return load_policy_text(text, policy_file()); }
  std::vector<std::string> errors(const std::string& text) {
    return diagnostics_of(text, dir_ / "conf");
  }
  std::string error(const std::string& text) {
    const auto found = errors(text);
    EXPECT_THAT(found, SizeIs(1)) << text;
    return found.empty() ? std::string() : found.front();
  }

  // A TLS listener with one certificate pair and optional extra lines under `tls:`.
  static std::string tls_listener(const std::string& cert, const std::string& key,
                                  const std::string& tls_extra = "") {
    return "version: 1\n"
           "server:\n"
           "  listen:\n"
           "    - address: \"127.0.0.1:0\"\n"
           "      tls:\n"
           "        certificates:\n"
           "          - cert: \"" +
           cert +
           "\"\n"
           "            key: \"" +
           key + "\"\n" + tls_extra;
  }

  testing::TempDir dir_;
};

TEST_F(FilesTest, RelativeCertificatePathsResolveAgainstThePolicyFolder) {
  write_key_pair(dir_, "conf/tls/server.crt", "conf/tls/server.key");
  const Policy policy = load(tls_listener("tls/server.crt", "./tls/../tls/server.key"));
  ASSERT_THAT(policy.server.listen, SizeIs(1));
  const Listener& listener = policy.server.listen[0];
  ASSERT_TRUE(listener.tls);
  EXPECT_FALSE(listener.redirect_https);
  ASSERT_THAT(listener.tls->certificates, SizeIs(1));
  const CertificateFiles& files = listener.tls->certificates[0];
  EXPECT_EQ(files.cert_file, (dir_ / "conf/tls/server.crt").string());
  EXPECT_EQ(files.key_file, (dir_ / "conf/tls/server.key").string());
  EXPECT_EQ(files.location.file, policy_file().string());
  EXPECT_EQ(files.location.line, 7);
  EXPECT_EQ(files.location.column, 13);
  EXPECT_EQ(listener.location.line, 4);
  EXPECT_EQ(listener.location.column, 7);
  EXPECT_EQ(listener.tls->min_version, TlsVersion::tls1_2);
  EXPECT_EQ(listener.tls->ciphers, "");
  EXPECT_EQ(listener.tls->client_ca, "");
  EXPECT_EQ(listener.tls->client_auth, ClientAuth::none);
}

TEST_F(FilesTest, AbsolutePathsAreKept) {
  write_key_pair(dir_, "elsewhere/a.crt", "elsewhere/a.key");
  const Policy policy =
      load(tls_listener((dir_ / "elsewhere/a.crt").string(), (dir_ / "elsewhere/a.key").string()));
  EXPECT_EQ(policy.server.listen[0].tls->certificates[0].cert_file,
            (dir_ / "elsewhere/a.crt").string());
}

TEST_F(FilesTest, SeveralCertificatesKeepTheirOrder) {
  write_key_pair(dir_, "conf/a.crt", "conf/a.key");
  write_key_pair(dir_, "conf/b.crt", "conf/b.key");
  const Policy policy = load(tls_listener("a.crt", "a.key") +
                             "          - { cert: b.crt, key: b.key }\n"
                             "        min_version: TLS1.3\n");
  const auto& certificates = policy.server.listen[0].tls->certificates;
  ASSERT_THAT(certificates, SizeIs(2));
  EXPECT_EQ(certificates[0].cert_file, (dir_ / "conf/a.crt").string());
  EXPECT_EQ(certificates[1].key_file, (dir_ / "conf/b.key").string());
  EXPECT_EQ(certificates[1].location.line, 9);
  EXPECT_EQ(policy.server.listen[0].tls->min_version, TlsVersion::tls1_3);
}

TEST_F(FilesTest, CertificateChainFileIsAccepted) {
  const auto leaf = make_ec_key();
  const auto other = make_ec_key();
  dir_.write("conf/chain.crt", self_signed_pem(leaf.get()) + self_signed_pem(other.get(), "ca"));
  dir_.write("conf/leaf.key", testing::key_pem(leaf.get()));
  EXPECT_THAT(errors(tls_listener("chain.crt", "leaf.key")), IsEmpty());
}

TEST_F(FilesTest, MissingFilesAreReportedAtTheirKeys) {
  const auto found = errors(tls_listener("nope.crt", "nope.key"));
  const std::string conf = (dir_ / "conf").string();
  EXPECT_THAT(found, ElementsAre("policy.yaml:7:19: server.listen[0].tls.certificates[0].cert: "
                                 "cannot read '" +
                                     conf + "/nope.crt': No such file or directory",
                                 "policy.yaml:8:18: server.listen[0].tls.certificates[0].key: "
                                 "cannot read '" +
                                     conf + "/nope.key': No such file or directory"));
}

TEST_F(FilesTest, GarbageIsNotACertificateOrKey) {
  dir_.write("conf/bad.crt", "not a certificate\n");
  dir_.write("conf/bad.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  const auto found = errors(tls_listener("bad.crt", "bad.key"));
  ASSERT_THAT(found, SizeIs(2));
  EXPECT_THAT(found[0], HasSubstr("certificates[0].cert: no PEM certificate found in"));
  EXPECT_THAT(found[1], HasSubstr("certificates[0].key: no PEM private key found in"));

  dir_.write("conf/empty.crt", "");
  write_key_pair(dir_, "conf/ok.crt", "conf/ok.key");
  EXPECT_THAT(error(tls_listener("empty.crt", "ok.key")), HasSubstr("no PEM certificate found"));
  // The key where the certificate belongs, and the other way round.
  EXPECT_THAT(
      errors(tls_listener("ok.key", "ok.crt")),
      ElementsAre(HasSubstr("no PEM certificate found"), HasSubstr("no PEM private key found")));
}

TEST_F(FilesTest, DamagedSecondCertificateOfAChainIsRefused) {
  const auto key = make_ec_key();
  dir_.write("conf/chain.crt",
             self_signed_pem(key.get()) +
                 "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  dir_.write("conf/leaf.key", testing::key_pem(key.get()));
  EXPECT_THAT(error(tls_listener("chain.crt", "leaf.key")),
              HasSubstr("certificate 2 of the bundle is not a valid PEM certificate"));
}

TEST_F(FilesTest, KeyMustMatchTheCertificate) {
  const auto one = make_ec_key();
  const auto two = make_ec_key();
  dir_.write("conf/one.crt", self_signed_pem(one.get()));
  dir_.write("conf/two.key", testing::key_pem(two.get()));
  EXPECT_EQ(error(tls_listener("one.crt", "two.key")),
            "policy.yaml:8:18: server.listen[0].tls.certificates[0].key: private key does not "
            "match the certificate in '" +
                (dir_ / "conf/one.crt").string() + "'");
}

TEST_F(FilesTest, EncryptedKeyIsRefusedWithoutPrompting) {
  const auto key = make_ec_key();
  dir_.write("conf/a.crt", self_signed_pem(key.get()));
  dir_.write("conf/a.key", testing::key_pem(key.get(), "secret"));
  EXPECT_THAT(error(tls_listener("a.crt", "a.key")),
              HasSubstr("certificates[0].key: private key in '" + (dir_ / "conf/a.key").string() +
                        "' is encrypted"));
}

TEST_F(FilesTest, CertificateTheTlsLayerWouldRefuseIsRefusedAtLoad) {
  const auto weak = make_rsa_key(512);
  ASSERT_TRUE(weak);
  dir_.write("conf/weak.crt", self_signed_pem(weak.get()));
  dir_.write("conf/weak.key", testing::key_pem(weak.get()));
  EXPECT_THAT(error(tls_listener("weak.crt", "weak.key")),
              HasSubstr("certificates[0].cert: certificate refused by OpenSSL"));
}

TEST_F(FilesTest, A2048BitRsaCertificateIsAccepted) {
  const auto key = make_rsa_key(2048);
  dir_.write("conf/rsa.crt", self_signed_pem(key.get()));
  dir_.write("conf/rsa.key", testing::key_pem(key.get()));
  EXPECT_THAT(errors(tls_listener("rsa.crt", "rsa.key")), IsEmpty());
}

TEST_F(FilesTest, TlsNeedsCertificates) {
  const std::string head =
      "version: 1\nserver:\n  listen:\n    - address: \"127.0.0.1:0\"\n      tls:\n";
  EXPECT_EQ(error(head + "        min_version: TLS1.2\n"),
            "policy.yaml:6:9: server.listen[0].tls: certificates is required (at least one cert "
            "and key)");
  EXPECT_THAT(error(head + "        certificates: []\n"),
              HasSubstr("server.listen[0].tls.certificates: at least one certificate is required"));
  EXPECT_THAT(error(head + "        certificates: [{ cert: a.crt }]\n"),
              HasSubstr("server.listen[0].tls.certificates[0]: key is required"));
  EXPECT_THAT(error(head + "        certificates: [{ key: a.key }]\n"),
              HasSubstr("server.listen[0].tls.certificates[0]: cert is required"));
  EXPECT_THAT(error(head + "        certificates: [{ cert: \"\", key: a.key }]\n"),
              HasSubstr("certificates[0].cert: must name a file"));
  EXPECT_THAT(error("version: 1\nserver:\n  listen:\n    - address: \"127.0.0.1:0\"\n      tls: "
                    "true\n"),
              HasSubstr("server.listen[0].tls: expected a mapping"));
}

TEST_F(FilesTest, MinVersionAndCiphers) {
  write_key_pair(dir_, "conf/a.crt", "conf/a.key");
  const Policy policy =
      load(tls_listener("a.crt", "a.key", "        ciphers: \"ECDHE+AESGCM:ECDHE+CHACHA20\"\n"));
  EXPECT_EQ(policy.server.listen[0].tls->ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
  EXPECT_THAT(error(tls_listener("a.crt", "a.key", "        min_version: TLS1.1\n")),
              HasSubstr("server.listen[0].tls.min_version: expected one of TLS1.2 | TLS1.3, got "
                        "'TLS1.1'"));
  EXPECT_THAT(error(tls_listener("a.crt", "a.key", "        ciphers: \"NOT-A-CIPHER\"\n")),
              HasSubstr("server.listen[0].tls.ciphers: OpenSSL knows none of the ciphers in "
                        "'NOT-A-CIPHER'"));
}

TEST_F(FilesTest, ClientCertificates) {
  write_key_pair(dir_, "conf/a.crt", "conf/a.key");
  const auto ca = make_ec_key();
  dir_.write("conf/clients.pem", self_signed_pem(ca.get(), "client ca"));
  const Policy policy = load(tls_listener(
      "a.crt", "a.key", "        client_ca: clients.pem\n        client_auth: required\n"));
  EXPECT_EQ(policy.server.listen[0].tls->client_ca, (dir_ / "conf/clients.pem").string());
  EXPECT_EQ(policy.server.listen[0].tls->client_auth, ClientAuth::required);
  EXPECT_EQ(load(tls_listener("a.crt", "a.key",
                              "        client_ca: clients.pem\n        client_auth: optional\n"))
                .server.listen[0]
                .tls->client_auth,
            ClientAuth::optional);

  EXPECT_THAT(error(tls_listener("a.crt", "a.key", "        client_auth: required\n")),
              HasSubstr("server.listen[0].tls.client_auth: required needs client_ca"));
  EXPECT_THAT(error(tls_listener("a.crt", "a.key",
                                 "        client_ca: \"\"\n        client_auth: optional\n")),
              HasSubstr("client_auth: optional needs client_ca"));
  EXPECT_THAT(error(tls_listener("a.crt", "a.key", "        client_auth: yes\n")),
              HasSubstr("expected one of none | optional | required"));
  dir_.write("conf/junk.pem", "junk");
  EXPECT_THAT(error(tls_listener("a.crt", "a.key",
                                 "        client_ca: junk.pem\n        client_auth: required\n")),
              HasSubstr("server.listen[0].tls.client_ca: no PEM certificate found in"));
  EXPECT_THAT(error(tls_listener("a.crt", "a.key",
                                 "        client_ca: none.pem\n        client_auth: required\n")),
              HasSubstr("server.listen[0].tls.client_ca: cannot read"));
}

TEST_F(FilesTest, AdminTokenFile) {
  const std::string base =
      "version: 1\nserver:\n  listen: [{ address: \"127.0.0.1:0\", redirect_https: true }]\n";
  dir_.write("conf/secrets/admin.token", "s3cr3t-token\n");
  EXPECT_EQ(load(base + "  admin: { token_file: secrets/admin.token }\n").server.admin.token_file,
            (dir_ / "conf/secrets/admin.token").string());
  EXPECT_EQ(load(base + "  admin: { token_file: \"\" }\n").server.admin.token_file, "");

  dir_.write("conf/blank.token", " \n\t\n");
  EXPECT_EQ(error(base + "  admin: { token_file: blank.token }\n"),
            "policy.yaml:4:24: server.admin.token_file: '" + (dir_ / "conf/blank.token").string() +
                "' is empty");
  dir_.write("conf/empty.token", "");
  EXPECT_THAT(error(base + "  admin: { token_file: empty.token }\n"), HasSubstr("is empty"));
  EXPECT_THAT(error(base + "  admin: { token_file: missing.token }\n"),
              HasSubstr("server.admin.token_file: cannot read"));
  EXPECT_THAT(error(base + "  admin: { token_file: secrets }\n"),
              HasSubstr("server.admin.token_file: '" + (dir_ / "conf/secrets").string() +
                        "' is not a regular file"));
}

TEST_F(FilesTest, UpstreamCaFile) {
  const std::string base =
      "version: 1\nserver:\n  listen: [{ address: \"127.0.0.1:0\", redirect_https: true }]\n"
      "upstreams:\n  core:\n    endpoints: [\"10.0.0.1:443\"]\n";
  const auto ca = make_ec_key();
  dir_.write("upstream-ca.pem", self_signed_pem(ca.get(), "upstream ca"));
  const Policy policy = load(base + "    tls: { enabled: true, ca_file: ../upstream-ca.pem }\n");
  EXPECT_EQ(policy.upstreams[0].tls.ca_file, (dir_ / "upstream-ca.pem").string());
  EXPECT_TRUE(policy.upstreams[0].tls.enabled);

  dir_.write("conf/junk.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  EXPECT_THAT(error(base + "    tls: { enabled: true, ca_file: junk.pem }\n"),
              HasSubstr("policy.yaml:7:36: upstreams.core.tls.ca_file: no PEM certificate found"));
  EXPECT_THAT(error(base + "    tls: { enabled: true, ca_file: gone.pem }\n"),
              HasSubstr("upstreams.core.tls.ca_file: cannot read"));
}

TEST_F(FilesTest, EveryFileProblemIsReportedAtOnce) {
  const std::string text =
      "version: 1\n"
      "server:\n"
      "  listen:\n"
      "    - address: \"127.0.0.1:0\"\n"
      "      tls:\n"
      "        certificates: [{ cert: a.crt, key: a.key }]\n"
      "        client_ca: ca.pem\n"
      "        client_auth: required\n"
      "  admin: { token_file: token }\n"
      "upstreams:\n"
      "  core: { endpoints: [\"127.0.0.1:1\"], tls: { ca_file: up.pem } }\n";
  const auto found = errors(text);
  ASSERT_THAT(found, SizeIs(5));
  EXPECT_THAT(found[0], HasSubstr("policy.yaml:6:32: server.listen[0].tls.certificates[0].cert"));
  EXPECT_THAT(found[1], HasSubstr("policy.yaml:6:44: server.listen[0].tls.certificates[0].key"));
  EXPECT_THAT(found[2], HasSubstr("policy.yaml:7:20: server.listen[0].tls.client_ca"));
  EXPECT_THAT(found[3], HasSubstr("policy.yaml:9:24: server.admin.token_file"));
  EXPECT_THAT(found[4], HasSubstr("policy.yaml:11:55: upstreams.core.tls.ca_file"));
}

}  // namespace
}  // namespace portcullis::config
