// The request chain: what a request goes through between its head and the upstream, in one
// fixed order: client IP → ban check → route → the route's phases (built per route when the
// policy is loaded: per-IP limits, method and content-type rules, JWT, revocation, scopes and
// claims, per-user limits) → body validation → forward. A phase fills the request context and
// returns next or respond; the local reply is sent in one place, answer_locally().

#include "connection.hpp"
#include "portcullis/auth/bearer.hpp"

namespace portcullis::net {

asio::awaitable<bool> ClientConnection::process_request() {
  const Runtime& runtime = *pinned_->runtime;
  const config::Policy& policy = *runtime.policy;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return false;
  if (parsed.state == http::ParseState::error) {
    // Whatever follows a refused head cannot be trusted to start a new request: close.
    ex_->record.bytes_in = in_size_;
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return false;
  }
  ex_->head_bytes = parsed.head_bytes;
  ex_->record.bytes_in = parsed.head_bytes;
  ex_->body_buffered = false;
  assign_request_id(policy);
  ex_->client_ip = filters::client_ip(policy, ex_->head, peer_);

  if (const auto reason = http::normalize_path(ex_->head.path, ex_->path); reason != Reason::none) {
    ex_->reply.set(400, reason);
    ex_->reply.close = true;
    co_return co_await answer_locally();
  }
  const auto decision = runtime.router.match(ex_->head.method, ex_->path);
  if (decision.kind != filters::RouteDecision::Kind::matched) {
    if (decision.kind == filters::RouteDecision::Kind::not_found) {
      ex_->reply.set(404, Reason::no_route);
    } else {
      ex_->reply.set(405, Reason::method_not_allowed);
      ex_->reply.add_header("Allow", decision.allow);
    }
    co_return co_await answer_locally();
  }
  ex_->route = decision.route;
  ex_->route_index = decision.route_index;
  ex_->body_limit = runtime.route_rules[decision.route_index]
                        ? runtime.route_rules[decision.route_index]->max_body_bytes()
                        : policy.server.limits.max_body_bytes;
  for (const filters::RequestPhase phase : runtime.route_phases[decision.route_index]) {
    if (run_phase(runtime, phase) == filters::Verdict::respond) co_return co_await answer_locally();
  }
  if (ex_->head.framing == BodyFraming::content_length &&
      ex_->head.content_length > ex_->body_limit) {
    ex_->reply.set(413, Reason::body_too_large);
    co_return co_await answer_locally();
  }
  const validate::RequestRules* rules = runtime.route_rules[decision.route_index].get();
  if (rules && ex_->head.declares_body && rules->inspects_body()) {
    const bool has_body = ex_->head.framing != BodyFraming::none;
    Reason failed = Reason::none;
    const int status = has_body ? co_await read_body(ex_->head_bytes, ex_->body_limit, failed) : 0;
    if (!has_body) {
      ex_->body.clear();
      ex_->body_consumed = 0;
    }
    if (status < 0) co_return false;  // the client went away
    if (status > 0) {
      ex_->reply.set(status, failed);
      ex_->reply.close = true;
      co_return co_await answer_locally();
    }
    ex_->body_buffered = true;  // the whole body is read: a refusal can keep the connection
    if (refuse_invalid(rules->check_body(ex_->body)) == filters::Verdict::respond)
      co_return co_await answer_locally();
  }
  co_return co_await forward(runtime, *decision.route, ex_->head_bytes);
}

filters::Verdict ClientConnection::run_phase(const Runtime& runtime, filters::RequestPhase phase) {
  using filters::RequestPhase;
  using filters::Verdict;
  switch (phase) {
    case RequestPhase::request_rules: {
      const auto& rules = *runtime.route_rules[ex_->route_index];
      const bool has_body = ex_->head.framing != BodyFraming::none;
      const auto content_type = find_header_value(ex_->head.headers, "Content-Type");
      const auto length = ex_->head.framing == BodyFraming::content_length
                              ? std::optional<std::uint64_t>(ex_->head.content_length)
                              : std::nullopt;
      // "Content-Length: 0" is a body too (an empty one), even though nothing follows the head.
      const auto verdict = refuse_invalid(rules.check_head(
          content_type,
          ex_->head.declares_body && !has_body ? std::optional<std::uint64_t>(0) : length,
          ex_->head.declares_body));
      ex_->reply.close = true;
      return verdict;
    }
    case RequestPhase::jwt:
      return authenticate(runtime);
    case RequestPhase::revocation:
      return Verdict::next;
    case RequestPhase::authorize:
      return authorize(runtime);
    case RequestPhase::ip_limits:
    case RequestPhase::user_limits:
      return Verdict::next;
  }
  return Verdict::next;
}

// Sends the local reply a phase made; returns whether the connection carries on. A request
// whose body was not read leaves the connection unusable for another request: it closes.
asio::awaitable<bool> ClientConnection::answer_locally() {
  const bool body_unread = ex_->head.framing != BodyFraming::none && !ex_->body_buffered;
  const bool keep_alive = ex_->head.keep_alive && !worker_.draining.load(std::memory_order_relaxed);
  const bool close = ex_->reply.close || body_unread || !keep_alive;
  std::array<filters::ExtraHeader, filters::LocalReply::kMaxHeaders> extra;
  for (std::size_t i = 0; i < ex_->reply.header_count; ++i)
    extra[i] = {ex_->reply.headers[i].name, ex_->reply.headers[i].value};
  const bool sent =
      co_await send_local(ex_->reply.status, ex_->reply.reason, close,
                          std::span(extra.data(), ex_->reply.header_count), ex_->reply.body);
  if (close || !sent) co_return false;
  ex_->consume_after = ex_->head_bytes + (ex_->body_buffered ? ex_->body_consumed : 0);
  co_return true;
}

// ---- authentication ---------------------------------------------------------------------------

// Finds and verifies the route's token. A refusal (401) carries the RFC 6750 challenge; with
// enforce: false it is only recorded and the request goes on without claim headers.
filters::Verdict ClientConnection::authenticate(const Runtime& runtime) {
  const auto& rule = *runtime.route_auth[ex_->route_index];
  const auto now = worker_.services.clock->wall();
  auto verdict = rule.gate().authenticate(ex_->head, worker_.services.token_cache, now);
  ex_->subject = verdict.subject;
  ex_->token_hash = verdict.token_hash;
  ex_->token_cache_hit = verdict.cache_hit;
  if (verdict.ok()) {
    ex_->principal = std::move(verdict.principal);
    return filters::Verdict::next;
  }
  worker_.services.metrics.jwt_verification(verdict.reason, verdict.cache_hit);
  if (verdict.reason == Reason::jwt_unknown_kid) {
    // A new signing key may have been published: ask for an early refetch (rate-limited).
    const auto& remote = runtime.jwt_providers[ex_->route->auth->provider_index].remote;
    if (remote && remote->schedule.claim_unknown_kid_refetch(now)) remote->refetch_wanted = true;
  }
  const auto answer = ex_->refuse(verdict.status, verdict.reason);
  if (answer == filters::Verdict::respond)
    ex_->reply.add_header("WWW-Authenticate", verdict.www_authenticate);
  return answer;
}

// The route's scopes and claims (403 with an insufficient_scope challenge), then the claim
// headers the provider forwards.
filters::Verdict ClientConnection::authorize(const Runtime& runtime) {
  if (!ex_->principal) return filters::Verdict::next;  // refused, report-only: no claims
  const auto& rule = *runtime.route_auth[ex_->route_index];
  const Reason reason = rule.authorize(*ex_->principal);
  worker_.services.metrics.jwt_verification(reason, ex_->token_cache_hit);
  if (reason == Reason::none) {
    rule.gate().claim_headers(*ex_->principal, ex_->claim_headers);
    return filters::Verdict::next;
  }
  const auto answer = ex_->refuse(auth::auth_failure_status(reason), reason);
  if (answer == filters::Verdict::respond)
    ex_->reply.add_header("WWW-Authenticate", auth::www_authenticate(reason));
  return answer;
}

// ---- validation -------------------------------------------------------------------------------

// A failed validation verdict as a reply (415, 413, or 400 with the JSON pointer), or with
// enforce: false only recorded.
filters::Verdict ClientConnection::refuse_invalid(const validate::Verdict& verdict) {
  if (verdict.ok()) return filters::Verdict::next;
  const auto answer = ex_->refuse(verdict.status, verdict.reason);
  if (answer == filters::Verdict::respond && verdict.status == 400)
    ex_->reply.body = validate::invalid_body_response(ex_->request_id, verdict.pointer);
  return answer;
}

}  // namespace portcullis::net
