#pragma once
// The full example policy of the version 1 contract, copied verbatim: it must load (see
// contract_test.cpp) and every key it names must appear in conf/portcullis.yaml (see
// reference_test.cpp).

namespace portcullis::config::testing {

inline constexpr const char* kContractExample = R"(version: 1

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

}  // namespace portcullis::config::testing
