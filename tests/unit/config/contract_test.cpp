// The full example policy of the version 1 contract (docs: the policy contract) loads as written,
// with the files it names, and means what the contract says.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"
#include "unit/config/contract_example.hpp"

namespace portcullis::config {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

TEST(ContractExample, LoadsWithTheFilesItNames) {
  testing::TempDir dir;
  testing::write_key_pair(dir, "tls/server.crt", "tls/server.key");
  dir.write("keys/jwks.json", R"({"keys":[]})");
  dir.write("schemas/login.json", R"({"type":"object"})");
  dir.write("policy.yaml", testing::kContractExample);

  std::vector<Diagnostic> warnings;
  const Policy policy = load_policy(dir / "policy.yaml", &warnings);

  // memory.path is "": the one warning, at that key (line 41, column 11).
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_EQ(warnings[0].to_string(),
            (dir / "policy.yaml").string() +
                ":41:11: state.memory.path is empty: revocations and bans live in this process "
                "only");

  EXPECT_EQ(policy.state.backend, StateBackendKind::memory);
  EXPECT_EQ(policy.state.on_unavailable, OnUnavailable::fail_closed);
  EXPECT_EQ(policy.state.redis.host, "127.0.0.1");
  EXPECT_EQ(policy.state.redis.port, 6379);
  ASSERT_THAT(policy.rate_limits, SizeIs(3));
  EXPECT_EQ(policy.rate_limits[0].name, "per_ip");
  EXPECT_EQ(policy.rate_limits[0].burst, 200u);
  EXPECT_EQ(policy.rate_limits[1].key, RateLimitKey::jwt_sub);
  EXPECT_EQ(policy.rate_limits[2].per, std::chrono::minutes(1));
  ASSERT_THAT(policy.routes, SizeIs(2));
  const Route& login = policy.routes[0];
  EXPECT_THAT(login.rate_limits, ElementsAre(2u));
  ASSERT_TRUE(login.login_protection);
  EXPECT_THAT(login.login_protection->failure_status, ElementsAre(401, 403));
  EXPECT_EQ(login.login_protection->max_failures, 5u);
  EXPECT_EQ(login.login_protection->window, std::chrono::minutes(15));
  EXPECT_EQ(login.login_protection->ban, std::chrono::minutes(30));
  EXPECT_THAT(policy.routes[1].rate_limits, ElementsAre(0u, 1u));
  EXPECT_FALSE(policy.routes[1].login_protection);
  EXPECT_TRUE(policy.ip_rules.deny.empty());
  EXPECT_TRUE(policy.ip_rules.allow.empty());
}

}  // namespace
}  // namespace portcullis::config
