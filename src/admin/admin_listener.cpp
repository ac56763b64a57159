// The admin listener (see listener.hpp): /metrics, /healthz, /readyz and the admin API.

#include <openssl/crypto.h>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "portcullis/admin/listener.hpp"
#include "portcullis/admin/requests.hpp"
#include "portcullis/core/errors.hpp"
#include "portcullis/core/text.hpp"
#include "portcullis/http/headers.hpp"

namespace portcullis::admin {
namespace {

namespace asio = boost::asio;
using core::Reason;
using http::BodyFraming;

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

Access check_bearer(const std::optional<auth::TokenDigest>& token, const http::RequestHead& head,
                    std::string& token_hash) {
  if (!token) return Access::disabled;
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
  return CRYPTO_memcmp(digest.data(), token->data(), digest.size()) == 0 ? Access::allowed
                                                                         : Access::refused;
}

asio::awaitable<void> serve_api(upstream::ClientSide client, const ListenerContext& context);

}  // namespace

asio::awaitable<void> serve(upstream::ClientSide client, const ListenerContext& context) {
  upstream::Exchange& ex = client.ex;
  const std::string_view path = ex.head.path;
  const std::string_view method = ex.head.method;
  if (path == "/revocations" || path == "/bans" || path.starts_with("/bans/")) {
    co_await serve_api(client, context);
    co_return;
  }
  const bool draining = client.draining.load(std::memory_order_relaxed);
  std::string_view status_line;
  std::string_view body;
  if (method != "GET" && method != "HEAD") {
    co_await upstream::send_local(client, 405, Reason::method_not_allowed, true);
    co_return;
  }
  if (path == "/metrics") {
    auto& metrics = context.metrics;
    metrics.log_lines_dropped(obs::Logs::dropped_lines());
    metrics.sync_log_write_errors();
    if (context.state) {
      const auto sizes = context.state->mirror().sizes();
      metrics.state.mirror_size(sizes.revocations, sizes.cutoffs, sizes.bans);
      metrics.state.backend_up(context.state->available());
    }
    const std::string exposition = metrics.expose();
    ex.out =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: ";
    ex.out += std::to_string(exposition.size());
    ex.out += "\r\nConnection: close\r\n\r\n";
    if (method == "GET") ex.out += exposition;
    const std::string_view piece = ex.out;
    co_await client.write(std::span(&piece, 1));
    co_return;
  }
  const bool state_down = context.state && !context.state->available() &&
                          client.policy.state.on_unavailable == config::OnUnavailable::fail_closed;
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
    co_await upstream::send_local(client, 404, Reason::no_route, true);
    co_return;
  }
  ex.out.assign(status_line);
  ex.out += "Content-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ";
  ex.out += std::to_string(body.size());
  ex.out += "\r\nConnection: close\r\n\r\n";
  if (method == "GET") ex.out += body;
  const std::string_view piece = ex.out;
  co_await client.write(std::span(&piece, 1));
}

namespace {

// POST /revocations, GET and POST /bans, DELETE /bans/<ip>.
asio::awaitable<void> serve_api(upstream::ClientSide client, const ListenerContext& context) {
  upstream::Exchange& ex = client.ex;
  const std::string_view path = ex.head.path;
  const std::string_view method = ex.head.method;
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
    co_await upstream::send_local(client, 405, Reason::method_not_allowed, true,
                                  std::span(&allow, 1));
    co_return;
  }
  auto& metrics = context.metrics.state;
  // The body is kept in the exchange: the reply coroutine starts only when awaited.
  const auto answer = [&](int status, Reason reason, std::string body,
                          std::span<const filters::ExtraHeader> extra = {}) {
    metrics.admin_write(endpoint, status < 300);
    ex.reply.body = std::move(body);
    return upstream::send_local(client, status, reason, true, extra, ex.reply.body);
  };
  const auto error_body = [&](std::string_view code, std::string_view message = {}) {
    std::string body = R"({"error":)" + json_text(code);
    if (!message.empty()) body += R"(,"message":)" + json_text(message);
    body += R"(,"request_id":)" + json_text(ex.request_id) + "}";
    return body;
  };
  if (ex.request_id.empty()) client.request_ids.next(ex.request_id);

  std::string token_hash;
  switch (check_bearer(context.token, ex.head, token_hash)) {
    case Access::disabled:
      co_await answer(403, Reason::none,
                      error_body("forbidden",
                                 "the admin API is off: server.admin.token_file "
                                 "is not set"));
      co_return;
    case Access::refused: {
      context.logs.security_event(R"("event":"admin_denied","path":)" + json_text(path) +
                                  R"(,"by":)" + json_text(token_hash) + R"(,"client_ip":)" +
                                  json_text(context.peer.to_string()));
      const filters::ExtraHeader challenge{"WWW-Authenticate", "Bearer"};
      co_await answer(401, Reason::none, error_body("unauthorized"), std::span(&challenge, 1));
      co_return;
    }
    case Access::allowed:
      break;
  }
  if (!context.state) {
    co_await answer(503, Reason::state_unavailable, error_body("service_unavailable"));
    co_return;
  }
  const core::Clock& clock = context.clock;
  const std::int64_t now = unix_now(clock);

  if (endpoint == obs::AdminEndpoint::get_bans) {
    std::string body = R"({"bans":[)";
    bool first = true;
    for (const auto& ban : context.state->mirror().active_bans(now)) {
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
    if (ex.head.framing == BodyFraming::content_length && ex.head.content_length > kMaxBodyBytes) {
      co_await answer(413, Reason::body_too_large, error_body("payload_too_large"));
      co_return;
    }
    Reason failed = Reason::none;
    const int status = ex.head.framing == BodyFraming::none
                           ? 0
                           : co_await upstream::read_body(client, kMaxBodyBytes, failed);
    if (ex.head.framing == BodyFraming::none) ex.body.clear();
    if (status < 0) co_return;
    if (status > 0) {
      co_await answer(status, failed, error_body(core::error_code_for_status(status)));
      co_return;
    }
    body = ex.body;
  }

  std::string what;  // for the security log: the record, never the token
  StateWrite write;
  if (endpoint == obs::AdminEndpoint::post_revocations) {
    auto parsed = parse_revocation(body, now);
    if (const auto* error = std::get_if<BodyError>(&parsed)) {
      co_await answer(400, Reason::none, error_body("invalid_body", error->message));
      co_return;
    }
    auto& request = std::get<RevocationRequest>(parsed);
    if (auto* token = std::get_if<TokenRevocation>(&request)) {
      what = R"("what":"revoke_token","jti":)" + json_text(token->jti) + R"(,"exp":)" +
             std::to_string(token->exp);
      if (!token->issuer.empty()) what += R"(,"iss":)" + json_text(token->issuer);
      write = state::Revocation{std::move(token->issuer), std::move(token->jti), token->exp};
    } else {
      auto& subject = std::get<SubjectRevocation>(request);
      what = R"("what":"revoke_subject","sub":)" + json_text(subject.subject) +
             R"(,"issued_before":)" + std::to_string(subject.issued_before);
      if (!subject.issuer.empty()) what += R"(,"iss":)" + json_text(subject.issuer);
      write = state::SubjectCutoff{std::move(subject.issuer), std::move(subject.subject),
                                   subject.issued_before};
    }
  } else if (endpoint == obs::AdminEndpoint::post_bans) {
    auto parsed = parse_ban(body);
    if (const auto* error = std::get_if<BodyError>(&parsed)) {
      co_await answer(400, Reason::none, error_body("invalid_body", error->message));
      co_return;
    }
    auto& request = std::get<BanRequest>(parsed);
    state::Ban record{request.ip.client_key(), now + request.duration.count(), request.reason};
    what = R"("what":"ban","ip":)" + json_text(record.ip.to_string()) + R"(,"until":)" +
           std::to_string(record.until) + R"(,"reason":)" + json_text(record.reason);
    metrics.ban_issued(obs::BanSource::admin);
    write = std::move(record);
  } else {
    const auto ip = ban_path_ip(path);
    if (!ip) {
      co_await answer(400, Reason::none,
                      error_body("invalid_body", "the path must name an IPv4 or IPv6 address"));
      co_return;
    }
    what = R"("what":"unban","ip":)" + json_text(ip->client_key().to_string());
    write = *ip;
  }
  const std::error_code written = co_await write_state(*context.state, write);
  std::string event = R"("event":"admin_write",)" + what + R"(,"by":)" + json_text(token_hash);
  if (written) {
    context.logs.security_event(event + R"(,"result":"refused","error":)" +
                                json_text(written.message()));
    // Not acknowledged: nothing was stored, the client may retry.
    co_await answer(503, Reason::state_unavailable,
                    error_body("service_unavailable", written.message()));
    co_return;
  }
  context.logs.security_event(event + R"(,"result":"ok")");
  co_await answer(endpoint == obs::AdminEndpoint::delete_bans ? 200 : 201, Reason::none,
                  R"({"status":"ok","request_id":)" + json_text(ex.request_id) + "}");
}

}  // namespace
}  // namespace portcullis::admin
