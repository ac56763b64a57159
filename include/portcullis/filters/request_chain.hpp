#pragma once
// The request phases, run over a RequestCtx without any I/O: the ban check every request goes
// through, then a matched route's own phases (per-IP limits, method and content-type rules, JWT,
// revocation, scopes and claims, per-user limits). Each route's chain is compiled when the policy
// is loaded and lists only what the route configures; running it allocates nothing. The first
// phase that answers stops the chain; the caller sends ctx.reply.
//
// Shared state is read from the state backend's local mirror (bans, revocations) and the
// process's limiter: no phase waits on the network, except for a rate limit the fleet decides
// (a suspend: one round trip, unless a budget this instance leased covers it). While a shared
// backend is unreachable, JWT routes answer 503 (on_unavailable: fail_closed) or decide on what
// this instance knows (fail_open, counted); bans use what this instance knows, and a limit the
// fleet shares is decided here at this instance's share: rate and burst divided by the live
// instances last counted (at least one request per period, a burst of one).

#include <atomic>
#include <vector>

#include "portcullis/auth/key_refresh.hpp"
#include "portcullis/auth/token_cache.hpp"
#include "portcullis/core/clock.hpp"
#include "portcullis/filters/jwt_auth.hpp"
#include "portcullis/filters/request_ctx.hpp"
#include "portcullis/limits/denied_until.hpp"
#include "portcullis/limits/local_limiter.hpp"
#include "portcullis/obs/state_metrics.hpp"
#include "portcullis/state/backend.hpp"
#include "portcullis/validate/request_rules.hpp"

namespace portcullis::filters {

// One configured rate limit as a route uses it.
struct LimitRule {
  std::uint32_t id = 0;      // stable for the limit's name across reloads (keys its budgets)
  std::string fleet_prefix;  // "<name>:ip:" or "<name>:sub:": keys the fleet's shared budgets
                             // (ids are this process's own); see fleet_key_prefix()
  limits::GcraLimit limit;
  const obs::RateLimitMetrics* metrics = nullptr;
  std::uint64_t rate = 1;  // requests per period, as configured (floors a fleet share)
};

// The start of a limit's keys in a shared store, fixed at load: its name and key kind.
std::string fleet_key_prefix(const config::RateLimit& limit);

// One route's compiled chain. The pointers are owned by the runtime the route belongs to.
struct RouteChain {
  std::vector<RequestPhase> phases;    // in their fixed order
  std::vector<LimitRule> ip_limits;    // key: client_ip
  std::vector<LimitRule> user_limits;  // key: jwt.sub
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
  const state::Backend* state = nullptr;  // bans and revocations; null = none kept
  limits::LocalLimiter* limiter = nullptr;
  limits::DeniedUntilCache* denied = nullptr;  // clients a shared limit refused, until when
  obs::StateMetrics* metrics = nullptr;
  bool fail_open = false;  // state.on_unavailable
};

// The phases a route runs, in their fixed order (see RequestPhase).
std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules,
                                     const std::vector<config::RateLimit>& limits);

// Every request, before its route: is the client IP banned? (429 with Retry-After until the
// ban ends.)
Verdict check_ban(RequestCtx& ctx, ChainServices& services);

// Runs `chain` over `ctx` (ctx.route set) from phase `first`. `respond`: ctx.reply holds the
// answer; `suspend`: ask the state backend to decide ctx.suspended.checks, hand its answer to
// finish_shared_limits(), then run again from ctx.suspended.resume_at.
Verdict run_request_chain(RequestCtx& ctx, const RouteChain& chain, ChainServices& services,
                          std::size_t first = 0);

// The fleet's answer to a suspended rate-limit phase; on `error` the limits are decided by this
// instance alone (what it knows), as while the backend is unreachable.
Verdict finish_shared_limits(RequestCtx& ctx, const RouteChain& chain, ChainServices& services,
                             std::error_code error, const state::Backend::LimitDecision& decision);

// A failed validation verdict as a reply (415, 413, or 400 naming the first failing place), or
// with enforce: false only recorded.
Verdict refuse_invalid(RequestCtx& ctx, const validate::Verdict& verdict);

}  // namespace portcullis::filters
