// The admin listener: metrics, liveness and readiness, and the admin API (revocations and bans)
// behind the bearer token of server.admin.token_file. Every API request is answered with a small
// JSON body; every write is acknowledged only once the state backend says it is durable, and
// goes to the security log with a hash of the token that made it.

#include <openssl/crypto.h>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "../net/connection.hpp"
#include "portcullis/admin/requests.hpp"
#include "portcullis/auth/token_hash.hpp"

namespace portcullis::net {
namespace {

std::int64_t unix_now(const core::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.wall().time_since_epoch()).count();
}

// One admin write to the state backend.
using StateWrite =
    std::variant<state::Revocation, state::SubjectCutoff, state::Ban, core::IpAddress>;

// Hands `write` to the backend and resumes on this coroutine's executor when the backend calls
// back, from whichever thread it calls back on. The record is taken by reference and copied only
// inside the initiation (no record travels as a temporary through a co_await expression).
asio::awaitable<std::error_code> write_state(state::Backend& backend, const StateWrite& write) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::error_code)>(
      [&backend, &write, executor](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        state::Backend::Done done = [executor, shared](std::error_code ec) {
          asio::post(executor, [shared, ec]() mutable { std::move (*shared)(ec); });
        };
        if (const auto* record = std::get_if<state::Revocation>(&write)) {
          backend.revoke(*record, std::move(done));
        } else if (const auto* cutoff = std::get_if<state::SubjectCutoff>(&write)) {
          backend.cut_off(*cutoff, std::move(done));
        } else if (const auto* ban = std::get_if<state::Ban>(&write)) {
          backend.ban(*ban, std::move(done));
        } else {
          backend.unban(std::get<core::IpAddress>(write), std::move(done));
        }
      },
      asio::use_awaitable);
}

std::string json_text(std::string_view text) {
  std::string out = "\"";
  core::append_json_escaped(out, text);
  out += '"';
  return out;
}

enum class Access { allowed, disabled, refused };

Access check_bearer(const Runtime& runtime, const http::RequestHead& head,
                    std::string& token_hash) {
  if (!runtime.admin_token) return Access::disabled;
  std::string_view presented;
  for (const auto& header : head.headers) {
    if (!http::iequals(header.name, "Authorization")) continue;
    if (!presented.empty()) return Access::refused;  // one credential, not a choice of several
    presented = header.value;
  }
  constexpr std::string_view kScheme = "Bearer ";
  if (presented.size() <= kScheme.size() ||
      !http::iequals(presented.substr(0, kScheme.size()), kScheme))
    return Access::refused;
  presented.remove_prefix(kScheme.size());
  // Digests of equal length compared in constant time: neither the token's bytes nor its
  // length leak through timing.
  const auto digest = auth::token_digest(presented);
  token_hash = auth::token_hash_prefix(digest);
  return CRYPTO_memcmp(digest.data(), runtime.admin_token->data(), digest.size()) == 0
             ? Access::allowed
             : Access::refused;
}

}  // namespace

asio::awaitable<void> ClientConnection::serve_admin() {
  ensure_exchange();
  const Runtime& runtime = *pinned_->runtime;
  http::ParseResult parsed;
  if (!co_await read_head(runtime, parsed)) co_return;
  if (parsed.state == http::ParseState::error) {
    co_await send_local(parsed.reply.status, parsed.reply.reason, true);
    co_return;
  }
  ex_->head_bytes = parsed.head_bytes;
  const std::string_view path = ex_->head.path;
  const std::string_view method = ex_->head.method;
  if (path == "/revocations" || path == "/bans" || path.starts_with("/bans/")) {
    co_await serve_admin_api(runtime);
    co_return;
  }
  const bool draining = worker_.draining.load(std::memory_order_relaxed);
  std::string_view status_line;
  std::string_view body;
  if (method != "GET" && method != "HEAD") {
    co_await send_local(405, Reason::method_not_allowed, true);
    co_return;
  }
  if (path == "/metrics") {
    auto& metrics = worker_.services.metrics;
    metrics.log_lines_dropped(obs::Logs::dropped_lines());
    metrics.sync_log_write_errors();
    if (runtime.state) {
      const auto sizes = runtime.state->mirror().sizes();
      metrics.state.mirror_size(sizes.revocations, sizes.cutoffs, sizes.bans);
      metrics.state.backend_up(runtime.state->available());
    }
    const std::string exposition = metrics.expose();
    ex_->out =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: ";
    ex_->out += std::to_string(exposition.size());
    ex_->out += "\r\nConnection: close\r\n\r\n";
    if (method == "GET") ex_->out += exposition;
    const std::string_view piece = ex_->out;
    co_await write_client(std::span(&piece, 1));
    co_return;
  }
  const bool state_down =
      runtime.state && !runtime.state->available() &&
      runtime.policy->state.on_unavailable == config::OnUnavailable::fail_closed;
  if (path == "/healthz") {
    status_line = "HTTP/1.1 200 OK\r\n";
    body = "{\"status\":\"alive\"}\n";
  } else if (path == "/readyz") {
    const bool ready = !draining && !state_down;
    status_line = ready ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 503 Service Unavailable\r\n";
    body = draining     ? "{\"status\":\"draining\"}\n"
           : state_down ? "{\"status\":\"state_unavailable\"}\n"
                        : "{\"status\":\"ready\"}\n";
  } else {
    co_await send_local(404, Reason::no_route, true);
    co_return;
  }
  ex_->out.assign(status_line);
  ex_->out += "Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ";
  ex_->out += std::to_string(body.size());
  ex_->out += "\r\nConnection: close\r\n\r\n";
  if (method == "GET") ex_->out += body;
  const std::string_view piece = ex_->out;
  co_await write_client(std::span(&piece, 1));
}

// POST /revocations, GET and POST /bans, DELETE /bans/<ip>.
asio::awaitable<void> ClientConnection::serve_admin_api(const Runtime& runtime) {
  const std::string_view path = ex_->head.path;
  const std::string_view method = ex_->head.method;
  obs::AdminEndpoint endpoint;
  if (path == "/revocations" && method == "POST") {
    endpoint = obs::AdminEndpoint::post_revocations;
  } else if (path == "/bans" && method == "POST") {
    endpoint = obs::AdminEndpoint::post_bans;
  } else if (path == "/bans" && (method == "GET" || method == "HEAD")) {
    endpoint = obs::AdminEndpoint::get_bans;
  } else if (path.starts_with("/bans/") && method == "DELETE") {
    endpoint = obs::AdminEndpoint::delete_bans;
  } else {
    const filters::ExtraHeader allow{"Allow", path == "/revocations" ? "POST"
                                              : path == "/bans"      ? "GET, HEAD, POST"
                                                                     : "DELETE"};
    co_await send_local(405, Reason::method_not_allowed, true, std::span(&allow, 1));
    co_return;
  }
  auto& metrics = worker_.services.metrics.state;
  // The body is kept in the exchange: the reply coroutine starts only when awaited.
  const auto answer = [&](int status, Reason reason, std::string body,
                          std::span<const filters::ExtraHeader> extra = {}) {
    metrics.admin_write(endpoint, status < 300);
    ex_->reply.body = std::move(body);
    return send_local(status, reason, true, extra, ex_->reply.body);
  };
  const auto error_body = [&](std::string_view code, std::string_view message = {}) {
    std::string body = R"({"error":)" + json_text(code);
    if (!message.empty()) body += R"(,"message":)" + json_text(message);
    body += R"(,"request_id":)" + json_text(ex_->request_id) + "}";
    return body;
  };
  if (ex_->request_id.empty()) worker_.request_ids.next(ex_->request_id);

  std::string token_hash;
  switch (check_bearer(runtime, ex_->head, token_hash)) {
    case Access::disabled:
      co_await answer(403, Reason::none,
                      error_body("forbidden",
                                 "the admin API is off: server.admin.token_file "
                                 "is not set"));
      co_return;
    case Access::refused: {
      runtime.logs->security_event(R"("event":"admin_denied","path":)" + json_text(path) +
                                   R"(,"by":)" + json_text(token_hash) + R"(,"client_ip":)" +
                                   json_text(peer_.to_string()));
      const filters::ExtraHeader challenge{"WWW-Authenticate", "Bearer"};
      co_await answer(401, Reason::none, error_body("unauthorized"), std::span(&challenge, 1));
      co_return;
    }
    case Access::allowed:
      break;
  }
  if (!runtime.state) {
    co_await answer(503, Reason::state_unavailable, error_body("service_unavailable"));
    co_return;
  }
  const core::Clock& clock = *worker_.services.clock;
  const std::int64_t now = unix_now(clock);

  if (endpoint == obs::AdminEndpoint::get_bans) {
    std::string body = R"({"bans":[)";
    bool first = true;
    for (const auto& ban : runtime.state->mirror().active_bans(now)) {
      if (!first) body += ',';
      first = false;
      body += R"({"ip":)" + json_text(ban.ip.to_string()) + R"(,"until":)" +
              std::to_string(ban.until) + R"(,"reason":)" + json_text(ban.reason) + "}";
    }
    body += "]}";
    co_await answer(200, Reason::none, std::move(body));
    co_return;
  }

  // Writes: the body (none for DELETE) first, bounded before it is read.
  std::string_view body;
  if (endpoint != obs::AdminEndpoint::delete_bans) {
    if (ex_->head.framing == BodyFraming::content_length &&
        ex_->head.content_length > admin::kMaxBodyBytes) {
      co_await answer(413, Reason::body_too_large, error_body("payload_too_large"));
      co_return;
    }
    Reason failed = Reason::none;
    const int status = ex_->head.framing == BodyFraming::none
                           ? 0
                           : co_await read_body(ex_->head_bytes, admin::kMaxBodyBytes, failed);
    if (ex_->head.framing == BodyFraming::none) ex_->body.clear();
    if (status < 0) co_return;
    if (status > 0) {
      co_await answer(status, failed, error_body(core::error_code_for_status(status)));
      co_return;
    }
    body = ex_->body;
  }

  std::string what;  // for the security log: the record, never the token
  StateWrite write;
  if (endpoint == obs::AdminEndpoint::post_revocations) {
    auto parsed = admin::parse_revocation(body, now);
    if (const auto* error = std::get_if<admin::BodyError>(&parsed)) {
      co_await answer(400, Reason::none, error_body("invalid_body", error->message));
      co_return;
    }
    auto& request = std::get<admin::RevocationRequest>(parsed);
    if (auto* token = std::get_if<admin::TokenRevocation>(&request)) {
      what = R"("what":"revoke_token","jti":)" + json_text(token->jti) + R"(,"exp":)" +
             std::to_string(token->exp);
      if (!token->issuer.empty()) what += R"(,"iss":)" + json_text(token->issuer);
      write = state::Revocation{std::move(token->issuer), std::move(token->jti), token->exp};
    } else {
      auto& subject = std::get<admin::SubjectRevocation>(request);
      what = R"("what":"revoke_subject","sub":)" + json_text(subject.subject) +
             R"(,"issued_before":)" + std::to_string(subject.issued_before);
      if (!subject.issuer.empty()) what += R"(,"iss":)" + json_text(subject.issuer);
      write = state::SubjectCutoff{std::move(subject.issuer), std::move(subject.subject),
                                   subject.issued_before};
    }
  } else if (endpoint == obs::AdminEndpoint::post_bans) {
    auto parsed = admin::parse_ban(body);
    if (const auto* error = std::get_if<admin::BodyError>(&parsed)) {
      co_await answer(400, Reason::none, error_body("invalid_body", error->message));
      co_return;
    }
    auto& request = std::get<admin::BanRequest>(parsed);
    state::Ban record{request.ip.client_key(), now + request.duration.count(), request.reason};
    what = R"("what":"ban","ip":)" + json_text(record.ip.to_string()) + R"(,"until":)" +
           std::to_string(record.until) + R"(,"reason":)" + json_text(record.reason);
    metrics.ban_issued(obs::BanSource::admin);
    write = std::move(record);
  } else {
    const auto ip = admin::ban_path_ip(path);
    if (!ip) {
      co_await answer(400, Reason::none,
                      error_body("invalid_body", "the path must name an IPv4 or IPv6 address"));
      co_return;
    }
    what = R"("what":"unban","ip":)" + json_text(ip->client_key().to_string());
    write = *ip;
  }
  const std::error_code written = co_await write_state(*runtime.state, write);
  std::string event = R"("event":"admin_write",)" + what + R"(,"by":)" + json_text(token_hash);
  if (written) {
    runtime.logs->security_event(event + R"(,"result":"refused","error":)" +
                                 json_text(written.message()));
    // Not acknowledged: nothing was stored, the client may retry.
    co_await answer(503, Reason::state_unavailable,
                    error_body("service_unavailable", written.message()));
    co_return;
  }
  runtime.logs->security_event(event + R"(,"result":"ok")");
  co_await answer(endpoint == obs::AdminEndpoint::delete_bans ? 200 : 201, Reason::none,
                  R"({"status":"ok","request_id":)" + json_text(ex_->request_id) + "}");
}

}  // namespace portcullis::net
