#pragma once
// A policy compiled for serving: the Policy plus everything derived from it once at load time
// (router, TLS contexts, resolved upstream endpoints with their shared health and pool ids).
// A Runtime is immutable; a reload builds a new one and swaps it in. Long-lived state that must
// survive a reload (ticket keys, endpoint health, connection counts) lives in Services.

#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "portcullis/auth/token_cache.hpp"
#include "portcullis/auth/token_hash.hpp"
#include "portcullis/config/policy.hpp"
#include "portcullis/core/clock.hpp"
#include "portcullis/filters/jwt_auth.hpp"
#include "portcullis/filters/request_chain.hpp"
#include "portcullis/filters/router.hpp"
#include "portcullis/http/request_parser.hpp"
#include "portcullis/io/tls_context.hpp"
#include "portcullis/limits/cidr_set.hpp"
#include "portcullis/limits/denied_until.hpp"
#include "portcullis/limits/local_limiter.hpp"
#include "portcullis/limits/login_failures.hpp"
#include "portcullis/net/connection_limiter.hpp"
#include "portcullis/net/jwks_client.hpp"
#include "portcullis/obs/logs.hpp"
#include "portcullis/obs/metrics.hpp"
#include "portcullis/state/backend.hpp"
#include "portcullis/upstream/endpoint_health.hpp"
#include "portcullis/upstream/runtime.hpp"
#include "portcullis/validate/request_rules.hpp"

namespace portcullis::net {

// Process-wide state that outlives policy reloads. The policy-driven parts (state backend,
// limiter, login-failure counts) are created from the first policy that is served and kept by
// later ones while their settings are unchanged (see build_runtime).
struct Services {
  explicit Services(std::string_view version);
  ~Services();

  std::shared_ptr<io::TicketKeys> ticket_keys = std::make_shared<io::TicketKeys>();
  upstream::EndpointRegistry endpoints;
  ConnectionLimiter connections;
  obs::Metrics metrics;
  auth::VerifiedTokenCache token_cache;              // keyed by token hash, settings and key set
  JwksRegistry remote_keys;                          // key sets fetched from jwks_url, by URL
  const core::Clock* clock = &core::system_clock();  // tests of time-driven logic inject theirs

  // Makes the `redis` state backend (set by main, which links the redis module: the network layer
  // does not depend on it). Unset = the redis backend is refused at load.
  std::function<std::shared_ptr<state::Backend>(const config::StateSettings&, const core::Clock&)>
      make_redis_backend;
  std::mutex policy_services_mutex;  // build_runtime runs on the signal thread; once at a time
  std::shared_ptr<state::Backend> state;
  std::string state_settings;  // what `state` was built from, to tell whether a reload changes it
  std::shared_ptr<limits::LocalLimiter> limiter;
  std::uint64_t limiter_bytes = 0;
  limits::LoginFailureTracker login_failures;
  limits::DeniedUntilCache denied;  // clients a fleet-wide limit refused, until when
  std::unordered_map<std::string, std::uint32_t> limit_ids;  // by limit or route name, stable
  std::uint32_t stable_id(const std::string& name);
};

struct JwtProviderRuntime {
  std::unique_ptr<filters::JwtProviderGate> gate;
  std::shared_ptr<RemoteJwks> remote;  // when the keys come from jwks_url
};

struct ListenerRuntime {
  const config::Listener* settings = nullptr;
  std::unique_ptr<io::ServerTlsContext> tls;  // when the listener terminates TLS
};

struct Runtime {
  std::shared_ptr<const config::Policy> policy;
  filters::Router router;
  std::vector<ListenerRuntime> listeners;            // policy order
  std::vector<upstream::UpstreamRuntime> upstreams;  // policy order; routes index into it
  http::HeadLimits head_limits;
  std::size_t head_buffer_bytes = 0;  // room for the largest head the limits allow
  std::shared_ptr<obs::Logs> logs;    // kept across reloads while `logging` is unchanged
  std::vector<const obs::RouteMetrics*> route_metrics;              // by route index
  std::vector<JwtProviderRuntime> jwt_providers;                    // policy order
  std::vector<std::unique_ptr<filters::RouteAuthRule>> route_auth;  // by route; null = none
  std::vector<std::string> claim_headers;  // every forward_claims header: gateway-owned
  std::vector<std::unique_ptr<validate::RequestRules>> route_rules;  // by route; null = none
  std::vector<filters::RouteChain> route_chains;                     // by route
  const obs::RouteMetrics* unmatched_metrics = nullptr;
  limits::IpRules ip_rules;
  std::optional<auth::TokenDigest> admin_token;  // of server.admin.token_file; none = API off
  std::shared_ptr<state::Backend> state;         // the backend this policy runs with
  std::shared_ptr<limits::LocalLimiter> limiter;
  std::vector<std::uint32_t> login_protection_ids;  // by route: its failure counts' key

  explicit Runtime(std::shared_ptr<const config::Policy> p);
};

// Compiles `policy`. Throws TlsSetupError or std::runtime_error ("FILE:LINE:COL: message") when
// a certificate, key or endpoint name cannot be used. `previous` (the runtime being replaced, if
// any) lends its log files when the logging settings did not change.
// With `fetch_remote_keys`, a jwks_url never fetched before is fetched before this returns (a
// failure is reported in `warnings`, and its tokens are refused until a later fetch succeeds).
std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const config::Policy> policy,
                                             Services& services, const Runtime* previous = nullptr,
                                             bool fetch_remote_keys = false,
                                             std::vector<std::string>* warnings = nullptr);

}  // namespace portcullis::net
