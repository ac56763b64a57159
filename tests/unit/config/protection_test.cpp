// `rate_limits`, a route's `rate_limit` and `login_protection`, and `ip_rules`.

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
using testing::kMinimal;
using ::testing::SizeIs;

class ProtectionTest : public ::testing::Test {
 protected:
  ProtectionTest() { dir_.write("keys/jwks.json", R"({"keys":[]})"); }
  Policy load(const std::string& text) { return load_policy_text(text, dir_ / "policy.yaml"); }
  std::vector<std::string> errors(const std::string& text) {
    return diagnostics_of(text, dir_.path());
  }
  std::string error(const std::string& text) {
    const auto found = errors(text);
    EXPECT_THAT(found, SizeIs(1)) << text;
    return found.empty() ? std::string() : found.front();
  }
  // `limits` under rate_limits: (line 6; the first limit on line 7).
  static std::string limits(const std::string& limits) {
    return std::string(kMinimal) + "rate_limits:\n" + limits;
  }
  // Lines 6-13 hold a provider, an upstream and three limits (per_user on line 11); the route
  // `r` starts on line 14, and `auth` then `route` follow from line 17 on.
  static std::string route(const std::string& route, const std::string& auth = "") {
    return std::string(kMinimal) +
           "jwt_providers:\n  corp: { issuer: i, audiences: [a], jwks_file: keys/jwks.json }\n"
           "upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\n"
           "rate_limits:\n"
           "  per_ip:   { key: client_ip, rate: 100, per: 1s, burst: 200 }\n"
           "  per_user: { key: jwt.sub, rate: 20, per: 1s, burst: 20 }\n"
           "  login_ip: { key: client_ip, rate: 10, per: 1m, burst: 10 }\n"
           "routes:\n"
           "  - name: r\n    match: { path_prefix: /api }\n    upstream: core\n" +
           auth + route;
  }

  testing::TempDir dir_;
};

// ---- rate_limits -------------------------------------------------------------------------------

TEST_F(ProtectionTest, LimitsAreParsedInFileOrder) {
  const Policy policy =
      load(limits("  per_ip: { key: client_ip, rate: 100, per: 1s, burst: 200 }\n"
                  "  per_user:\n    key: jwt.sub\n    rate: 20\n    per: 1m\n    burst: 1\n"));
  ASSERT_THAT(policy.rate_limits, SizeIs(2));
  const RateLimit& per_ip = policy.rate_limits[0];
  EXPECT_EQ(per_ip.name, "per_ip");
  EXPECT_EQ(per_ip.key, RateLimitKey::client_ip);
  EXPECT_EQ(per_ip.rate, 100u);
  EXPECT_EQ(per_ip.per, std::chrono::seconds(1));
  EXPECT_EQ(per_ip.burst, 200u);
  EXPECT_EQ(per_ip.location.line, 7);
  EXPECT_EQ(per_ip.location.column, 3);
  const RateLimit& per_user = policy.rate_limits[1];
  EXPECT_EQ(per_user.key, RateLimitKey::jwt_sub);
  EXPECT_EQ(per_user.per, std::chrono::minutes(1));
  EXPECT_EQ(per_user.burst, 1u);
  EXPECT_THAT(load(limits("  {}\n")).rate_limits, IsEmpty());
}

TEST_F(ProtectionTest, LimitFieldsAreRequiredAndInRange) {
  EXPECT_EQ(error(limits("  a: { key: client_ip }\n")),
            "policy.yaml:7:6: rate_limits.a: missing rate, per, burst (a limit needs key, rate, "
            "per and burst)");
  // One limit on line 7: key's value at column 13, rate's at 30, per's at 38, burst's at 49.
  const auto one = [&](const std::string& key, const std::string& rate, const std::string& per,
                       const std::string& burst) {
    return limits("  a: { key: " + key + ", rate: " + rate + ", per: " + per + ", burst: " + burst +
                  " }\n");
  };
  EXPECT_EQ(error(one("client_ip", "0", "1s", "1")),
            "policy.yaml:7:30: rate_limits.a.rate: must be between 1 and 1000000000, got '0'");
  EXPECT_EQ(error(one("client_ip", "1", "1s", "0")),
            "policy.yaml:7:49: rate_limits.a.burst: must be between 1 and 1000000000, got '0'");
  EXPECT_EQ(error(one("client_ip", "1", "0s", "1")),
            "policy.yaml:7:38: rate_limits.a.per: must be greater than 0");
  EXPECT_EQ(error(one("client_ip", "1", "25h", "1")),
            "policy.yaml:7:38: rate_limits.a.per: at most 24h");
  EXPECT_THAT(error(one("client_ip", "1", "1", "1")),
              HasSubstr("rate_limits.a.per: expected a duration"));
  EXPECT_EQ(error(one("ip", "1", "1s", "1")),
            "policy.yaml:7:13: rate_limits.a.key: expected one of client_ip | jwt.sub, got 'ip'");
  EXPECT_EQ(error(one("client_ip", "-5", "1s", "1")),
            "policy.yaml:7:30: rate_limits.a.rate: must be between 1 and 1000000000, got '-5'");
  EXPECT_EQ(error(limits("  a: { key: client_ip, rate: 1, per: 1s, burst: 1, window: 1s }\n")),
            "policy.yaml:7:52: unknown key 'window' in rate_limits.a");
  EXPECT_EQ(error(limits("  \"a b\": { key: client_ip, rate: 1, per: 1s, burst: 1 }\n")),
            "policy.yaml:7:3: rate_limits.a b: limit names use letters, digits, '_', '-' and '.' "
            "(at most 64)");
  EXPECT_EQ(error(std::string(kMinimal) + "rate_limits: [per_ip]\n"),
            "policy.yaml:6:14: rate_limits: expected a mapping (key: value), got a list");
}

// ---- a route's rate_limit ----------------------------------------------------------------------

TEST_F(ProtectionTest, RouteListsLimitsInTheOrderWritten) {
  const Policy policy = load(route("    rate_limit: [login_ip, per_ip]\n"));
  EXPECT_THAT(policy.routes[0].rate_limits, ElementsAre(2u, 0u));
  EXPECT_THAT(load(route("")).routes[0].rate_limits, IsEmpty());
  EXPECT_THAT(load(route("    rate_limit: []\n")).routes[0].rate_limits, IsEmpty());
  // A jwt.sub limit where the route authenticates with JWT.
  EXPECT_THAT(load(route("    rate_limit: [per_ip, per_user]\n", "    auth: { jwt: corp }\n"))
                  .routes[0]
                  .rate_limits,
              ElementsAre(0u, 1u));
}

TEST_F(ProtectionTest, UnknownLimitIsReportedAtItsItemWithASuggestion) {
  EXPECT_EQ(error(route("    rate_limit: [per_ip, per_iq]\n")),
            "policy.yaml:17:26: routes[0].rate_limit[1]: no limit named 'per_iq' in rate_limits; "
            "did you mean 'per_ip'?");
  EXPECT_EQ(error(route("    rate_limit: [everything]\n")),
            "policy.yaml:17:18: routes[0].rate_limit[0]: no limit named 'everything' in "
            "rate_limits");
  EXPECT_EQ(error(route("    rate_limit: [per_ip, per_ip]\n")),
            "policy.yaml:17:26: routes[0].rate_limit[1]: 'per_ip' is listed twice");
  EXPECT_EQ(error(route("    rate_limit: per_ip\n")),
            "policy.yaml:17:17: routes[0].rate_limit: expected a list, got 'per_ip'");
}

TEST_F(ProtectionTest, JwtSubLimitNeedsJwtAuthOnTheRoute) {
  EXPECT_EQ(error(route("    rate_limit: [per_ip, per_user]\n")),
            "policy.yaml:17:26: routes[0].rate_limit[1]: 'per_user' counts by jwt.sub and needs "
            "auth: { jwt: ... } on this route (auth is left out; the limit is at line 11)");
  EXPECT_EQ(error(route("    rate_limit: [per_user]\n", "    auth: none\n")),
            "policy.yaml:18:18: routes[0].rate_limit[0]: 'per_user' counts by jwt.sub and needs "
            "auth: { jwt: ... } on this route (auth: none is at line 17; the limit is at line "
            "11)");
  // A broken auth block is reported there, not again at the limit.
  EXPECT_EQ(error(route("    rate_limit: [per_user]\n", "    auth: { jwt: nobody }\n")),
            "policy.yaml:17:18: routes[0].auth.jwt: no provider named 'nobody' in jwt_providers");
}

// ---- login_protection --------------------------------------------------------------------------

TEST_F(ProtectionTest, LoginProtectionIsParsed) {
  const Policy policy = load(route(
      "    login_protection: { failure_status: [401, 403], max_failures: 5, window: 15m, ban: "
      "30m }\n"));
  ASSERT_TRUE(policy.routes[0].login_protection);
  const LoginProtection& protection = *policy.routes[0].login_protection;
  EXPECT_THAT(protection.failure_status, ElementsAre(401, 403));
  EXPECT_EQ(protection.max_failures, 5u);
  EXPECT_EQ(protection.window, std::chrono::minutes(15));
  EXPECT_EQ(protection.ban, std::chrono::minutes(30));
  EXPECT_EQ(protection.location.line, 17);
  EXPECT_EQ(protection.location.column, 23);
  EXPECT_FALSE(load(route("")).routes[0].login_protection);
}

TEST_F(ProtectionTest, LoginProtectionRules) {
  const auto with = [](const std::string& fields) {
    return route("    login_protection:\n" + fields);
  };
  const std::string rest = "      max_failures: 5\n      window: 15m\n      ban: 30m\n";
  EXPECT_THAT(errors(with("      failure_status: [99, 600, 401, 401]\n" + rest)),
              ElementsAre("policy.yaml:18:24: routes[0].login_protection.failure_status[0]: must "
                          "be between 100 and 599, got '99'",
                          "policy.yaml:18:28: routes[0].login_protection.failure_status[1]: must "
                          "be between 100 and 599, got '600'",
                          "policy.yaml:18:38: routes[0].login_protection.failure_status[3]: 401 "
                          "is listed twice"));
  EXPECT_EQ(error(with("      failure_status: []\n" + rest)),
            "policy.yaml:18:23: routes[0].login_protection.failure_status: at least one status is "
            "required");
  EXPECT_EQ(error(with("      failure_status: [\"401\"]\n" + rest)),
            "policy.yaml:18:24: routes[0].login_protection.failure_status[0]: expected a whole "
            "number, got the quoted string '401'");
  const std::string status = "      failure_status: [401]\n";
  EXPECT_EQ(error(with(status + "      max_failures: 0\n      window: 15m\n      ban: 30m\n")),
            "policy.yaml:19:21: routes[0].login_protection.max_failures: must be between 1 and "
            "1000000, got '0'");
  EXPECT_EQ(error(with(status + "      max_failures: 5\n      window: 0s\n      ban: 30m\n")),
            "policy.yaml:20:15: routes[0].login_protection.window: must be greater than 0");
  EXPECT_EQ(error(with(status + "      max_failures: 5\n      window: 15m\n      ban: 30\n")),
            "policy.yaml:21:12: routes[0].login_protection.ban: expected a duration with a unit "
            "(250ms, 10s, 5m, 1h), got '30'");
  EXPECT_EQ(error(with(status + rest + "      bann: 1h\n")),
            "policy.yaml:22:7: unknown key 'bann' in routes[0].login_protection; did you mean "
            "'ban'?");
  EXPECT_EQ(error(route("    login_protection: { max_failures: 5 }\n")),
            "policy.yaml:17:23: routes[0].login_protection: missing failure_status, window, ban "
            "(login protection needs failure_status, max_failures, window and ban)");
}

// ---- ip_rules ----------------------------------------------------------------------------------

TEST_F(ProtectionTest, IpRulesTakeCidrsAndBareAddresses) {
  const Policy policy = load(std::string(kMinimal) +
                             "ip_rules:\n"
                             "  deny: [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\", \"::1\"]\n"
                             "  allow: [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n");
  ASSERT_THAT(policy.ip_rules.deny, SizeIs(4));
  EXPECT_EQ(policy.ip_rules.deny[0].to_string(), "10.0.0.0/8");
  EXPECT_EQ(policy.ip_rules.deny[1].to_string(), "192.0.2.7/32");
  EXPECT_EQ(policy.ip_rules.deny[2].to_string(), "2001:db8::/32");
  EXPECT_EQ(policy.ip_rules.deny[3].to_string(), "::1/128");
  EXPECT_THAT(policy.ip_rules.allow, SizeIs(2));  // duplicates are allowed
  EXPECT_THAT(load(std::string(kMinimal) + "ip_rules: { deny: [] }\n").ip_rules.allow, IsEmpty());
}

TEST_F(ProtectionTest, IpRulesRefuseWhatIsNotABlock) {
  const std::string head = std::string(kMinimal) + "ip_rules:\n";
  EXPECT_THAT(error(head + "  deny: [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n"),
              HasSubstr("policy.yaml:7:24: ip_rules.deny[1]: '10.0.0.1/8' is not a CIDR block"));
  EXPECT_THAT(error(head + "  allow: [not-an-address]\n"),
              HasSubstr("policy.yaml:7:11: ip_rules.allow[0]: 'not-an-address' is not a CIDR "
                        "block"));
  EXPECT_EQ(error(head + "  deny: \"10.0.0.0/8\"\n"),
            "policy.yaml:7:9: ip_rules.deny: expected a list, got the quoted string '10.0.0.0/8'");
  EXPECT_EQ(error(head + "  allowed: []\n"),
            "policy.yaml:7:3: unknown key 'allowed' in ip_rules; did you mean 'allow'?");
}

}  // namespace
}  // namespace portcullis::config
