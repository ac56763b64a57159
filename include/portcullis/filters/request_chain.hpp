#pragma once
// The request phases between a matched route and the upstream, run over a RequestCtx without
// any I/O: method and content-type rules, JWT, scopes and claims (and, as the state backend
// lands, revocation and rate limits). Each route's chain is compiled when the policy is loaded
// and lists only what the route configures; running it allocates nothing. The first phase
// that answers stops the chain; the caller sends ctx.reply.

#include <atomic>
#include <vector>

#include "portcullis/auth/key_refresh.hpp"
#include "portcullis/auth/token_cache.hpp"
#include "portcullis/core/clock.hpp"
#include "portcullis/filters/jwt_auth.hpp"
#include "portcullis/filters/request_ctx.hpp"
#include "portcullis/validate/request_rules.hpp"

namespace portcullis::filters {

// One route's compiled chain. The pointers are owned by the runtime the route belongs to.
struct RouteChain {
  std::vector<RequestPhase> phases;  // in their fixed order
  const RouteAuthRule* auth = nullptr;
  const validate::RequestRules* rules = nullptr;
  // A token naming an unknown kid asks for an early refetch of a remote key set (rate-limited
  // by the schedule); null when the provider's keys are not fetched.
  auth::RefreshSchedule* key_schedule = nullptr;
  std::atomic<bool>* key_refetch_wanted = nullptr;
};

// Process-wide things the phases use.
struct ChainServices {
  auth::VerifiedTokenCache& token_cache;
  const core::Clock& clock;
};

// The phases a route runs, in their fixed order (see RequestPhase).
std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules);

// Runs `chain` over `ctx` (ctx.route set). `respond`: ctx.reply holds the answer.
Verdict run_request_chain(RequestCtx& ctx, const RouteChain& chain, ChainServices& services);

// A failed validation verdict as a reply (415, 413, or 400 naming the first failing place), or
// with enforce: false only recorded.
Verdict refuse_invalid(RequestCtx& ctx, const validate::Verdict& verdict);

}  // namespace portcullis::filters
