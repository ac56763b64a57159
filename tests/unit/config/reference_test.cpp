// conf/portcullis.yaml is the annotated reference policy: it must load, show the defaults, and
// keep state across restarts.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"
#include "unit/config/contract_example.hpp"

namespace portcullis::config {
namespace {

using testing::diagnostics_of;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::string reference_text() {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "../../../conf/portcullis.yaml";
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every key path of a YAML document: "server.listen[].tls.min_version", "routes[].auth.jwt".
void collect_keys(const YAML::Node& node, const std::string& path, std::set<std::string>& out) {
  if (node.IsMap()) {
    for (const auto& item : node) {
      const std::string key = path.empty() ? item.first.Scalar() : path + "." + item.first.Scalar();
      out.insert(key);
      collect_keys(item.second, key, out);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node)
      collect_keys(item, path + "[]", out);
  }
}

std::set<std::string> keys_of(const std::string& text) {
  std::set<std::string> keys;
  collect_keys(YAML::Load(text), "", keys);
  return keys;
}

class ReferencePolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = reference_text();
    dir_.write("conf/portcullis.yaml", text_);
    write_shipped_schema();
    std::filesystem::create_directories(dir_ / "conf/state");  // shipped in the repository
  }
  // What scripts/dev-cert generates (certificate, key, JWKS), plus the schema shipped in conf/.
  void write_dev_certificate() {
    testing::write_key_pair(dir_, "conf/tls/dev.crt", "conf/tls/dev.key");
    dir_.write("conf/keys/jwks.json", R"({"keys":[]})");
  }
  void write_shipped_schema() {
    const auto path =
        std::filesystem::path(__FILE__).parent_path() / "../../../conf/schemas/login.json";
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    dir_.write("conf/schemas/login.json", text.str());
  }

  testing::TempDir dir_;
  std::string text_;
};

TEST_F(ReferencePolicyTest, LoadsWithTheDevCertificate) {
  write_dev_certificate();
  const Policy policy = load_policy(dir_ / "conf/portcullis.yaml");

  ASSERT_THAT(policy.server.listen, SizeIs(2));
  const Listener& https = policy.server.listen[0];
  EXPECT_EQ(https.address.text, "0.0.0.0:8443");
  ASSERT_TRUE(https.tls);
  ASSERT_THAT(https.tls->certificates, SizeIs(1));
  EXPECT_EQ(https.tls->certificates[0].cert_file, (dir_ / "conf/tls/dev.crt").string());
  EXPECT_EQ(https.tls->certificates[0].key_file, (dir_ / "conf/tls/dev.key").string());
  const Listener& plain = policy.server.listen[1];
  EXPECT_EQ(plain.address.text, "0.0.0.0:8080");
  EXPECT_TRUE(plain.redirect_https);
  EXPECT_FALSE(plain.tls);
  EXPECT_EQ(policy.server.admin.address.text, "127.0.0.1:9901");

  ASSERT_THAT(policy.upstreams, SizeIs(1));
  EXPECT_EQ(policy.upstreams[0].name, "core");
  ASSERT_THAT(policy.upstreams[0].endpoints, SizeIs(1));
  EXPECT_EQ(policy.upstreams[0].endpoints[0].text, "127.0.0.1:9000");

  ASSERT_THAT(policy.routes, SizeIs(4));
  const Route& login = policy.routes[0];
  EXPECT_EQ(login.name, "login");
  EXPECT_THAT(login.match.methods, ElementsAre("POST"));
  ASSERT_TRUE(login.validate);
  EXPECT_THAT(login.validate->content_types, ElementsAre("application/json"));
  EXPECT_EQ(login.validate->max_body_bytes, 4096u);
  EXPECT_EQ(login.validate->json_schema, (dir_ / "conf/schemas/login.json").string());
  EXPECT_FALSE(login.auth);
  const Route& accounts = policy.routes[1];
  ASSERT_TRUE(accounts.auth);
  EXPECT_EQ(accounts.auth->provider, "corp");
  EXPECT_THAT(accounts.auth->scopes, ElementsAre("accounts:read"));
  ASSERT_THAT(policy.jwt_providers, SizeIs(1));
  EXPECT_EQ(policy.jwt_providers[0].issuer, "https://idp.bank.example");
  EXPECT_THAT(policy.jwt_providers[0].required_claims, ElementsAre("exp", "jti"));
  EXPECT_EQ(policy.jwt_providers[0].forward_claims.size(), 2u);
  EXPECT_EQ(policy.routes[2].name, "api");
  EXPECT_EQ(policy.routes[2].match.path_prefix, "/api");
  EXPECT_EQ(policy.routes[3].name, "health");
  EXPECT_EQ(policy.routes[3].match.path, "/health");
  EXPECT_THAT(policy.routes[3].match.methods, ElementsAre("GET"));
  EXPECT_EQ(policy.routes[3].upstream_index, 0u);
}

// The reference shows every default: loading it must give the same values as leaving keys out.
TEST_F(ReferencePolicyTest, ShowsTheDefaults) {
  write_dev_certificate();
  const Policy policy = load_policy(dir_ / "conf/portcullis.yaml");
  const Policy defaults;
  const Upstream default_upstream;

  EXPECT_EQ(policy.server.workers, defaults.server.workers);
  const ListenerTls default_tls;
  EXPECT_EQ(policy.server.listen[0].tls->min_version, default_tls.min_version);
  EXPECT_EQ(policy.server.listen[0].tls->ciphers, default_tls.ciphers);
  EXPECT_EQ(policy.server.listen[0].tls->client_ca, default_tls.client_ca);
  EXPECT_EQ(policy.server.listen[0].tls->client_auth, default_tls.client_auth);
  EXPECT_EQ(policy.server.admin.address.text, defaults.server.admin.address.text);
  EXPECT_EQ(policy.server.admin.token_file, defaults.server.admin.token_file);
  const Limits& limits = policy.server.limits;
  const Limits& expected = defaults.server.limits;
  EXPECT_EQ(limits.max_connections, expected.max_connections);
  EXPECT_EQ(limits.max_connections_per_ip, expected.max_connections_per_ip);
  EXPECT_EQ(limits.max_uri_bytes, expected.max_uri_bytes);
  EXPECT_EQ(limits.max_header_bytes, expected.max_header_bytes);
  EXPECT_EQ(limits.max_header_count, expected.max_header_count);
  EXPECT_EQ(limits.max_body_bytes, expected.max_body_bytes);
  EXPECT_EQ(limits.header_timeout, expected.header_timeout);
  EXPECT_EQ(limits.body_timeout, expected.body_timeout);
  EXPECT_EQ(limits.idle_timeout, expected.idle_timeout);
  EXPECT_EQ(limits.drain_timeout, expected.drain_timeout);
  EXPECT_THAT(policy.server.trusted_proxies, IsEmpty());
  EXPECT_EQ(policy.server.request_id.header, defaults.server.request_id.header);
  EXPECT_EQ(policy.server.request_id.trust_incoming, defaults.server.request_id.trust_incoming);

  EXPECT_EQ(policy.logging.level, defaults.logging.level);
  EXPECT_EQ(policy.logging.access_log, defaults.logging.access_log);
  EXPECT_EQ(policy.logging.security_log, defaults.logging.security_log);

  const Upstream& core = policy.upstreams[0];
  EXPECT_EQ(core.tls.enabled, default_upstream.tls.enabled);
  EXPECT_EQ(core.tls.ca_file, default_upstream.tls.ca_file);
  EXPECT_EQ(core.tls.server_name, default_upstream.tls.server_name);
  EXPECT_EQ(core.tls.verify, default_upstream.tls.verify);
  EXPECT_EQ(core.connect_timeout, default_upstream.connect_timeout);
  EXPECT_EQ(core.response_timeout, default_upstream.response_timeout);
  EXPECT_EQ(core.max_idle_per_endpoint, default_upstream.max_idle_per_endpoint);
  EXPECT_EQ(core.health_check.path, default_upstream.health_check.path);
  EXPECT_EQ(core.health_check.interval, default_upstream.health_check.interval);
  EXPECT_EQ(core.retries, default_upstream.retries);

  EXPECT_EQ(policy.headers.response_set, defaults.headers.response_set);
  EXPECT_EQ(policy.headers.response_remove, defaults.headers.response_remove);
  EXPECT_EQ(policy.headers.cookies.secure, defaults.headers.cookies.secure);
  EXPECT_EQ(policy.headers.cookies.http_only, defaults.headers.cookies.http_only);
  EXPECT_EQ(policy.headers.cookies.same_site, defaults.headers.cookies.same_site);
  EXPECT_EQ(policy.errors.mask_upstream_5xx, defaults.errors.mask_upstream_5xx);
  EXPECT_TRUE(policy.routes[0].enforce);
}

TEST_F(ReferencePolicyTest, NamesTheDevCertificateFiles) {
  // Without the generated files the only errors are the three files it names.
  const auto found = diagnostics_of(text_, dir_ / "conf");
  ASSERT_THAT(found, SizeIs(3));
  EXPECT_THAT(found[0], HasSubstr("server.listen[0].tls.certificates[0].cert: cannot read"));
  EXPECT_THAT(found[1], HasSubstr("server.listen[0].tls.certificates[0].key: cannot read"));
  EXPECT_THAT(found[2], HasSubstr("jwt_providers.corp.jwks_file: cannot read"));
}

// The reference is the manual of every key: each key the contract's example names is in it.
TEST_F(ReferencePolicyTest, CoversEveryKeyOfTheContract) {
  const auto reference = keys_of(text_);
  std::vector<std::string> missing;
  for (const auto& key : keys_of(testing::kContractExample)) {
    if (!reference.count(key)) missing.push_back(key);
  }
  EXPECT_THAT(missing, IsEmpty());
  EXPECT_TRUE(reference.count("state.redis.ca_file"));  // and the keys this build adds
  EXPECT_TRUE(reference.count("state.local_memory"));
  EXPECT_TRUE(reference.count("state.max_token_lifetime"));
}

TEST_F(ReferencePolicyTest, StateSurvivesRestartsAndProtectionsAreShown) {
  write_dev_certificate();
  std::vector<Diagnostic> warnings;
  const Policy policy = load_policy(dir_ / "conf/portcullis.yaml", &warnings);
  EXPECT_THAT(warnings, IsEmpty());

  const StateSettings& state = policy.state;
  const StateSettings defaults;
  EXPECT_EQ(state.backend, StateBackendKind::memory);
  EXPECT_EQ(state.memory_path, (dir_ / "conf/state/portcullis.db").string());
  EXPECT_EQ(state.redis.url, defaults.redis.url);
  EXPECT_EQ(state.redis.host, defaults.redis.host);
  EXPECT_EQ(state.redis.port, defaults.redis.port);
  EXPECT_EQ(state.redis.database, defaults.redis.database);
  EXPECT_EQ(state.redis.tls, defaults.redis.tls);
  EXPECT_EQ(state.redis.password_file, defaults.redis.password_file);
  EXPECT_EQ(state.redis.ca_file, defaults.redis.ca_file);
  EXPECT_EQ(state.redis.key_prefix, defaults.redis.key_prefix);
  EXPECT_EQ(state.redis.command_timeout, defaults.redis.command_timeout);
  EXPECT_EQ(state.on_unavailable, defaults.on_unavailable);
  EXPECT_EQ(state.local_memory, defaults.local_memory);
  EXPECT_EQ(state.max_token_lifetime, defaults.max_token_lifetime);
  EXPECT_THAT(policy.ip_rules.deny, IsEmpty());
  EXPECT_THAT(policy.ip_rules.allow, IsEmpty());

  ASSERT_THAT(policy.rate_limits, SizeIs(3));
  EXPECT_EQ(policy.rate_limits[1].name, "per_user");
  EXPECT_EQ(policy.rate_limits[1].key, RateLimitKey::jwt_sub);
  const Route& login = policy.routes[0];
  EXPECT_THAT(login.rate_limits, ElementsAre(2u));
  ASSERT_TRUE(login.login_protection);
  EXPECT_THAT(login.login_protection->failure_status, ElementsAre(401, 403));
  EXPECT_EQ(login.login_protection->max_failures, 5u);
  EXPECT_THAT(policy.routes[1].rate_limits, ElementsAre(0u, 1u));
}

}  // namespace
}  // namespace portcullis::config
