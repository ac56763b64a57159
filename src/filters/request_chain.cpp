#include "portcullis/filters/request_chain.hpp"

#include <algorithm>
#include <array>
#include <charconv>

#include "portcullis/auth/bearer.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::filters {
namespace {

using core::Reason;

Verdict check_request_rules(RequestCtx& ctx, const validate::RequestRules& rules) {
  const auto& head = ctx.head;
  const bool has_body = head.framing != http::BodyFraming::none;
  const auto length = head.framing == http::BodyFraming::content_length
                          ? std::optional<std::uint64_t>(head.content_length)
                          : std::nullopt;
  // "Content-Length: 0" is a body too (an empty one), even though nothing follows the head.
  const auto verdict = refuse_invalid(
      ctx,
      rules.check_head(http::find_header(head.headers, "Content-Type"),
                       head.declares_body && !has_body ? std::optional<std::uint64_t>(0) : length,
                       head.declares_body));
  ctx.reply.close = true;  // the body, if any, is left unread
  return verdict;
}

// Finds and verifies the route's token. A refusal (401) carries the RFC 6750 challenge; with
// enforce: false it is only recorded and the request goes on without claim headers.
Verdict authenticate(RequestCtx& ctx, const RouteChain& chain, ChainServices& services) {
  const auto now = services.clock.wall();
  auto verdict =
      chain.auth->gate().authenticate(ctx.head, services.token_cache, now, ctx.token_memo);
  ctx.subject = std::move(verdict.subject);
  ctx.token_hash = std::move(verdict.token_hash);
  ctx.jwt.checked = true;
  ctx.jwt.cache_hit = verdict.cache_hit;
  ctx.jwt.result = verdict.reason;
  if (verdict.ok()) {
    ctx.principal = std::move(verdict.principal);
    return Verdict::next;
  }
  if (verdict.reason == Reason::jwt_unknown_kid && chain.key_schedule &&
      chain.key_schedule->claim_unknown_kid_refetch(now)) {
    // A new signing key may have been published: ask for an early refetch.
    chain.key_refetch_wanted->store(true);
  }
  const auto answer = ctx.refuse(verdict.status, verdict.reason);
  if (answer == Verdict::respond)
    ctx.reply.add_header("WWW-Authenticate", verdict.www_authenticate);
  return answer;
}

// The route's scopes and claims (403 with an insufficient_scope challenge), then the claim
// headers the provider forwards.
Verdict authorize(RequestCtx& ctx, const RouteChain& chain) {
  if (!ctx.principal) return Verdict::next;  // refused in report-only mode: no claims
  const Reason reason = chain.auth->authorize(*ctx.principal);
  ctx.jwt.result = reason;
  if (reason == Reason::none) {
    chain.auth->gate().claim_headers(*ctx.principal, ctx.claim_headers);
    return Verdict::next;
  }
  const auto answer = ctx.refuse(auth::auth_failure_status(reason), reason);
  if (answer == Verdict::respond)
    ctx.reply.add_header("WWW-Authenticate", auth::www_authenticate(reason));
  return answer;
}

std::int64_t unix_seconds(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

void add_number_header(LocalReply& reply, std::string_view name, std::int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  reply.add_header(name, std::string_view(digits, static_cast<std::size_t>(end - digits)));
}

// The verified token against the denylist and the subject cut-offs of the local mirror.
Verdict check_revocation(RequestCtx& ctx, ChainServices& services) {
  if (!ctx.principal || !services.state) return Verdict::next;
  if (!services.state->available()) {
    if (!services.fail_open) {
      // The mirror may miss recent revocations: refuse rather than guess.
      return ctx.refuse(503, Reason::state_unavailable);
    }
    if (services.metrics) services.metrics->fail_open_decision();
  }
  const auth::Principal& principal = *ctx.principal;
  const std::int64_t issued_at =
      principal.issued_at ? principal.issued_at->time_since_epoch().count() : state::kNoIssuedAt;
  if (!services.state->mirror().is_revoked(principal.issuer, principal.jti, principal.subject,
                                           issued_at, unix_seconds(services.clock)))
    return Verdict::next;
  if (services.metrics) services.metrics->denylist_hit();
  ctx.jwt.result = Reason::jwt_revoked;
  ctx.principal.reset();  // no claims are forwarded for a revoked token, even report-only
  const auto answer = ctx.refuse(401, Reason::jwt_revoked);
  if (answer == Verdict::respond)
    ctx.reply.add_header("WWW-Authenticate", auth::www_authenticate(Reason::jwt_revoked));
  return answer;
}

void refuse_over_limit(RequestCtx& ctx, std::int64_t limit, std::int64_t remaining,
                       std::int64_t retry_after, std::int64_t reset) {
  add_number_header(ctx.reply, "Retry-After", std::max<std::int64_t>(1, retry_after));
  add_number_header(ctx.reply, "RateLimit-Limit", limit);
  add_number_header(ctx.reply, "RateLimit-Remaining", remaining);
  add_number_header(ctx.reply, "RateLimit-Reset", reset);
}

std::optional<limits::LimitKey> local_key(const RequestCtx& ctx, const LimitRule& rule,
                                          bool by_subject) {
  // A token without `sub` shares one budget with every other such token.
  return by_subject ? limits::LimitKey::subject(rule.id, ctx.principal->subject)
                    : limits::LimitKey::ip(rule.id, ctx.client_ip);
}

// This instance's share of a limit the fleet shares while the fleet cannot be asked: rate and
// burst divided by the live instances, at least one request per period and a burst of one.
limits::GcraLimit fleet_share(const LimitRule& rule, std::size_t instances) {
  const auto n = static_cast<std::int64_t>(
      std::min<std::uint64_t>(instances, std::max<std::uint64_t>(1, rule.rate)));
  if (n <= 1) return rule.limit;
  limits::GcraLimit share;
  share.emission_us = rule.limit.emission_us * n;
  share.burst = std::max<std::int64_t>(1, rule.limit.burst / n);
  return share;
}

// The route's limits of one key kind decided by this instance: all pass or none consumes.
// `instances` > 1: the fleet's limits are shared but unreachable, each instance takes its share.
Verdict decide_locally(RequestCtx& ctx, const std::vector<LimitRule>& rules, bool by_subject,
                       ChainServices& services, std::size_t instances = 1) {
  std::array<limits::LimitRequest, limits::kMaxBatchKeys> batch;
  std::size_t count = 0;
  for (const LimitRule& rule : rules) {
    if (count == batch.size()) break;
    const auto key = local_key(ctx, rule, by_subject);
    if (!key) return ctx.refuse(429, Reason::rate_limited);  // a subject too long to key
    batch[count++] = {*key, fleet_share(rule, instances)};
  }
  const auto decision =
      services.limiter->decide(std::span(batch.data(), count), services.clock.monotonic());
  if (decision.allowed) {
    for (std::size_t i = 0; i < count; ++i) {
      if (rules[i].metrics) rules[i].metrics->allowed.increment();
    }
    return Verdict::next;
  }
  if (rules[decision.deciding].metrics) rules[decision.deciding].metrics->denied.increment();
  const auto answer = ctx.refuse(429, Reason::rate_limited);
  if (answer == Verdict::respond)
    refuse_over_limit(ctx, decision.limit, decision.remaining, decision.retry_after,
                      decision.reset);
  return answer;
}

// The route's limits of one key kind. With a backend that shares limits (a fleet), the decision
// is the fleet's: a client this instance saw refused is answered at once from the denied-until
// cache; otherwise the phase suspends for one round trip. While the backend is unreachable, and
// with the memory backend, this instance decides.
Verdict check_limits(RequestCtx& ctx, const std::vector<LimitRule>& rules, bool by_subject,
                     ChainServices& services, std::size_t phase_index) {
  if (!services.limiter) return Verdict::next;
  if (by_subject && !ctx.principal) return Verdict::next;  // refused, report-only: no subject
  const bool shared = services.state && services.state->shares_limits();
  if (!shared) return decide_locally(ctx, rules, by_subject, services);
  if (!services.state->available()) {
    if (services.metrics && services.fail_open) services.metrics->fail_open_decision();
    return decide_locally(ctx, rules, by_subject, services, services.state->live_instances());
  }
  const auto now_us = limits::to_micros(services.clock.monotonic());
  if (services.denied) {
    std::array<limits::LimitKey, limits::kMaxBatchKeys> keys;
    std::array<const LimitRule*, limits::kMaxBatchKeys> rule_of;
    std::size_t count = 0;
    for (const LimitRule& rule : rules) {
      if (count == keys.size()) break;
      if (const auto key = local_key(ctx, rule, by_subject)) {
        rule_of[count] = &rule;
        keys[count++] = *key;
      }
    }
    if (const auto hit = services.denied->check(std::span(keys.data(), count), now_us)) {
      const auto answer = ctx.refuse(429, Reason::rate_limited);
      if (answer == Verdict::respond) {
        // The headers of the limit that denied the client, as the fleet's answer gave them.
        const auto wait = std::max<std::int64_t>(1, limits::ceil_seconds(hit->until - now_us));
        refuse_over_limit(ctx, rule_of[hit->key_index]->limit.burst, 0, wait, wait);
      }
      return answer;
    }
  }
  auto& checks = ctx.suspended.checks;
  checks.resize(std::min(rules.size(), limits::kMaxBatchKeys));
  // The client's part of every key, once: its subject, or its address (an IPv6 one by /64).
  std::string address;
  if (!by_subject) address = ctx.client_ip.client_key().to_string();
  const std::string_view client = by_subject ? std::string_view(ctx.principal->subject) : address;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const LimitRule& rule = rules[i];
    auto& check = checks[i];
    check.key.assign(rule.fleet_prefix).append(client);
    check.emission_us = rule.limit.emission_us;
    check.burst = rule.limit.burst;
  }
  // A high-rate limit's budget this instance leased from the fleet: no round trip.
  state::Backend::LimitDecision leased;
  if (services.state->decide_from_leases(checks, leased)) {
    for (std::size_t i = 0; i < checks.size(); ++i) {
      if (rules[i].metrics) rules[i].metrics->allowed.increment();
    }
    return Verdict::next;
  }
  ctx.suspended.by_subject = by_subject;
  ctx.suspended.resume_at = phase_index + 1;
  return Verdict::suspend;
}

}  // namespace

std::string fleet_key_prefix(const config::RateLimit& limit) {
  return limit.name + (limit.key == config::RateLimitKey::jwt_sub ? ":sub:" : ":ip:");
}

std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules,
                                     const std::vector<config::RateLimit>& limits) {
  bool ip_limits = false;
  bool user_limits = false;
  for (const std::size_t index : route.rate_limits) {
    (limits[index].key == config::RateLimitKey::jwt_sub ? user_limits : ip_limits) = true;
  }
  std::vector<RequestPhase> phases;
  if (ip_limits) phases.push_back(RequestPhase::ip_limits);
  if (has_rules) phases.push_back(RequestPhase::request_rules);
  if (route.auth) {
    phases.push_back(RequestPhase::jwt);
    phases.push_back(RequestPhase::revocation);
    phases.push_back(RequestPhase::authorize);
  }
  if (user_limits) phases.push_back(RequestPhase::user_limits);
  return phases;
}

Verdict check_ban(RequestCtx& ctx, ChainServices& services) {
  if (!services.state) return Verdict::next;
  const std::int64_t now = unix_seconds(services.clock);
  const auto ban = services.state->mirror().ban_of(ctx.client_ip, now);
  if (!ban) return Verdict::next;
  // Bans hold on every route, report-only ones included.
  ctx.reply.set(429, Reason::ip_banned);
  add_number_header(ctx.reply, "Retry-After", std::max<std::int64_t>(1, ban->until - now));
  return Verdict::respond;
}

Verdict run_request_chain(RequestCtx& ctx, const RouteChain& chain, ChainServices& services,
                          std::size_t first) {
  for (std::size_t index = first; index < chain.phases.size(); ++index) {
    const RequestPhase phase = chain.phases[index];
    Verdict verdict = Verdict::next;
    switch (phase) {
      case RequestPhase::request_rules:
        verdict = check_request_rules(ctx, *chain.rules);
        break;
      case RequestPhase::jwt:
        verdict = authenticate(ctx, chain, services);
        break;
      case RequestPhase::authorize:
        verdict = authorize(ctx, chain);
        break;
      case RequestPhase::ip_limits:
        verdict = check_limits(ctx, chain.ip_limits, false, services, index);
        break;
      case RequestPhase::revocation:
        verdict = check_revocation(ctx, services);
        break;
      case RequestPhase::user_limits:
        verdict = check_limits(ctx, chain.user_limits, true, services, index);
        break;
    }
    if (verdict != Verdict::next) return verdict;
  }
  return Verdict::next;
}

Verdict finish_shared_limits(RequestCtx& ctx, const RouteChain& chain, ChainServices& services,
                             std::error_code error, const state::Backend::LimitDecision& decision) {
  const bool by_subject = ctx.suspended.by_subject;
  const auto& rules = by_subject ? chain.user_limits : chain.ip_limits;
  if (error) {
    if (services.metrics && services.fail_open) services.metrics->fail_open_decision();
    return decide_locally(ctx, rules, by_subject, services, services.state->live_instances());
  }
  const std::size_t count = std::min(rules.size(), ctx.suspended.checks.size());
  if (decision.allowed) {
    for (std::size_t i = 0; i < count; ++i) {
      if (rules[i].metrics) rules[i].metrics->allowed.increment();
    }
    return Verdict::next;
  }
  const std::size_t deciding = std::min(decision.deciding, count - 1);
  if (rules[deciding].metrics) rules[deciding].metrics->denied.increment();
  if (services.denied) {
    // Until the fleet's limit lets it through again, this client costs no round trip.
    if (const auto key = local_key(ctx, rules[deciding], by_subject)) {
      const auto now_us = limits::to_micros(services.clock.monotonic());
      services.denied->deny(*key, now_us + decision.retry_after * 1'000'000, now_us);
    }
  }
  const auto answer = ctx.refuse(429, Reason::rate_limited);
  if (answer == Verdict::respond)
    refuse_over_limit(ctx, decision.limit, decision.remaining, decision.retry_after,
                      decision.reset);
  return answer;
}

Verdict refuse_invalid(RequestCtx& ctx, const validate::Verdict& verdict) {
  if (verdict.ok()) return Verdict::next;
  const auto answer = ctx.refuse(verdict.status, verdict.reason);
  if (answer == Verdict::respond && verdict.status == 400)
    ctx.reply.body = validate::invalid_body_response(ctx.request_id, verdict.pointer);
  return answer;
}

}  // namespace portcullis::filters
