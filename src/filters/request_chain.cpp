#include "portcullis/filters/request_chain.hpp"

#include "portcullis/auth/bearer.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::filters {
namespace {

using core::Reason;

std::optional<std::string_view> header_value(const http::RequestHead& head, std::string_view name) {
  for (const auto& header : head.headers) {
    if (http::iequals(header.name, name)) return header.value;
  }
  return std::nullopt;
}

Verdict check_request_rules(RequestCtx& ctx, const validate::RequestRules& rules) {
  const auto& head = ctx.head;
  const bool has_body = head.framing != http::BodyFraming::none;
  const auto length = head.framing == http::BodyFraming::content_length
                          ? std::optional<std::uint64_t>(head.content_length)
                          : std::nullopt;
  // "Content-Length: 0" is a body too (an empty one), even though nothing follows the head.
  const auto verdict = refuse_invalid(
      ctx,
      rules.check_head(header_value(head, "Content-Type"),
                       head.declares_body && !has_body ? std::optional<std::uint64_t>(0) : length,
                       head.declares_body));
  ctx.reply.close = true;  // the body, if any, is left unread
  return verdict;
}

// Finds and verifies the route's token. A refusal (401) carries the RFC 6750 challenge; with
// enforce: false it is only recorded and the request goes on without claim headers.
Verdict authenticate(RequestCtx& ctx, const RouteChain& chain, ChainServices& services) {
  const auto now = services.clock.wall();
  auto verdict = chain.auth->gate().authenticate(ctx.head, services.token_cache, now);
  ctx.subject = verdict.subject;
  ctx.token_hash = verdict.token_hash;
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

}  // namespace

std::vector<RequestPhase> phases_for(const config::Route& route, bool has_rules) {
  std::vector<RequestPhase> phases;
  if (has_rules) phases.push_back(RequestPhase::request_rules);
  if (route.auth) {
    phases.push_back(RequestPhase::jwt);
    phases.push_back(RequestPhase::authorize);
  }
  return phases;
}

Verdict run_request_chain(RequestCtx& ctx, const RouteChain& chain, ChainServices& services) {
  for (const RequestPhase phase : chain.phases) {
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
      case RequestPhase::revocation:
      case RequestPhase::user_limits:
        break;
    }
    if (verdict == Verdict::respond) return verdict;
  }
  return Verdict::next;
}

Verdict refuse_invalid(RequestCtx& ctx, const validate::Verdict& verdict) {
  if (verdict.ok()) return Verdict::next;
  const auto answer = ctx.refuse(verdict.status, verdict.reason);
  if (answer == Verdict::respond && verdict.status == 400)
    ctx.reply.body = validate::invalid_body_response(ctx.request_id, verdict.pointer);
  return answer;
}

}  // namespace portcullis::filters
