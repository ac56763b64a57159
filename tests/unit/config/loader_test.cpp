#include "portcullis/config/loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "portcullis/core/allocation_budget.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using std::chrono::seconds;
using ::testing::AllOf;
using testing::diagnostics_of;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::kMinimal;
using ::testing::SizeIs;
using ::testing::StartsWith;

class LoaderTest : public ::testing::Test {
 protected:
  Policy load(const std::string& text) { return load_policy_text(text, dir_ / "policy.yaml"); }
  std::vector<std::string> errors(const std::string& text) {
    return diagnostics_of(text, dir_.path());
  }
  // The one diagnostic `text` produces (fails the test when there are none or several).
  std::string error(const std::string& text) {
    const auto found = errors(text);
    EXPECT_THAT(found, SizeIs(1)) << text;
    return found.empty() ? std::string() : found.front();
  }
  static std::string with(const std::string& extra) { return std::string(kMinimal) + extra; }

  testing::TempDir dir_;
};

// ---- the YAML front end's allocation cap --------------------------------------------------------

TEST_F(LoaderTest, AYamlTreeOverItsAllocationBudgetIsRefusedWithItsFile) {
  if (!core::AllocationBudget::enforced()) GTEST_SKIP() << "the sanitizer owns operator new";
  try {
    load_policy_text(std::string(kMinimal), dir_ / "policy.yaml", nullptr, 2048);
    FAIL() << "a 2 KiB budget was enough";
  } catch (const PolicyError& error) {
    ASSERT_THAT(error.diagnostics(), SizeIs(1));
    EXPECT_THAT(error.diagnostics().front().to_string(),
                AllOf(StartsWith((dir_ / "policy.yaml").string() + ":1:1: "),
                      HasSubstr("needed more than 2 KiB")));
  }
  // The default budget (64 MiB and 16 times the text) leaves the same policy alone, and the cap
  // ends with the YAML tree: what follows allocates freely.
  EXPECT_NO_THROW(load(kMinimal));
  EXPECT_NO_THROW(
      load_policy_text(std::string(kMinimal), dir_ / "policy.yaml", nullptr, std::size_t{1} << 20));
}

// ---- defaults and the top level ----------------------------------------------------------------

TEST_F(LoaderTest, MinimalPolicyTakesEveryDefault) {
  const Policy policy = load(kMinimal);
  const Policy defaults;
  EXPECT_EQ(policy.version, 1);
  EXPECT_EQ(policy.source_file, (dir_ / "policy.yaml").string());
  EXPECT_EQ(policy.server.workers, 0u);
  ASSERT_THAT(policy.server.listen, SizeIs(1));
  EXPECT_EQ(policy.server.listen[0].address.host, "127.0.0.1");
  EXPECT_EQ(policy.server.listen[0].address.port, 0);
  EXPECT_EQ(policy.server.listen[0].address.text, "127.0.0.1:0");
  EXPECT_TRUE(policy.server.listen[0].redirect_https);
  EXPECT_FALSE(policy.server.listen[0].tls);
  EXPECT_EQ(policy.server.admin.address.text, "127.0.0.1:9901");
  EXPECT_EQ(policy.server.admin.address.port, 9901);
  EXPECT_EQ(policy.server.admin.token_file, "");
  const Limits& limits = policy.server.limits;
  EXPECT_EQ(limits.max_connections, 10000u);
  EXPECT_EQ(limits.max_connections_per_ip, 256u);
  EXPECT_EQ(limits.max_uri_bytes, 8u * 1024);
  EXPECT_EQ(limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(limits.max_header_count, 100u);
  EXPECT_EQ(limits.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(limits.header_timeout, seconds(10));
  EXPECT_EQ(limits.body_timeout, seconds(30));
  EXPECT_EQ(limits.idle_timeout, seconds(60));
  EXPECT_EQ(limits.drain_timeout, seconds(30));
  EXPECT_THAT(policy.server.trusted_proxies, IsEmpty());
  EXPECT_EQ(policy.server.request_id.header, "X-Request-Id");
  EXPECT_FALSE(policy.server.request_id.trust_incoming);
  EXPECT_EQ(policy.logging.level, LogLevel::info);
  EXPECT_EQ(policy.logging.access_log, "stdout");
  EXPECT_EQ(policy.logging.security_log, "stderr");
  EXPECT_THAT(policy.upstreams, IsEmpty());
  EXPECT_EQ(policy.headers.response_set, defaults.headers.response_set);
  EXPECT_THAT(policy.headers.response_set, SizeIs(6));
  EXPECT_EQ(policy.headers.response_remove, defaults.headers.response_remove);
  EXPECT_TRUE(policy.headers.cookies.secure);
  EXPECT_TRUE(policy.headers.cookies.http_only);
  EXPECT_EQ(policy.headers.cookies.same_site, SameSite::strict);
  EXPECT_TRUE(policy.errors.mask_upstream_5xx);
  EXPECT_THAT(policy.routes, IsEmpty());
}

TEST_F(LoaderTest, EmptySectionsKeepTheirDefaults) {
  const Policy policy = load(with(R"(logging: {}
headers: { response: {}, cookies: {} }
errors: {}
upstreams: {}
routes: []
)"));
  const Policy defaults;
  EXPECT_EQ(policy.headers.response_set, defaults.headers.response_set);
  EXPECT_EQ(policy.headers.response_remove, defaults.headers.response_remove);
  EXPECT_TRUE(policy.errors.mask_upstream_5xx);
  EXPECT_EQ(policy.logging.access_log, "stdout");
}

TEST_F(LoaderTest, VersionIsRequiredAndMustBeOne) {
  EXPECT_EQ(error("server:\n  listen: [{address: '127.0.0.1:0', redirect_https: true}]\n"),
            "policy.yaml:1:1: version is required: write 'version: 1' at the top");
  EXPECT_EQ(error("version: 2\nserver:\n  listen: [{address: '127.0.0.1:0', redirect_https: "
                  "true}]\n"),
            "policy.yaml:1:10: version: must be 1, got '2'");
  EXPECT_THAT(error("version: \"1\"\nserver:\n  listen: [{address: '127.0.0.1:0', "
                    "redirect_https: true}]\n"),
              HasSubstr("version: expected a whole number, got the quoted string '1'"));
}

TEST_F(LoaderTest, EmptyOrNonMappingPolicyIsRefused) {
  EXPECT_THAT(error(""), HasSubstr("the policy is empty"));
  EXPECT_THAT(error("# only a comment\n"), HasSubstr("the policy is empty"));
  EXPECT_EQ(error("- a\n- b\n"),
            "policy.yaml:1:1: the policy must be a mapping (key: value) at the top level, got a "
            "list");
}

TEST_F(LoaderTest, SecondYamlDocumentIsRefused) {
  EXPECT_THAT(error(with("---\nversion: 1\n")),
              HasSubstr("the policy must be a single YAML document"));
}

TEST_F(LoaderTest, YamlSyntaxErrorHasItsLocation) {
  EXPECT_EQ(error("version: 1\nserver:\n  listen: [1, 2\nlogging: {}\n"),
            "policy.yaml:4:8: YAML syntax error: did not find expected ',' or ']' (while "
            "parsing a flow sequence)");
  EXPECT_THAT(error("version: 1\nserver: a\n  b: c\n"),
              AllOf(StartsWith("policy.yaml:3:"), HasSubstr("YAML syntax error")));
}

TEST_F(LoaderTest, ServerIsNeededForItsListeners) {
  EXPECT_EQ(error("version: 1\n"),
            "policy.yaml:1:1: server.listen: at least one listener is required");
  EXPECT_EQ(error("version: 1\nserver:\n  workers: 2\n"),
            "policy.yaml:3:3: server.listen: at least one listener is required");
  EXPECT_EQ(error("version: 1\nserver:\n  listen: []\n"),
            "policy.yaml:3:11: server.listen: at least one listener is required");
}

// ---- unknown, duplicate and refused keys -------------------------------------------------------

TEST_F(LoaderTest, UnknownKeyIsReportedWithPathAndSuggestion) {
  EXPECT_EQ(error(with("  limits:\n    max_conections: 5\n")),
            "policy.yaml:7:5: unknown key 'max_conections' in server.limits; did you mean "
            "'max_connections'?");
  EXPECT_EQ(error(with("loging: {}\n")),
            "policy.yaml:6:1: unknown key 'loging' at the top level; did you mean 'logging'?");
  EXPECT_EQ(error(with("frobnicate: 1\n")),
            "policy.yaml:6:1: unknown key 'frobnicate' at the top level");
}

TEST_F(LoaderTest, UnknownKeysAreRefusedInEverySection) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with("  bogus: 1\n"), "in server"},
      {"version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      redirect_https: "
       "true\n      bogus: 1\n",
       "in server.listen[0]"},
      {with("  admin: { bogus: 1 }\n"), "in server.admin"},
      {with("  request_id: { bogus: 1 }\n"), "in server.request_id"},
      {with("logging: { bogus: 1 }\n"), "in logging"},
      {with("upstreams:\n  core: { endpoints: ['127.0.0.1:1'], bogus: 1 }\n"), "in upstreams.core"},
      {with("upstreams:\n  core: { endpoints: ['127.0.0.1:1'], tls: { bogus: 1 } }\n"),
       "in upstreams.core.tls"},
      {with("upstreams:\n  core: { endpoints: ['127.0.0.1:1'], health_check: { bogus: 1 } }\n"),
       "in upstreams.core.health_check"},
      {with("headers: { bogus: 1 }\n"), "in headers"},
      {with("headers: { response: { bogus: 1 } }\n"), "in headers.response"},
      {with("headers: { cookies: { bogus: 1 } }\n"), "in headers.cookies"},
      {with("errors: { bogus: 1 }\n"), "in errors"},
      {with("upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\nroutes:\n  - { name: a, match: "
            "{ path: / }, upstream: core, bogus: 1 }\n"),
       "in routes[0]"},
      {with("upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\nroutes:\n  - { name: a, match: "
            "{ path: /, bogus: 1 }, upstream: core }\n"),
       "in routes[0].match"},
  };
  for (const auto& [text, where] : cases) {
    EXPECT_THAT(error(text), HasSubstr("unknown key 'bogus' " + where)) << text;
  }
}

TEST_F(LoaderTest, TlsSectionRefusesUnknownKeys) {
  EXPECT_THAT(errors("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      tls: { "
                     "certificates: [], minimum: TLS1.3 }\n"),
              ::testing::Contains(HasSubstr("unknown key 'minimum' in server.listen[0].tls")));
  EXPECT_THAT(errors("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      tls: { "
                     "certificates: [{ cert: a, key: b, chain: c }] }\n"),
              ::testing::Contains(
                  HasSubstr("unknown key 'chain' in server.listen[0].tls.certificates[0]")));
}

TEST_F(LoaderTest, DuplicateKeysAreRefused) {
  EXPECT_EQ(error(with("logging: { level: info }\nlogging: { level: debug }\n")),
            "policy.yaml:7:1: duplicate key 'logging' at the top level (first at line 6)");
  EXPECT_EQ(error(with("  limits:\n    max_connections: 500\n    max_connections: 600\n")),
            "policy.yaml:8:5: duplicate key 'max_connections' in server.limits (first at line 7)");
  EXPECT_THAT(error(with("upstreams:\n  core: { endpoints: ['127.0.0.1:1'] }\n  core: { "
                         "endpoints: ['127.0.0.1:2'] }\n")),
              HasSubstr("duplicate key 'core' in upstreams"));
  EXPECT_THAT(error(with("headers:\n  response:\n    set:\n      X-A: a\n      X-A: b\n")),
              HasSubstr("duplicate key 'X-A' in headers.response.set"));
}

TEST_F(LoaderTest, NonScalarKeyIsRefused) {
  EXPECT_THAT(error(with("logging:\n  ? [a, b]\n  : 1\n")),
              HasSubstr("keys in logging must be plain names"));
}

TEST_F(LoaderTest, ProtectionSectionsLoadWhenEmpty) {
  const Policy policy = load(with("state: {}\nrate_limits: {}\nip_rules: {}\n"));
  EXPECT_EQ(policy.state.backend, StateBackendKind::memory);
  EXPECT_THAT(policy.rate_limits, IsEmpty());
  EXPECT_THAT(policy.ip_rules.deny, IsEmpty());
  EXPECT_THAT(policy.ip_rules.allow, IsEmpty());
}

TEST_F(LoaderTest, RouteKeysAreChecked) {
  const std::string base = with(
      "upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\nroutes:\n  - name: r\n    match: { "
      "path_prefix: /api }\n    upstream: core\n");
  EXPECT_EQ(error(base + "    rate_limit: [per_ip]\n"),
            "policy.yaml:11:18: routes[0].rate_limit[0]: no limit named 'per_ip' in rate_limits");
  EXPECT_THAT(error(base + "    login_protection: { max_failures: 5 }\n"),
              HasSubstr("routes[0].login_protection: missing failure_status, window, ban"));
  EXPECT_THAT(error(base + "    validate: { max_body_bytes: 2MiB }\n"),
              HasSubstr("routes[0].validate.max_body_bytes: may only lower"));
  EXPECT_THAT(error(base + "    validate: { content_types: ['*/*'] }\n"),
              HasSubstr("is not a media type"));
  EXPECT_THAT(
      load(base + "    validate: { content_types: [Application/JSON], max_body_bytes: 4KiB, "
                  "error_pointer: false }\n")
          .routes[0]
          .validate->content_types,
      ElementsAre("application/json"));
  EXPECT_EQ(error(base + "    auth: { jwt: corp, scopes: [a] }\n"),
            "policy.yaml:11:18: routes[0].auth.jwt: no provider named 'corp' in jwt_providers");
  EXPECT_THAT(error(base + "    auth: basic\n"),
              HasSubstr("routes[0].auth: either 'none' or { jwt: PROVIDER"));
  EXPECT_THAT(load(base + "    auth: none\n").routes, SizeIs(1));
}

TEST_F(LoaderTest, RepeatedSectionIsADuplicate) {
  EXPECT_EQ(error(with("state: {}\nstate: {}\n")),
            "policy.yaml:7:1: duplicate key 'state' at the top level (first at line 6)");
}

// ---- every error at once, in file order -------------------------------------------------------

TEST_F(LoaderTest, ReportsEveryErrorInFileOrder) {
  const std::string text = R"(version: 1
routes:
  - name: a
    match: { path: nope }
    upstream: missing
server:
  workers: 5000
  listen:
    - address: "127.0.0.1:0"
      redirect_https: yes
  limits:
    max_conections: 1
logging:
  level: verbose
)";
  const auto found = errors(text);
  EXPECT_THAT(
      found, ElementsAre("policy.yaml:4:20: routes[0].match.path: 'nope' must start with '/'",
                         "policy.yaml:5:15: routes[0].upstream: no upstream named 'missing' in "
                         "upstreams",
                         "policy.yaml:7:12: server.workers: must be between 0 and 1024, got '5000'",
                         "policy.yaml:10:23: server.listen[0].redirect_https: expected true or "
                         "false, got 'yes'",
                         "policy.yaml:12:5: unknown key 'max_conections' in server.limits; did "
                         "you mean 'max_connections'?",
                         "policy.yaml:14:10: logging.level: expected one of trace | debug | info | "
                         "warn | error, got 'verbose'"));
}

TEST_F(LoaderTest, PolicyErrorJoinsDiagnosticsByLine) {
  try {
    load(with("errors: { mask_upstream_5xx: maybe }\nlogging: { level: loud }\n"));
    FAIL() << "expected PolicyError";
  } catch (const PolicyError& e) {
    ASSERT_THAT(e.diagnostics(), SizeIs(2));
    EXPECT_EQ(std::string(e.what()),
              e.diagnostics()[0].to_string() + "\n" + e.diagnostics()[1].to_string());
    EXPECT_EQ(e.diagnostics()[0].file, (dir_ / "policy.yaml").string());
    EXPECT_EQ(e.diagnostics()[0].line, 6);
    EXPECT_EQ(e.diagnostics()[0].column, 30);
  }
}

TEST(Diagnostic, FormatsAsFileLineColumn) {
  EXPECT_EQ((Diagnostic{"conf/p.yaml", 3, 7, "bad"}).to_string(), "conf/p.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{"conf/p.yaml", 0, 0, "cannot read"}).to_string(),
            "conf/p.yaml: cannot read");
}

// ---- types ------------------------------------------------------------------------------------

TEST_F(LoaderTest, WrongTypesAreRefused) {
  EXPECT_EQ(error(with("logging: verbose\n")),
            "policy.yaml:6:10: logging: expected a mapping (key: value), got 'verbose'");
  EXPECT_THAT(error(with("upstreams: [a, b]\n")),
              HasSubstr("upstreams: expected a mapping (key: value), got a list"));
  EXPECT_THAT(error(with("routes: { a: 1 }\n")),
              HasSubstr("routes: expected a list, got a mapping"));
  EXPECT_THAT(error(with("  workers: four\n")),
              HasSubstr("server.workers: expected a whole number, got 'four'"));
  EXPECT_THAT(error(with("  workers: \"4\"\n")),
              HasSubstr("server.workers: expected a whole number, got the quoted string '4'"));
  EXPECT_THAT(error(with("  workers: 1.5\n")),
              HasSubstr("server.workers: expected a whole number, got '1.5'"));
  EXPECT_THAT(error(with("errors: { mask_upstream_5xx: \"true\" }\n")),
              HasSubstr("errors.mask_upstream_5xx: expected true or false"));
  EXPECT_THAT(error(with("errors: { mask_upstream_5xx: on }\n")),
              HasSubstr("errors.mask_upstream_5xx: expected true or false, got 'on'"));
  EXPECT_THAT(error(with("errors: { mask_upstream_5xx: 1 }\n")),
              HasSubstr("errors.mask_upstream_5xx: expected true or false, got '1'"));
  EXPECT_THAT(error(with("  request_id: { header: [a] }\n")),
              HasSubstr("server.request_id.header: expected a string, got a list"));
}

TEST_F(LoaderTest, NullValuesAreRefusedRatherThanGuessed) {
  EXPECT_EQ(error(with("logging:\n  access_log:\n")),
            "policy.yaml:7:3: logging.access_log: expected a string, got nothing (write \"\" for "
            "an empty value)");
  EXPECT_THAT(error(with("logging:\n")),
              HasSubstr("logging: expected a mapping (key: value), got nothing"));
  EXPECT_THAT(error(with("  trusted_proxies:\n")),
              HasSubstr("server.trusted_proxies: expected a list, got nothing"));
}

TEST_F(LoaderTest, BooleansAcceptTheYamlCoreSpellings) {
  for (const std::string text : {"false", "False", "FALSE"}) {
    EXPECT_FALSE(
        load(with("errors: { mask_upstream_5xx: " + text + " }\n")).errors.mask_upstream_5xx);
  }
  for (const std::string text : {"true", "True", "TRUE"}) {
    EXPECT_TRUE(load(with("  request_id: { trust_incoming: " + text + " }\n"))
                    .server.request_id.trust_incoming);
  }
}

// ---- server ------------------------------------------------------------------------------------

TEST_F(LoaderTest, WorkersRange) {
  EXPECT_EQ(load(with("  workers: 1024\n")).server.workers, 1024u);
  EXPECT_EQ(load(with("  workers: 0\n")).server.workers, 0u);
  EXPECT_THAT(error(with("  workers: 1025\n")),
              HasSubstr("server.workers: must be between 0 and 1024, got '1025'"));
  EXPECT_THAT(error(with("  workers: -1\n")),
              HasSubstr("server.workers: must be between 0 and 1024, got '-1'"));
  EXPECT_THAT(error(with("  workers: 99999999999999999999999\n")),
              HasSubstr("server.workers: must be between 0 and 1024"));
}

TEST_F(LoaderTest, ListenerAddressForms) {
  const auto listener = [&](const std::string& address) {
    return "version: 1\nserver:\n  listen:\n    - address: \"" + address +
           "\"\n      redirect_https: true\n";
  };
  auto policy = load(listener("[::1]:443"));
  EXPECT_EQ(policy.server.listen[0].address.host, "::1");
  EXPECT_EQ(policy.server.listen[0].address.port, 443);
  EXPECT_EQ(policy.server.listen[0].address.text, "[::1]:443");
  policy = load(listener("[::]:0"));
  EXPECT_EQ(policy.server.listen[0].address.host, "::");
  policy = load(listener("localhost:8080"));
  EXPECT_EQ(policy.server.listen[0].address.host, "localhost");
  EXPECT_EQ(policy.server.listen[0].address.port, 8080);
  EXPECT_EQ(load(listener("0.0.0.0:65535")).server.listen[0].address.port, 65535);

  EXPECT_THAT(error(listener("0.0.0.0:65536")), HasSubstr("has a bad port"));
  EXPECT_THAT(error(listener("0.0.0.0")), HasSubstr("needs a port"));
  EXPECT_THAT(error(listener("0.0.0.0:")), HasSubstr("has a bad port"));
  EXPECT_THAT(error(listener("0.0.0.0:-1")), HasSubstr("has a bad port"));
  EXPECT_THAT(error(listener("0.0.0.0:http")), HasSubstr("has a bad port"));
  EXPECT_THAT(error(listener(":8080")), HasSubstr("has no host"));
  EXPECT_THAT(error(listener("::1:443")), HasSubstr("write IPv6 addresses in brackets"));
  EXPECT_THAT(error(listener("[::1]")), HasSubstr("needs a port"));
  EXPECT_THAT(error(listener("[::1:443")), HasSubstr("has no closing ']'"));
  EXPECT_THAT(error(listener("[127.0.0.1]:443")), HasSubstr("is not an IPv6 address"));
  EXPECT_THAT(error(listener("10.0.0.300:80")), HasSubstr("does not start with an IP address"));
  EXPECT_THAT(error(listener("bad host:80")), HasSubstr("does not start with an IP address"));
  EXPECT_THAT(error(listener("-bad.example:80")), HasSubstr("does not start with an IP address"));
  EXPECT_EQ(error(listener("0.0.0.0")),
            "policy.yaml:4:16: server.listen[0].address: '0.0.0.0' needs a port: host:port, for "
            "example 0.0.0.0:8443");
}

TEST_F(LoaderTest, ListenerNeedsExactlyOneOfTlsAndRedirect) {
  EXPECT_EQ(error("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n"),
            "policy.yaml:4:7: server.listen[0]: needs tls (to terminate TLS) or redirect_https: "
            "true (plain HTTP that only redirects to https)");
  EXPECT_THAT(error("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      "
                    "redirect_https: false\n"),
              HasSubstr("server.listen[0]: needs tls"));
  EXPECT_THAT(
      errors("version: 1\nserver:\n  listen:\n    - address: '127.0.0.1:0'\n      "
             "redirect_https: true\n      tls: { certificates: [] }\n"),
      ::testing::Contains(HasSubstr(
          "server.listen[0]: a listener has either tls or redirect_https: true, not both")));
  EXPECT_THAT(error("version: 1\nserver:\n  listen:\n    - redirect_https: true\n"),
              HasSubstr("policy.yaml:4:7: server.listen[0]: address is required"));
  EXPECT_THAT(error("version: 1\nserver:\n  listen: [\"127.0.0.1:0\"]\n"),
              HasSubstr("server.listen[0]: expected a mapping (key: value), got the quoted string "
                        "'127.0.0.1:0'"));
}

TEST_F(LoaderTest, ListenersAndAdminMayNotOverlap) {
  const auto two = [](const std::string& a, const std::string& b) {
    return "version: 1\nserver:\n  listen:\n    - { address: \"" + a +
           "\", redirect_https: true }\n    - { address: \"" + b + "\", redirect_https: true }\n";
  };
  EXPECT_EQ(error(two("0.0.0.0:8080", "0.0.0.0:8080")),
            "policy.yaml:5:18: server.listen[1].address: '0.0.0.0:8080' overlaps "
            "server.listen[0].address ('0.0.0.0:8080', line 4)");
  EXPECT_THAT(error(two("0.0.0.0:8080", "127.0.0.1:8080")), HasSubstr("overlaps"));
  EXPECT_THAT(error(two("[::1]:8080", "[::]:8080")), HasSubstr("overlaps"));
  EXPECT_THAT(error(two("localhost:8080", "LOCALHOST:8080")), HasSubstr("overlaps"));
  EXPECT_THAT(errors(two("0.0.0.0:8080", "[::]:8080")), IsEmpty());
  EXPECT_THAT(errors(two("127.0.0.1:8080", "127.0.0.2:8080")), IsEmpty());
  EXPECT_THAT(errors(two("0.0.0.0:8080", "0.0.0.0:8081")), IsEmpty());
  EXPECT_THAT(errors(two("127.0.0.1:0", "127.0.0.1:0")), IsEmpty());
  // The admin listener counts too, written or left at its default 127.0.0.1:9901.
  EXPECT_EQ(error(two("0.0.0.0:9901", "0.0.0.0:1")),
            "policy.yaml:4:18: server.listen[0].address: '0.0.0.0:9901' overlaps "
            "server.admin.address ('127.0.0.1:9901', the default)");
  EXPECT_THAT(
      error(two("0.0.0.0:8080", "0.0.0.0:1") + "  admin: { address: \"127.0.0.1:8080\" }\n"),
      HasSubstr("policy.yaml:6:21: server.admin.address: '127.0.0.1:8080' overlaps "
                "server.listen[0].address"));
  EXPECT_THAT(errors(two("0.0.0.0:9901", "0.0.0.0:1") + "  admin: { address: \"127.0.0.1:0\" }\n"),
              IsEmpty());
}

TEST_F(LoaderTest, AdminAddress) {
  const Policy policy = load(with("  admin: { address: \"[::1]:0\" }\n"));
  EXPECT_EQ(policy.server.admin.address.host, "::1");
  EXPECT_EQ(policy.server.admin.address.port, 0);
  EXPECT_THAT(error(with("  admin: { address: \"127.0.0.1\" }\n")),
              HasSubstr("server.admin.address: '127.0.0.1' needs a port"));
}

TEST_F(LoaderTest, LimitsAcceptSizesDurationsAndCounts) {
  const Policy policy = load(with(R"(  limits:
    max_connections: 5
    max_connections_per_ip: 5
    max_uri_bytes: 4096
    max_header_bytes: 64KiB
    max_header_count: 7
    max_body_bytes: 2MiB
    header_timeout: 250ms
    body_timeout: 5m
    idle_timeout: 1h
    drain_timeout: 3s
)"));
  const Limits& limits = policy.server.limits;
  EXPECT_EQ(limits.max_connections, 5u);
  EXPECT_EQ(limits.max_connections_per_ip, 5u);
  EXPECT_EQ(limits.max_uri_bytes, 4096u);
  EXPECT_EQ(limits.max_header_bytes, 64u * 1024);
  EXPECT_EQ(limits.max_header_count, 7u);
  EXPECT_EQ(limits.max_body_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(limits.header_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(limits.body_timeout, std::chrono::minutes(5));
  EXPECT_EQ(limits.idle_timeout, std::chrono::hours(1));
  EXPECT_EQ(limits.drain_timeout, seconds(3));
  EXPECT_EQ(load(with("  limits: { max_body_bytes: \"8KiB\" }\n")).server.limits.max_body_bytes,
            8u * 1024);
}

TEST_F(LoaderTest, LimitsRefuseZeroAndNonsense) {
  EXPECT_THAT(error(with("  limits: { max_connections: 0 }\n")),
              HasSubstr("server.limits.max_connections: must be at least 1, got '0'"));
  EXPECT_THAT(error(with("  limits: { max_header_count: 0 }\n")),
              HasSubstr("server.limits.max_header_count: must be at least 1"));
  EXPECT_THAT(error(with("  limits: { max_body_bytes: 0 }\n")),
              HasSubstr("server.limits.max_body_bytes: must be greater than 0"));
  EXPECT_THAT(error(with("  limits: { max_uri_bytes: 0KiB }\n")),
              HasSubstr("server.limits.max_uri_bytes: must be greater than 0"));
  EXPECT_THAT(error(with("  limits: { max_body_bytes: 1.5MiB }\n")),
              HasSubstr("server.limits.max_body_bytes: expected a size (4096, 64KiB, 1MiB, 1GiB), "
                        "got '1.5MiB'"));
  EXPECT_THAT(error(with("  limits: { max_body_bytes: 1MB }\n")), HasSubstr("expected a size"));
  EXPECT_THAT(error(with("  limits: { max_body_bytes: -1 }\n")), HasSubstr("expected a size"));
  EXPECT_THAT(error(with("  limits: { max_body_bytes: 99999999999GiB }\n")),
              HasSubstr("expected a size"));
  EXPECT_THAT(error(with("  limits: { header_timeout: 0s }\n")),
              HasSubstr("server.limits.header_timeout: must be greater than 0"));
  EXPECT_THAT(error(with("  limits: { idle_timeout: 60 }\n")),
              HasSubstr("server.limits.idle_timeout: expected a duration with a unit (250ms, 10s, "
                        "5m, 1h), got '60'"));
  EXPECT_THAT(error(with("  limits: { drain_timeout: 1.5s }\n")), HasSubstr("expected a duration"));
}

TEST_F(LoaderTest, PerIpCapMayNotExceedTheTotal) {
  EXPECT_EQ(error(with("  limits:\n    max_connections: 100\n    max_connections_per_ip: 101\n")),
            "policy.yaml:8:29: server.limits.max_connections_per_ip: 101 is more than "
            "max_connections (100)");
  // Only the total written: the default per-IP cap (256) is over it.
  EXPECT_THAT(error(with("  limits:\n    max_connections: 100\n")),
              HasSubstr("policy.yaml:7:22: server.limits.max_connections_per_ip: 256 is more than "
                        "max_connections (100)"));
  EXPECT_EQ(load(with("  limits: { max_connections: 100, max_connections_per_ip: 100 }\n"))
                .server.limits.max_connections_per_ip,
            100u);
}

TEST_F(LoaderTest, TrustedProxiesAreParsedAsCidrs) {
  const Policy policy =
      load(with("  trusted_proxies: [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n"));
  ASSERT_THAT(policy.server.trusted_proxies, SizeIs(3));
  EXPECT_EQ(policy.server.trusted_proxies[0].to_string(), "10.0.0.0/8");
  EXPECT_EQ(policy.server.trusted_proxies[1].to_string(), "192.0.2.7/32");
  EXPECT_EQ(policy.server.trusted_proxies[2].to_string(), "2001:db8::/32");
  EXPECT_TRUE(policy.server.trusted_proxies[0].contains(*core::IpAddress::parse("10.1.2.3")));

  EXPECT_EQ(error(with("  trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n")),
            "policy.yaml:6:35: server.trusted_proxies[1]: '10.0.0.1/8' is not a CIDR block: host "
            "bits set below the prefix length");
  EXPECT_THAT(error(with("  trusted_proxies: [\"proxy.example\"]\n")),
              HasSubstr("is not a CIDR block: not an IP address"));
  EXPECT_THAT(error(with("  trusted_proxies: \"10.0.0.0/8\"\n")),
              HasSubstr("server.trusted_proxies: expected a list"));
}

TEST_F(LoaderTest, RequestIdHeaderMustBeAToken) {
  const Policy policy =
      load(with("  request_id: { header: X-Correlation-Id, trust_incoming: true }\n"));
  EXPECT_EQ(policy.server.request_id.header, "X-Correlation-Id");
  EXPECT_TRUE(policy.server.request_id.trust_incoming);
  EXPECT_THAT(error(with("  request_id: { header: \"X Request\" }\n")),
              HasSubstr("server.request_id.header: 'X Request' is not a valid header name"));
  EXPECT_THAT(error(with("  request_id: { header: \"\" }\n")),
              HasSubstr("server.request_id.header: '' is not a valid header name"));
  EXPECT_THAT(error(with("  request_id: { header: \"X-Id:\" }\n")),
              HasSubstr("is not a valid header name"));
}

// ---- logging -----------------------------------------------------------------------------------

TEST_F(LoaderTest, LoggingLevelsAndTargets) {
  const std::vector<std::pair<std::string, LogLevel>> levels = {{"trace", LogLevel::trace},
                                                                {"debug", LogLevel::debug},
                                                                {"info", LogLevel::info},
                                                                {"warn", LogLevel::warn},
                                                                {"error", LogLevel::error}};
  for (const auto& [text, level] : levels) {
    EXPECT_EQ(load(with("logging: { level: " + text + " }\n")).logging.level, level);
  }
  EXPECT_THAT(error(with("logging: { level: INFO }\n")), HasSubstr("expected one of trace"));
  const Policy policy = load(with("logging: { access_log: off, security_log: stdout }\n"));
  EXPECT_EQ(policy.logging.access_log, "off");
  EXPECT_EQ(policy.logging.security_log, "stdout");
  EXPECT_EQ(load(with("logging: { access_log: stderr }\n")).logging.access_log, "stderr");
  EXPECT_THAT(error(with("logging: { access_log: \"\" }\n")),
              HasSubstr("logging.access_log: expected stdout, stderr, off or a file path"));
}

TEST_F(LoaderTest, LogFilePathsBecomeAbsolute) {
  std::filesystem::create_directories(dir_ / "logs");
  const Policy policy = load(with("logging:\n  access_log: logs/access.json\n  security_log: " +
                                  (dir_ / "security.json").string() + "\n"));
  EXPECT_EQ(policy.logging.access_log, (dir_ / "logs" / "access.json").string());
  EXPECT_EQ(policy.logging.security_log, (dir_ / "security.json").string());
  EXPECT_EQ(load(with("logging: { access_log: ./off }\n")).logging.access_log,
            (dir_ / "off").string());
  EXPECT_THAT(
      error(with("logging: { access_log: missing/access.json }\n")),
      HasSubstr("logging.access_log: folder '" + (dir_ / "missing").string() + "' does not exist"));
  EXPECT_THAT(error(with("logging: { access_log: logs }\n")), HasSubstr("is a folder, not a file"));
}

// ---- upstreams ---------------------------------------------------------------------------------

TEST_F(LoaderTest, UpstreamsKeepFileOrderAndTakeDefaults) {
  const Policy policy = load(with(R"(upstreams:
  zeta:
    endpoints: ["127.0.0.1:9000", "backend.internal:9001", "[::1]:9002"]
  alpha:
    endpoints: ["127.0.0.1:9100"]
    tls: { enabled: true, server_name: core.bank.example, verify: false }
    connect_timeout: 500ms
    response_timeout: 1m
    max_idle_per_endpoint: 0
    health_check: { path: "/healthz?full=1", interval: 2s }
    retries: 0
)"));
  ASSERT_THAT(policy.upstreams, SizeIs(2));
  const Upstream& zeta = policy.upstreams[0];
  EXPECT_EQ(zeta.name, "zeta");
  ASSERT_THAT(zeta.endpoints, SizeIs(3));
  EXPECT_EQ(zeta.endpoints[1].host, "backend.internal");
  EXPECT_EQ(zeta.endpoints[1].port, 9001);
  EXPECT_EQ(zeta.endpoints[2].host, "::1");
  EXPECT_FALSE(zeta.tls.enabled);
  EXPECT_TRUE(zeta.tls.verify);
  EXPECT_EQ(zeta.tls.ca_file, "");
  EXPECT_EQ(zeta.connect_timeout, seconds(2));
  EXPECT_EQ(zeta.response_timeout, seconds(30));
  EXPECT_EQ(zeta.max_idle_per_endpoint, 64u);
  EXPECT_EQ(zeta.health_check.path, "");
  EXPECT_EQ(zeta.health_check.interval, seconds(5));
  EXPECT_EQ(zeta.retries, 1u);
  EXPECT_EQ(zeta.location.line, 7);
  EXPECT_EQ(zeta.location.column, 3);

  const Upstream& alpha = policy.upstreams[1];
  EXPECT_EQ(alpha.name, "alpha");
  EXPECT_TRUE(alpha.tls.enabled);
  EXPECT_FALSE(alpha.tls.verify);
  EXPECT_EQ(alpha.tls.server_name, "core.bank.example");
  EXPECT_EQ(alpha.connect_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(alpha.response_timeout, std::chrono::minutes(1));
  EXPECT_EQ(alpha.max_idle_per_endpoint, 0u);
  EXPECT_EQ(alpha.health_check.path, "/healthz?full=1");
  EXPECT_EQ(alpha.health_check.interval, seconds(2));
  EXPECT_EQ(alpha.retries, 0u);

  EXPECT_EQ(policy.find_upstream("alpha"), &policy.upstreams[1]);
  EXPECT_EQ(policy.find_upstream("zeta"), &policy.upstreams[0]);
  EXPECT_EQ(policy.find_upstream("ALPHA"), nullptr);
  EXPECT_EQ(policy.find_upstream(""), nullptr);
}

TEST_F(LoaderTest, UpstreamRulesAreEnforced) {
  const auto upstream = [&](const std::string& body) {
    return with("upstreams:\n  core:\n" + body);
  };
  EXPECT_EQ(error(upstream("    retries: 1\n")),
            "policy.yaml:8:5: upstreams.core: endpoints is required");
  EXPECT_THAT(error(upstream("    endpoints: []\n")),
              HasSubstr("upstreams.core.endpoints: at least one endpoint is required"));
  EXPECT_THAT(error(upstream("    endpoints: \"127.0.0.1:1\"\n")),
              HasSubstr("upstreams.core.endpoints: expected a list"));
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:0\"]\n")),
              HasSubstr("upstreams.core.endpoints[0]: '127.0.0.1:0' has port 0"));
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n")),
              HasSubstr("upstreams.core.endpoints[1]: '127.0.0.1:1' is listed twice"));
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    retries: 11\n")),
              HasSubstr("upstreams.core.retries: must be between 0 and 10, got '11'"));
  EXPECT_EQ(
      load(upstream("    endpoints: [\"127.0.0.1:1\"]\n    retries: 10\n")).upstreams[0].retries,
      10u);
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    connect_timeout: 0ms\n")),
              HasSubstr("upstreams.core.connect_timeout: must be greater than 0"));
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    max_idle_per_endpoint: -3\n")),
              HasSubstr("upstreams.core.max_idle_per_endpoint: must be between 0 and 65535"));
  EXPECT_THAT(
      error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    health_check: { path: healthz }\n")),
      HasSubstr("upstreams.core.health_check.path: 'healthz' must start with '/'"));
  EXPECT_THAT(
      error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    health_check: { path: \"/a b\" }\n")),
      HasSubstr("upstreams.core.health_check.path: '/a b' must start with '/' and hold "
                "no spaces"));
  EXPECT_THAT(
      error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    health_check: { interval: 0s }\n")),
      HasSubstr("upstreams.core.health_check.interval: must be greater than 0"));
  EXPECT_THAT(
      error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    tls: { server_name: \"a b\" }\n")),
      HasSubstr("upstreams.core.tls.server_name: 'a b' is not a host name"));
  EXPECT_THAT(error(upstream("    endpoints: [\"127.0.0.1:1\"]\n    tls: { enabled: yes }\n")),
              HasSubstr("upstreams.core.tls.enabled: expected true or false"));
  EXPECT_THAT(error(with("upstreams:\n  \"core api\": { endpoints: [\"127.0.0.1:1\"] }\n")),
              HasSubstr("upstreams.core api: upstream names use letters"));
  EXPECT_THAT(error(with("upstreams:\n  core: [\"127.0.0.1:1\"]\n")),
              HasSubstr("upstreams.core: expected a mapping"));
}

// ---- headers -----------------------------------------------------------------------------------

TEST_F(LoaderTest, ResponseHeaderListsReplaceTheDefaults) {
  const Policy policy = load(with(R"yaml(headers:
  response:
    set:
      X-Frame-Options: SAMEORIGIN
      Permissions-Policy: "camera=()"
      Max-Forwards: 10
    remove: [Server, X-Debug]
)yaml"));
  using Pair = std::pair<std::string, std::string>;
  EXPECT_THAT(policy.headers.response_set,
              ElementsAre(Pair{"X-Frame-Options", "SAMEORIGIN"},
                          Pair{"Permissions-Policy", "camera=()"}, Pair{"Max-Forwards", "10"}));
  EXPECT_THAT(policy.headers.response_remove, ElementsAre("Server", "X-Debug"));

  // Only `remove` given: `set` keeps its defaults, and the other way round.
  const Policy defaults;
  const Policy only_remove = load(with("headers: { response: { remove: [] } }\n"));
  EXPECT_THAT(only_remove.headers.response_remove, IsEmpty());
  EXPECT_EQ(only_remove.headers.response_set, defaults.headers.response_set);
  const Policy only_set = load(with("headers: { response: { set: {} } }\n"));
  EXPECT_THAT(only_set.headers.response_set, IsEmpty());
  EXPECT_EQ(only_set.headers.response_remove, defaults.headers.response_remove);
}

TEST_F(LoaderTest, ResponseHeaderNamesAndValuesAreChecked) {
  const auto set = [&](const std::string& entry) {
    return with("headers:\n  response:\n    set:\n      " + entry + "\n");
  };
  EXPECT_EQ(error(set("\"Bad Name\": x")),
            "policy.yaml:9:7: headers.response.set.Bad Name: 'Bad Name' is not a valid header "
            "name");
  EXPECT_THAT(error(set("X-A: \"a\\r\\nInjected: 1\"")),
              HasSubstr("headers.response.set.X-A: value has a control character"));
  EXPECT_THAT(error(set("X-A: \"a\\0b\"")), HasSubstr("value has a control character"));
  EXPECT_THAT(error(set("X-A:")), HasSubstr("headers.response.set.X-A: expected a string"));
  EXPECT_THAT(error(set("X-A: [a]")), HasSubstr("expected a string, got a list"));
  EXPECT_THAT(error(set("Content-Length: \"0\"")),
              HasSubstr("Content-Length describes one message or one hop"));
  EXPECT_THAT(error(set("transfer-encoding: chunked")), HasSubstr("describes one message"));
  EXPECT_THAT(error(set("Connection: close")), HasSubstr("describes one message"));
  EXPECT_THAT(error(with("headers:\n  response:\n    set:\n      X-A: a\n      x-a: b\n")),
              HasSubstr("headers.response.set.x-a: header 'x-a' is set twice"));
  EXPECT_EQ(load(set("X-Tab: \"a\\tb\"")).headers.response_set[0].second, "a\tb");
  EXPECT_THAT(error(with("headers: { response: { remove: [\"Bad Name\"] } }\n")),
              HasSubstr("headers.response.remove[0]: 'Bad Name' is not a valid header name"));
  EXPECT_THAT(error(with("headers: { response: { set: [a] } }\n")),
              HasSubstr("headers.response.set: expected a mapping"));
}

TEST_F(LoaderTest, CookieFlags) {
  const Policy policy =
      load(with("headers: { cookies: { secure: false, http_only: false, same_site: Lax } }\n"));
  EXPECT_FALSE(policy.headers.cookies.secure);
  EXPECT_FALSE(policy.headers.cookies.http_only);
  EXPECT_EQ(policy.headers.cookies.same_site, SameSite::lax);
  EXPECT_EQ(load(with("headers: { cookies: { same_site: \"off\" } }\n")).headers.cookies.same_site,
            SameSite::off);
  EXPECT_EQ(load(with("headers: { cookies: { same_site: Strict } }\n")).headers.cookies.same_site,
            SameSite::strict);
  EXPECT_EQ(load(with("headers: { cookies: { same_site: None } }\n")).headers.cookies.same_site,
            SameSite::none);
  EXPECT_THAT(error(with("headers: { cookies: { same_site: strict } }\n")),
              HasSubstr("headers.cookies.same_site: expected one of Strict | Lax | None | off"));
  EXPECT_THAT(error(with("headers: { cookies: { same_site: None, secure: false } }\n")),
              HasSubstr("headers.cookies.same_site: None needs secure: true"));
}

TEST_F(LoaderTest, ErrorsSection) {
  EXPECT_FALSE(load(with("errors: { mask_upstream_5xx: false }\n")).errors.mask_upstream_5xx);
  EXPECT_TRUE(load(with("errors: { mask_upstream_5xx: true }\n")).errors.mask_upstream_5xx);
}

// ---- routes ------------------------------------------------------------------------------------

class RouteTest : public LoaderTest {
 protected:
  static std::string routes(const std::string& body) {
    return with(
        "upstreams:\n  core: { endpoints: [\"127.0.0.1:9000\"] }\n  auth: { endpoints: "
        "[\"127.0.0.1:9001\"] }\nroutes:\n" +
        body);
  }
  // One route `r` to `core` with the given match.
  static std::string match(const std::string& match) {
    return routes("  - name: r\n    match: " + match + "\n    upstream: core\n");
  }
};

TEST_F(RouteTest, RoutesAreParsedInOrder) {
  const Policy policy = load(routes(R"(  - name: login
    match: { path_prefix: /api/login, methods: [POST] }
    upstream: auth
    auth: none
  - name: health
    match: { path: /health, methods: [GET, HEAD] }
    upstream: core
    enforce: false
  - name: rest
    match: { path_prefix: / }
    upstream: core
)"));
  ASSERT_THAT(policy.routes, SizeIs(3));
  const Route& login = policy.routes[0];
  EXPECT_EQ(login.name, "login");
  EXPECT_EQ(login.match.path_prefix, "/api/login");
  EXPECT_EQ(login.match.path, "");
  EXPECT_THAT(login.match.methods, ElementsAre("POST"));
  EXPECT_EQ(login.upstream, "auth");
  EXPECT_EQ(login.upstream_index, 1u);
  EXPECT_TRUE(login.enforce);
  EXPECT_EQ(login.location.line, 10);
  EXPECT_EQ(login.location.column, 5);
  EXPECT_EQ(login.location.file, (dir_ / "policy.yaml").string());

  const Route& health = policy.routes[1];
  EXPECT_EQ(health.match.path, "/health");
  EXPECT_THAT(health.match.methods, ElementsAre("GET", "HEAD"));
  EXPECT_EQ(health.upstream_index, 0u);
  EXPECT_FALSE(health.enforce);

  const Route& rest = policy.routes[2];
  EXPECT_EQ(rest.match.path_prefix, "/");
  EXPECT_THAT(rest.match.methods, IsEmpty());
  EXPECT_EQ(&policy.upstreams[rest.upstream_index], policy.find_upstream("core"));
}

TEST_F(RouteTest, RequiredKeys) {
  EXPECT_EQ(error(routes("  - match: { path: / }\n    upstream: core\n")),
            "policy.yaml:10:5: routes[0]: name is required");
  EXPECT_THAT(error(routes("  - name: r\n    upstream: core\n")),
              HasSubstr("routes[0]: match is required"));
  EXPECT_THAT(error(routes("  - name: r\n    match: { path: / }\n")),
              HasSubstr("routes[0]: upstream is required"));
  EXPECT_EQ(error(routes("  - name: r\n    match: { path: / }\n    upstream: cor\n")),
            "policy.yaml:12:15: routes[0].upstream: no upstream named 'cor' in upstreams");
}

TEST_F(RouteTest, NamesMustBeUniqueAndPlain) {
  EXPECT_EQ(error(routes("  - { name: a, match: { path: /a }, upstream: core }\n  - { name: a, "
                         "match: { path: /b }, upstream: core }\n")),
            "policy.yaml:11:13: routes[1].name: route name 'a' is already used (line 10)");
  EXPECT_THAT(error(routes("  - { name: \"a b\", match: { path: /a }, upstream: core }\n")),
              HasSubstr("routes[0].name: 'a b' is not a route name"));
  EXPECT_THAT(error(routes("  - { name: \"\", match: { path: /a }, upstream: core }\n")),
              HasSubstr("routes[0].name: '' is not a route name"));
}

TEST_F(RouteTest, PathAndPrefixAreExclusiveAndOneIsNeeded) {
  EXPECT_THAT(error(match("{ path: /a, path_prefix: /a }")),
              HasSubstr("routes[0].match: give path or path_prefix, not both"));
  EXPECT_THAT(error(match("{ methods: [GET] }")),
              HasSubstr("routes[0].match: needs path or path_prefix"));
  EXPECT_THAT(error(match("/api")), HasSubstr("routes[0].match: expected a mapping"));
}

TEST_F(RouteTest, PathsMustBeNormalised) {
  EXPECT_EQ(load(match("{ path_prefix: /api/ }")).routes[0].match.path_prefix, "/api/");
  EXPECT_EQ(load(match("{ path: \"/a/b%20c/~x:y@z\" }")).routes[0].match.path, "/a/b%20c/~x:y@z");
  EXPECT_THAT(error(match("{ path_prefix: api }")),
              HasSubstr("routes[0].match.path_prefix: 'api' must start with '/'"));
  EXPECT_THAT(error(match("{ path_prefix: \"\" }")), HasSubstr("must start with '/'"));
  EXPECT_THAT(error(match("{ path: \"/a?b=1\" }")), HasSubstr("must not contain a query"));
  EXPECT_THAT(error(match("{ path: \"/a#b\" }")), HasSubstr("must not contain a query"));
  EXPECT_THAT(error(match("{ path: \"/a b\" }")), HasSubstr("must be percent-encoded"));
  EXPECT_THAT(error(match("{ path: \"/a\\\\b\" }")), HasSubstr("must be percent-encoded"));
  EXPECT_THAT(error(match("{ path_prefix: \"/a//b\" }")), HasSubstr("has an empty segment"));
  EXPECT_THAT(error(match("{ path_prefix: \"/a/../b\" }")), HasSubstr("'.' or '..' segment"));
  EXPECT_THAT(error(match("{ path_prefix: \"/a/.\" }")), HasSubstr("'.' or '..' segment"));
  EXPECT_THAT(error(match("{ path: \"/%41\" }")), HasSubstr("encodes an unreserved character"));
  EXPECT_THAT(error(match("{ path: \"/a%2fb\" }")), HasSubstr("upper-case hex"));
  EXPECT_THAT(error(match("{ path: \"/a%2Fb\" }")), HasSubstr("requests are refused for"));
  EXPECT_THAT(error(match("{ path: \"/a%zz\" }")), HasSubstr("malformed percent escape"));
  EXPECT_THAT(error(match("{ path: \"/a%2\" }")), HasSubstr("malformed percent escape"));
}

TEST_F(RouteTest, MethodsAreUpperCaseTokens) {
  EXPECT_THAT(load(match("{ path: /, methods: [GET, POST, PROPFIND] }")).routes[0].match.methods,
              ElementsAre("GET", "POST", "PROPFIND"));
  EXPECT_EQ(error(match("{ path: /, methods: [get] }")),
            "policy.yaml:11:33: routes[0].match.methods[0]: methods are case-sensitive; write "
            "'GET', not 'get'");
  EXPECT_THAT(error(match("{ path: /, methods: [Post] }")), HasSubstr("write 'POST'"));
  EXPECT_THAT(error(match("{ path: /, methods: [GET, GET] }")),
              HasSubstr("routes[0].match.methods[1]: 'GET' is listed twice"));
  EXPECT_THAT(error(match("{ path: /, methods: [\"GE T\"] }")),
              HasSubstr("'GE T' is not a method name"));
  EXPECT_THAT(error(match("{ path: /, methods: [] }")),
              HasSubstr("routes[0].match.methods: empty list; leave methods out"));
  EXPECT_THAT(error(match("{ path: /, methods: GET }")),
              HasSubstr("routes[0].match.methods: expected a list"));
}

TEST_F(RouteTest, EnforceIsABoolean) {
  EXPECT_TRUE(load(match("{ path: / }")).routes[0].enforce);
  EXPECT_THAT(error(routes("  - { name: r, match: { path: / }, upstream: core, enforce: no }\n")),
              HasSubstr("routes[0].enforce: expected true or false, got 'no'"));
}

// ---- files on disk ----------------------------------------------------------------------------

TEST_F(LoaderTest, LoadPolicyReadsTheFile) {
  const auto file = dir_.write("conf/main.yaml", kMinimal);
  const Policy policy = load_policy(file);
  EXPECT_EQ(policy.source_file, file.string());
  EXPECT_THAT(policy.server.listen, SizeIs(1));
}

TEST_F(LoaderTest, UnreadablePolicyFileIsOneDiagnosticWithoutPlace) {
  try {
    load_policy(dir_ / "missing.yaml");
    FAIL() << "expected PolicyError";
  } catch (const PolicyError& e) {
    ASSERT_THAT(e.diagnostics(), SizeIs(1));
    EXPECT_EQ(e.diagnostics()[0].line, 0);
    EXPECT_EQ(e.diagnostics()[0].file, (dir_ / "missing.yaml").string());
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
  }
  EXPECT_THROW(load_policy(dir_.path()), PolicyError);
}

TEST_F(LoaderTest, DiagnosticsNameTheFileAsGiven) {
  try {
    load_policy_text("version: 3\n", "some/relative.yaml");
    FAIL() << "expected PolicyError";
  } catch (const PolicyError& e) {
    EXPECT_EQ(e.diagnostics().front().file, "some/relative.yaml");
  }
}

// Hostile or odd YAML must end in a PolicyError, never a crash or another exception type.
TEST_F(LoaderTest, OddYamlEndsInPolicyError) {
  const std::vector<std::string> inputs = {
      "a: &x [*x]\n",
      "version: 1\nserver: &s\n  listen: *s\n",
      std::string(5000, '['),
      "version: 1\nx: " + std::string(5000, '{'),
      std::string("version: 1\n\0\x01\x02", 15),
      "version: 1\n? |\n  a\n: b\n",
      "version: !!binary aGVsbG8=\n",
      "<<: { version: 1 }\n",
      "\t\tversion: 1\n",
      "version: 1\nserver: { listen: [ { address: \"" + std::string(100000, 'a') + ":1\" } ] }\n",
  };
  for (const auto& text : inputs) {
    EXPECT_THROW(load(text), PolicyError) << text.substr(0, 80);
  }
}

TEST_F(LoaderTest, AnchorsAndAliasesAreFollowed) {
  const Policy policy = load(R"(version: 1
server:
  listen:
    - &plain { address: "127.0.0.1:0", redirect_https: true }
upstreams:
  a: &upstream { endpoints: ["127.0.0.1:9000"], retries: 3 }
  b: *upstream
)");
  ASSERT_THAT(policy.upstreams, SizeIs(2));
  EXPECT_EQ(policy.upstreams[1].name, "b");
  EXPECT_EQ(policy.upstreams[1].retries, 3u);
}

TEST_F(LoaderTest, ControlCharactersInMessagesAreEscaped) {
  EXPECT_THAT(error(with("logging: { level: \"\\e[31mred\" }\n")),
              HasSubstr("got the quoted string '\\x1b[31mred'"));
}

}  // namespace
}  // namespace portcullis::config

namespace portcullis::config {
namespace {

class BodyBoundsTest : public ::testing::Test {
 protected:
  std::string error(const std::string& text) {
    try {
      load_policy_text(text, dir_ / "policy.yaml");
    } catch (const PolicyError& e) {
      return e.diagnostics()[0].to_string();
    }
    return "";
  }
  std::string route_with(const std::string& limits, const std::string& validate) {
    {
      std::ofstream schema(dir_ / "schema.json");
      schema << R"({"type":"object"})";
    }
    return "version: 1\nserver:\n  listen: [{ address: '127.0.0.1:0', redirect_https: true }]\n" +
           limits + "upstreams: { core: { endpoints: ['127.0.0.1:1'] } }\nroutes:\n" +
           "  - name: r\n    match: { path_prefix: /api }\n    upstream: core\n" + validate;
  }
  testing::TempDir dir_;
};

TEST_F(BodyBoundsTest, ServerBodyLimitIsAtMostOneGibibyte) {
  EXPECT_EQ(error(route_with("  limits: { max_body_bytes: 1GiB }\n", "")), "");
  EXPECT_THAT(error(route_with("  limits: { max_body_bytes: 2GiB }\n", "")),
              HasSubstr("policy.yaml:4:29: server.limits.max_body_bytes: at most 1GiB"));
}

TEST_F(BodyBoundsTest, ABodyCheckedAgainstASchemaIsAtMostSixteenMebibytes) {
  const std::string big = "  limits: { max_body_bytes: 64MiB }\n";
  EXPECT_THAT(error(route_with(big, "    validate: { json_schema: schema.json }\n")),
              HasSubstr("routes[0].validate: a body checked against json_schema is read whole"));
  EXPECT_THAT(
      error(route_with(big, "    validate: { json_schema: schema.json, max_body_bytes: 32MiB }\n")),
      HasSubstr("routes[0].validate.max_body_bytes: a body checked against json_schema"));
  EXPECT_EQ(
      error(route_with(big, "    validate: { json_schema: schema.json, max_body_bytes: 16MiB }\n")),
      "");
  EXPECT_EQ(error(route_with(big, "    validate: { content_types: [application/json] }\n")), "");
}

}  // namespace
}  // namespace portcullis::config

namespace portcullis::config {
namespace {

TEST(UpstreamHealthKeys, MaxFailuresIsReadAndBounded) {
  testing::TempDir dir;
  const std::string base =
      "version: 1\nserver:\n  listen: [{ address: '127.0.0.1:0', redirect_https: true }]\n"
      "upstreams:\n  core:\n    endpoints: ['127.0.0.1:1']\n";
  const auto policy = load_policy_text(base + "    health_check: { max_failures: 5 }\n",
                                       dir.path() / "policy.yaml");
  EXPECT_EQ(policy.upstreams[0].health_check.max_failures, 5u);
  EXPECT_EQ(
      load_policy_text(base, dir.path() / "policy.yaml").upstreams[0].health_check.max_failures,
      3u);
  try {
    load_policy_text(base + "    health_check: { max_failures: 0 }\n", dir.path() / "policy.yaml");
    ADD_FAILURE() << "max_failures: 0 was accepted";
  } catch (const PolicyError& e) {
    EXPECT_THAT(e.diagnostics()[0].to_string(),
                HasSubstr("policy.yaml:7:35: upstreams.core.health_check.max_failures"));
  }
}

}  // namespace
}  // namespace portcullis::config
