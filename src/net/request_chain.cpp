// The request chain: what a request goes through between its head and the upstream, in one
// fixed order: client IP → ban check → route → the route's phases (built per route when the
// policy is loaded: per-IP limits, method and content-type rules, JWT, revocation, scopes and
// claims, per-user limits) → body validation → forward. A phase fills the request context and
// returns next or respond; the local reply is sent in one place, answer_locally().

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "connection.hpp"

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
  ex_->peer_is_trusted_proxy = is_trusted_proxy(policy, peer_);
  ex_->client_ip =
      ex_->peer_is_trusted_proxy ? filters::client_ip(policy, ex_->head, peer_) : peer_;

  if (const auto reason = http::normalize_path(ex_->head.path, ex_->path); reason != Reason::none) {
    ex_->reply.set(400, reason);
    ex_->reply.close = true;
    co_return co_await answer_locally();
  }
  filters::ChainServices services{worker_.services.token_cache,
                                  *worker_.services.clock,
                                  runtime.state.get(),
                                  runtime.limiter.get(),
                                  &worker_.services.denied,
                                  &worker_.services.metrics.state,
                                  policy.state.on_unavailable == config::OnUnavailable::fail_open};
  if (!(ex_->client_ip == peer_) && !runtime.ip_rules.allowed(ex_->client_ip)) {
    // Behind a trusted proxy the client's own address is known only now: ip_rules apply to it.
    ex_->reply.set(403, Reason::ip_denied);
    ex_->reply.close = true;
    co_return co_await answer_locally();
  }
  if (filters::check_ban(*ex_, services) == filters::Verdict::respond)
    co_return co_await answer_locally();
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
  const auto& chain = runtime.route_chains[decision.route_index];
  auto verdict = filters::run_request_chain(*ex_, chain, services);
  while (verdict == filters::Verdict::suspend) {
    // A rate limit the fleet decides: one round trip to the state backend.
    state::Backend::LimitDecision shared;
    const auto error = co_await decide_shared_limits(*runtime.state, shared);
    verdict = filters::finish_shared_limits(*ex_, chain, services, error, shared);
    if (verdict == filters::Verdict::next)
      verdict = filters::run_request_chain(*ex_, chain, services, ex_->suspended.resume_at);
  }
  if (verdict == filters::Verdict::respond) co_return co_await answer_locally();
  if (ex_->head.framing == BodyFraming::content_length &&
      ex_->head.content_length > ex_->body_limit) {
    ex_->reply.set(413, Reason::body_too_large);
    co_return co_await answer_locally();
  }
  const validate::RequestRules* rules = runtime.route_rules[decision.route_index].get();
  if (rules && ex_->head.declares_body && rules->inspects_body()) {
    const bool has_body = ex_->head.framing != BodyFraming::none;
    Reason failed = Reason::none;
    const int status =
        has_body ? co_await upstream::read_body(client_side(), ex_->body_limit, failed) : 0;
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
    if (filters::refuse_invalid(*ex_, rules->check_body(ex_->body)) == filters::Verdict::respond)
      co_return co_await answer_locally();
  }
  const std::size_t upstream_index = decision.route->upstream_index;
  upstream::Forwarder forwarder(client_side(),
                                {worker_.io, worker_.upstreams, runtime.upstreams[upstream_index],
                                 upstream_index, runtime.claim_headers, upstream_});
  const auto outcome = co_await forwarder.forward();
  if (outcome == upstream::Outcome::respond) co_return co_await answer_locally();
  co_return outcome == upstream::Outcome::keep_alive;
}

// Hands the suspended phase's checks to the backend and resumes on this connection's executor
// when it has decided (the backend answers from its own thread, within its command timeout).
asio::awaitable<std::error_code> ClientConnection::decide_shared_limits(
    state::Backend& backend, state::Backend::LimitDecision& decision) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::error_code)>(
      [&backend, &decision, executor, this](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        // The checks are copied: the request keeps its own (pooled) vector.
        backend.decide_limits(ex_->suspended.checks,
                              [executor, shared, &decision](
                                  std::error_code ec, const state::Backend::LimitDecision& made) {
                                asio::post(executor, [shared, ec, made, &decision]() mutable {
                                  decision = made;
                                  std::move (*shared)(ec);
                                });
                              });
      },
      asio::use_awaitable);
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

}  // namespace portcullis::net
