#pragma once
// The policy: an immutable, fully validated picture of one YAML policy file. Everything a
// request needs is resolved here at load time (absolute file paths, parsed addresses and CIDRs,
// route -> upstream indices), so the request path never parses or looks up configuration text.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "portcullis/core/ip.hpp"

namespace portcullis::config {

using Duration = std::chrono::milliseconds;

// Where a value was written, for diagnostics raised after loading (for example a certificate
// that OpenSSL refuses when a listener starts). Lines and columns are 1-based.
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

// "host:port" split and checked; host is an IP literal or a name ("[::1]:8443" for IPv6).
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  std::string text;  // as written
};

enum class TlsVersion { tls1_2, tls1_3 };
enum class ClientAuth { none, optional, required };

struct CertificateFiles {
  std::string cert_file;  // absolute path to a PEM chain, leaf first
  std::string key_file;   // absolute path to the PEM private key
  Location location;
};

struct ListenerTls {
  std::vector<CertificateFiles> certificates;  // at least one; first is the default for SNI
  TlsVersion min_version = TlsVersion::tls1_2;
  std::string ciphers;    // TLS 1.2 cipher list; empty = ECDHE with AEAD only
  std::string client_ca;  // absolute path of a PEM bundle, empty = no client certificates asked
  ClientAuth client_auth = ClientAuth::none;
};

// Exactly one of `tls` and `redirect_https` is set: a listener either terminates TLS and
// proxies, or speaks plain HTTP and only answers 308 towards https.
struct Listener {
  HostPort address;
  std::optional<ListenerTls> tls;
  bool redirect_https = false;
  Location location;
};

struct AdminSettings {
  HostPort address{"127.0.0.1", 9901, "127.0.0.1:9901"};
  std::string token_file;  // absolute path, empty = write endpoints off
};

// Upper bounds enforced at load. A streamed body never sits in memory whole; one checked against a
// JSON schema does, so its bound is lower.
inline constexpr std::uint64_t kMaxBodyBytes = std::uint64_t{1} << 30;            // 1 GiB
inline constexpr std::uint64_t kMaxValidatedBodyBytes = std::uint64_t{16} << 20;  // 16 MiB

struct Limits {
  std::uint64_t max_connections = 10000;
  std::uint64_t max_connections_per_ip = 256;
  std::uint64_t max_uri_bytes = 8 * 1024;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_header_count = 100;
  std::uint64_t max_body_bytes = 1024 * 1024;
  Duration header_timeout = std::chrono::seconds(10);
  Duration body_timeout = std::chrono::seconds(30);
  Duration idle_timeout = std::chrono::seconds(60);
  Duration drain_timeout = std::chrono::seconds(30);
};

struct RequestIdSettings {
  std::string header = "X-Request-Id";
  bool trust_incoming = false;
};

struct ServerSettings {
  unsigned workers = 0;  // 0 = one per CPU core
  std::vector<Listener> listen;
  AdminSettings admin;
  Limits limits;
  std::vector<core::Cidr> trusted_proxies;
  RequestIdSettings request_id;
};

enum class LogLevel { trace, debug, info, warn, error };

struct LoggingSettings {
  LogLevel level = LogLevel::info;
  std::string access_log = "stdout";    // stdout | stderr | off | absolute file path
  std::string security_log = "stderr";  // same choices
};

struct UpstreamTls {
  bool enabled = false;
  std::string ca_file;      // absolute path; empty = the system trust store
  std::string server_name;  // SNI and the name verified; empty = the endpoint's host
  bool verify = true;
};

struct HealthCheck {
  std::string path;  // empty = passive checks only
  Duration interval = std::chrono::seconds(5);
  unsigned max_failures = 3;  // connect failures or resets in a row that hold an endpoint down
};

struct Upstream {
  std::string name;
  std::vector<HostPort> endpoints;  // at least one
  UpstreamTls tls;
  Duration connect_timeout = std::chrono::seconds(2);
  Duration response_timeout = std::chrono::seconds(30);
  unsigned max_idle_per_endpoint = 64;
  HealthCheck health_check;
  unsigned retries = 1;  // extra attempts for idempotent methods after a failed connect
  Location location;
};

enum class SameSite { off, lax, strict, none };  // off = leave SameSite as the upstream set it

struct CookieFlags {
  bool secure = true;
  bool http_only = true;
  SameSite same_site = SameSite::strict;
};

struct HeaderSettings {
  // Response headers set on every response, the gateway's own included; order as written.
  std::vector<std::pair<std::string, std::string>> response_set = {
      {"Strict-Transport-Security", "max-age=63072000; includeSubDomains"},
      {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-store"},
  };
  // Response header names removed from upstream responses (compared case-insensitively).
  std::vector<std::string> response_remove = {"Server", "X-Powered-By", "X-AspNet-Version",
                                              "X-AspNetMvc-Version"};
  CookieFlags cookies;
};

struct ErrorSettings {
  bool mask_upstream_5xx = true;
};

// Where revocations, bans and rate-limit budgets live (`state`).
enum class StateBackendKind { memory, redis };
// What a request that needs the shared state does while it cannot be reached.
enum class OnUnavailable { fail_closed, fail_open };

// `state.redis`: the url is kept as written and also split into its parts.
struct RedisSettings {
  std::string url = "redis://127.0.0.1:6379/0";
  bool tls = false;  // rediss://
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;  // redis://user@host ; a password inside the URL is refused (use password_file)
  unsigned database = 0;      // the /N path
  std::string password_file;  // absolute path or empty; checked readable and not blank
  std::string ca_file;  // rediss:// only: PEM bundle verifying the server; empty = system store
  std::string key_prefix = "portcullis:";
  Duration command_timeout = std::chrono::milliseconds(50);
  Location location;  // of the url (or of `redis:` when the url is left out)
};

struct StateSettings {
  StateBackendKind backend = StateBackendKind::memory;
  std::string memory_path;  // state.memory.path, absolute; empty = this process only
  RedisSettings redis;
  OnUnavailable on_unavailable = OnUnavailable::fail_closed;
  // Bound on this instance's rate-limit and login-failure tables (state.local_memory).
  std::uint64_t local_memory = 64 * 1024 * 1024;
  // How long a subject cut-off is kept after its issued_before (state.max_token_lifetime).
  Duration max_token_lifetime = std::chrono::hours(24);
  Location location;  // of `state:`, or none when the section is left out
};

enum class RateLimitKey { client_ip, jwt_sub };

// A named GCRA limit (`rate_limits`): `rate` requests per `per` sustained, at most `burst` at
// once.
struct RateLimit {
  std::string name;
  RateLimitKey key = RateLimitKey::client_ip;
  std::uint64_t rate = 0;
  Duration per{};
  std::uint64_t burst = 0;
  Location location;  // of the name
};

// A route's `login_protection`: `max_failures` answers with a status in `failure_status` from
// one client IP within `window` ban that IP for `ban`, on every route.
struct LoginProtection {
  std::vector<int> failure_status;
  std::uint32_t max_failures = 0;
  Duration window{};
  Duration ban{};
  Location location;
};

// `ip_rules`, applied when a connection is accepted. Lists may repeat a block.
struct IpRules {
  std::vector<core::Cidr> deny;   // always refused
  std::vector<core::Cidr> allow;  // non-empty = only these may connect
};

// A JWT issuer the gateway trusts. Exactly one key source: a JWKS file, a JWKS https URL
// (refreshed every jwks_refresh), or an HMAC secret file (HS* algorithms only).
struct JwtProvider {
  std::string name;
  std::string issuer;
  std::vector<std::string> audiences;  // at least one; a token's aud must contain one of them
  std::string jwks_file;               // absolute path, or empty
  std::string jwks_url;                // https URL, or empty
  std::string jwks_ca_file;            // PEM bundle verifying jwks_url's server; empty = system
  std::string secret_file;             // absolute path, or empty
  Duration jwks_refresh = std::chrono::minutes(5);
  std::vector<std::string> algorithms;  // JOSE names; all symmetric or all asymmetric
  Duration clock_skew = std::chrono::seconds(30);
  std::vector<std::string> required_claims;
  bool require_exp = true;
  std::string token_header = "Authorization";  // used when token_cookie is empty
  std::string token_scheme = "Bearer";
  std::string token_cookie;  // non-empty: the token is this cookie
  std::vector<std::pair<std::string, std::string>> forward_claims;  // claim -> upstream header
  Location location;
};

// A claim value a route requires: equal to the claim, or a member when the claim is an array.
struct ClaimRequirement {
  enum class Kind { string, integer, boolean };
  std::string claim;
  std::string value;  // as written; integers and booleans in canonical form
  Kind kind = Kind::string;
};

struct RouteAuth {
  std::string provider;            // name as written
  std::size_t provider_index = 0;  // index into Policy::jwt_providers
  std::vector<std::string> scopes;
  std::vector<ClaimRequirement> claims;
};

// A route's `validate:` block. The body limit may only lower server.limits.max_body_bytes.
struct RouteValidation {
  std::vector<std::string> content_types;  // "type/subtype" or "type/*"; empty = any
  std::uint64_t max_body_bytes = 0;        // 0 = server.limits.max_body_bytes
  std::string json_schema;                 // absolute path, or empty
  bool error_pointer = true;               // a 400 names the first failing place
  Location location;                       // of the block, for compile errors
  Location json_schema_location;
};

struct RouteMatch {
  std::string path;                  // exact path; empty = not used
  std::string path_prefix;           // segment-wise prefix; empty = not used
  std::vector<std::string> methods;  // upper case; empty = any method
};

struct Route {
  std::string name;
  RouteMatch match;
  std::string upstream;            // name as written
  std::size_t upstream_index = 0;  // index into Policy::upstreams
  std::optional<RouteAuth> auth;
  std::optional<RouteValidation> validate;  // empty = auth: none
  bool enforce = true;
  std::vector<std::size_t> rate_limits;  // indices into Policy::rate_limits, in the order written
  std::optional<LoginProtection> login_protection;
  Location location;
};

struct Policy {
  int version = 1;
  std::string source_file;  // absolute path of the policy file
  ServerSettings server;
  LoggingSettings logging;
  std::vector<Upstream> upstreams;         // in file order; routes refer to them by index
  std::vector<JwtProvider> jwt_providers;  // in file order; routes refer to them by index
  StateSettings state;
  std::vector<RateLimit> rate_limits;  // in file order; routes refer to them by index
  IpRules ip_rules;
  HeaderSettings headers;
  ErrorSettings errors;
  std::vector<Route> routes;  // first match wins

  const Upstream* find_upstream(std::string_view name) const;
};

}  // namespace portcullis::config
