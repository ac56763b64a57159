// The full example policy of the version 1 contract (docs: the policy contract) loads as written,
// with the files it names, and means what the contract says.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "portcullis/config/loader.hpp"
#include "unit/config/config_test_support.hpp"

namespace portcullis::config {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

// Copied verbatim from the contract.
constexpr const char* kContractExample = R"(version: 1

server:
  workers: 0                         # 0 = one per CPU core
  listen:
    - address: "0.0.0.0:8443"
      tls:
        certificates:                # several = chosen by SNI; first is the default
          - { cert: tls/server.crt, key: tls/server.key }
        min_version: TLS1.2          # TLS1.2 | TLS1.3 ; nothing older is ever offered
        ciphers: ""                  # TLS1.2 list; empty = ECDHE with AEAD only
        client_ca: ""                # PEM bundle; set it to ask for client certificates
        client_auth: none            # none | optional | required
    - address: "0.0.0.0:8080"
      redirect_https: true           # plain HTTP listener that only answers 308 to https
  admin:
    address: "127.0.0.1:9901"        # /metrics /healthz /readyz and the admin API
    token_file: ""                   # bearer token for write endpoints; empty = they are off
  limits:                            # per process; a route's validate.max_body_bytes may lower the body limit
    max_connections: 10000
    max_connections_per_ip: 256      # over either cap: closed at accept, before TLS
    max_uri_bytes: 8KiB
    max_header_bytes: 16KiB          # all header lines together
    max_header_count: 100
    max_body_bytes: 1MiB
    header_timeout: 10s              # whole request head must arrive within this
    body_timeout: 30s
    idle_timeout: 60s                # keep-alive idle
    drain_timeout: 30s
  trusted_proxies: []                # CIDRs whose X-Forwarded-For is believed
  request_id: { header: X-Request-Id, trust_incoming: false }

logging:
  level: info                        # trace | debug | info | warn | error
  access_log: stdout                 # stdout | stderr | off | a file path ; JSON lines
  security_log: stderr               # rejections, bans, revocations, reloads ; JSON lines

state:                               # where denylist, bans and rate counters live
  backend: memory                    # memory (single instance) | redis (shared by a fleet)
  memory:
    path: ""                         # file that keeps revocations and bans across restarts and
                                     # crashes ; "" = this process only (--check warns)
  redis:
    url: "redis://127.0.0.1:6379/0"  # rediss:// = TLS ; user may be given as redis://user@host
    password_file: ""
    key_prefix: "portcullis:"
    command_timeout: 50ms
  on_unavailable: fail_closed        # fail_closed | fail_open

upstreams:
  core:
    endpoints: ["127.0.0.1:9000"]    # several = load balanced, unhealthy ones skipped
    tls: { enabled: false, ca_file: "", server_name: "", verify: true }
    connect_timeout: 2s
    response_timeout: 30s
    max_idle_per_endpoint: 64
    health_check: { path: "", interval: 5s }   # empty path = passive only
    retries: 1                       # idempotent methods only

jwt_providers:
  corp:
    issuer: "https://idp.bank.example"
    audiences: ["core-banking"]
    jwks_file: keys/jwks.json        # exactly one of jwks_file / jwks_url
    jwks_url: ""
    jwks_refresh: 5m
    algorithms: [RS256, ES256]       # allowed; anything else, and "none" always, is rejected
    clock_skew: 30s
    required_claims: [exp, jti]
    token: { header: Authorization, scheme: Bearer }   # or { cookie: NAME }
    forward_claims: { sub: X-Auth-Subject, scope: X-Auth-Scope }

rate_limits:                         # GCRA: `rate` per `per` sustained, `burst` = most requests at once
  per_ip:    { key: client_ip, rate: 100, per: 1s, burst: 200 }
  per_user:  { key: jwt.sub,   rate: 20,  per: 1s, burst: 20 }
  login_ip:  { key: client_ip, rate: 10,  per: 1m, burst: 10 }

headers:
  response:
    set:
      Strict-Transport-Security: "max-age=63072000; includeSubDomains"
      Content-Security-Policy: "default-src 'none'; frame-ancestors 'none'"
      X-Content-Type-Options: nosniff
      X-Frame-Options: DENY
      Referrer-Policy: no-referrer
      Cache-Control: no-store
    remove: [Server, X-Powered-By, X-AspNet-Version, X-AspNetMvc-Version]
  cookies: { secure: true, http_only: true, same_site: Strict }

errors:
  mask_upstream_5xx: true

ip_rules:
  deny: []                           # CIDRs always refused
  allow: []                          # non-empty = only these may connect

routes:                              # first match wins; no match = 404
  - name: login
    match: { path_prefix: /api/login, methods: [POST] }
    upstream: core
    auth: none
    rate_limit: [login_ip]
    login_protection: { failure_status: [401, 403], max_failures: 5, window: 15m, ban: 30m }
    validate:
      content_types: [application/json]
      max_body_bytes: 4KiB
      json_schema: schemas/login.json
  - name: accounts
    match: { path_prefix: /api/accounts }
    upstream: core
    auth: { jwt: corp, scopes: ["accounts:read"], claims: { amr: mfa } }
    rate_limit: [per_ip, per_user]
    enforce: true                    # false = report-only: log and count, let it pass
)";

TEST(ContractExample, LoadsWithTheFilesItNames) {
  testing::TempDir dir;
  testing::write_key_pair(dir, "tls/server.crt", "tls/server.key");
  dir.write("keys/jwks.json", R"({"keys":[]})");
  dir.write("schemas/login.json", R"({"type":"object"})");
  dir.write("policy.yaml", kContractExample);

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
