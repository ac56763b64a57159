// The request chain of the full-policy benchmark route, without sockets: per-IP limit, JWT
// (ES256, the verified-token cache warm), revocation against a denylist of 10,000, scopes, and a
// per-user limit. What one request's phases cost on top of routing and forwarding.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "portcullis/filters/jwt_auth.hpp"
#include "portcullis/filters/request_chain.hpp"
#include "portcullis/limits/denied_until.hpp"
#include "portcullis/limits/local_limiter.hpp"
#include "portcullis/obs/state_metrics.hpp"
#include "portcullis/state/memory_backend.hpp"
#include "unit/auth/jwt_test_support.hpp"

namespace {

using namespace portcullis;
using namespace portcullis::auth::testing;

struct FullRoute {
  core::ManualClock clock{kNowTime};
  auth::VerifiedTokenCache cache;
  config::Policy policy;
  config::JwtProvider provider;
  config::Route route;
  std::unique_ptr<filters::JwtProviderGate> gate;
  std::unique_ptr<filters::RouteAuthRule> rule;
  filters::RouteChain chain;
  std::shared_ptr<state::MemoryBackend> state =
      std::make_shared<state::MemoryBackend>(state::MemoryBackendOptions{}, clock);
  limits::LocalLimiter limiter;
  limits::DeniedUntilCache denied;
  prometheus::Registry registry;
  obs::StateMetrics metrics{registry};
  std::vector<std::string> tokens;

  FullRoute() {
    provider.name = "bench";
    provider.issuer = std::string(kIssuer);
    provider.audiences = {std::string(kAudience)};
    provider.algorithms = {"ES256"};
    gate = std::make_unique<filters::JwtProviderGate>(
        provider, std::make_shared<auth::KeySetHolder>(provider_keys()));
    config::RouteAuth auth;
    auth.provider = "bench";
    auth.scopes = {"accounts:read"};
    rule = std::make_unique<filters::RouteAuthRule>(*gate, auth);
    route.name = "full";
    route.auth = auth;
    for (const auto key : {config::RateLimitKey::client_ip, config::RateLimitKey::jwt_sub}) {
      config::RateLimit limit;
      limit.name = key == config::RateLimitKey::client_ip ? "per_ip" : "per_user";
      limit.key = key;
      limit.rate = 1'000'000'000;
      limit.per = std::chrono::seconds(1);
      limit.burst = 1'000'000'000;
      policy.rate_limits.push_back(limit);
      route.rate_limits.push_back(policy.rate_limits.size() - 1);
      const filters::LimitRule rule_of_limit{
          static_cast<std::uint32_t>(policy.rate_limits.size()), filters::fleet_key_prefix(limit),
          limits::GcraLimit::make(limit.rate, limit.per, limit.burst),
          &metrics.rate_limit(limit.name)};
      (key == config::RateLimitKey::jwt_sub ? chain.user_limits : chain.ip_limits)
          .push_back(rule_of_limit);
    }
    chain.auth = rule.get();
    chain.phases = filters::phases_for(route, false, policy.rate_limits);
    for (int i = 0; i < 10'000; ++i) {
      state->revoke(
          state::Revocation{std::string(kIssuer), "revoked-" + std::to_string(i), kNow + 3600},
          [](std::error_code) {});
    }
    for (int i = 0; i < 64; ++i) {
      auto claims = good_claims();
      claims["sub"] = "user-" + std::to_string(i);
      claims["jti"] = "token-" + std::to_string(i);
      tokens.push_back("Bearer " + make_token(auth::Algorithm::es256, keys().ec256, claims));
    }
  }

  filters::ChainServices services() {
    return filters::ChainServices{cache, clock, state.get(), &limiter, &denied, &metrics, false};
  }
};

void run_chain(benchmark::State& run, bool memo) {
  FullRoute full;
  filters::RequestCtx ctx;
  filters::TokenMemo token_memo;
  auto services = full.services();
  const auto client = *core::IpAddress::parse("192.0.2.10");
  std::size_t i = 0;
  for (auto _ : run) {
    ctx.policy = &full.policy;
    ctx.route = &full.route;
    ctx.client_ip = client;
    ctx.principal.reset();
    ctx.claim_headers.clear();
    ctx.subject.clear();
    ctx.token_hash.clear();
    ctx.jwt = {};
    ctx.reply = {};
    ctx.token_memo = memo ? &token_memo : nullptr;
    // Without the memo, each request another token (the cache answers), as benchmarks/run does.
    ctx.head.headers = {{"Authorization", full.tokens[memo ? 0 : i++ % full.tokens.size()]}};
    if (filters::check_ban(ctx, services) != filters::Verdict::next ||
        filters::run_request_chain(ctx, full.chain, services) != filters::Verdict::next) {
      run.SkipWithError("the chain refused the request");
      break;
    }
  }
}

void BM_FullChainRotatingTokens(benchmark::State& run) {
  run_chain(run, false);
}
BENCHMARK(BM_FullChainRotatingTokens);

void BM_FullChainSameTokenPerConnection(benchmark::State& run) {
  run_chain(run, true);
}
BENCHMARK(BM_FullChainSameTokenPerConnection);

}  // namespace
