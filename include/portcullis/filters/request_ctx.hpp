#pragma once
// What one request carries through the request phases: the pinned policy, the head, who sent
// it (peer, TLS facts, the client IP resolved once), the matched route, the principal once
// authenticated, the local reply when a phase answers, and the access-log record every phase
// adds to. A phase reads and fills it and returns `next` or `respond`; it never writes to a
// socket. The connection pools these objects, so their strings keep their capacity between
// requests and a request allocates nothing for the chain.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portcullis/auth/principal.hpp"
#include "portcullis/config/policy.hpp"
#include "portcullis/core/ip.hpp"
#include "portcullis/core/reason.hpp"
#include "portcullis/http/request_parser.hpp"
#include "portcullis/state/backend.hpp"

namespace portcullis::filters {

struct TokenMemo;  // jwt_auth.hpp

// next: on to the next phase; respond: ctx.reply holds the answer; suspend: a phase waits for the
// state backend (ctx.suspended says for what), and the chain resumes once it has answered.
enum class Verdict : std::uint8_t { next, respond, suspend };

// The request phases a route can have, in the order they run (after the client IP and the ban
// check, which every request goes through, and the route match). Each route's list is built
// when the policy is loaded and holds only what the route configures.
enum class RequestPhase : std::uint8_t {
  ip_limits,      // the route's client_ip rate limits, before any signature is verified
  request_rules,  // method and content-type rules, declared body size
  jwt,            // find and verify the token
  revocation,     // the verified token against the denylist and subject cut-offs
  authorize,      // the route's scopes and claims
  user_limits,    // the route's jwt.sub rate limits
};

// A reply the gateway makes itself. Response filters (security headers, request id) run on it
// like on an upstream response.
struct LocalReply {
  struct Header {
    std::string_view name;  // a literal
    std::string value;
  };
  static constexpr std::size_t kMaxHeaders = 4;

  int status = 0;
  core::Reason reason = core::Reason::none;
  bool close = false;  // close the connection after the reply even if the request allows more
  std::array<Header, kMaxHeaders> headers;
  std::size_t header_count = 0;
  std::string body;  // empty = the standard {"error":...,"request_id":...} body

  void set(int status_code, core::Reason why) {
    status = status_code;
    reason = why;
    close = false;
    header_count = 0;
    body.clear();
  }
  void add_header(std::string_view name, std::string_view value) {
    if (header_count == kMaxHeaders) return;
    headers[header_count].name = name;
    headers[header_count].value.assign(value);
    ++header_count;
  }
};

struct RequestCtx {
  using Clock = std::chrono::steady_clock;

  // What the request did, for the access log and metrics.
  struct Record {
    Clock::time_point started;
    std::string_view upstream;
    Clock::time_point upstream_sent;
    double upstream_seconds = -1;
    int status = 0;
    core::Reason reason = core::Reason::none;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
  };

  const config::Policy* policy = nullptr;  // the snapshot this request keeps to its end
  http::RequestHead head;
  std::string path;  // normalised
  std::string request_id;

  core::IpAddress peer;
  bool peer_is_trusted_proxy = false;
  core::IpAddress client_ip;  // resolved once, right after the head: limits, bans, logs

  const config::Route* route = nullptr;
  std::size_t route_index = 0;

  std::shared_ptr<const auth::Principal> principal;                // once authenticated
  std::vector<std::pair<std::string, std::string>> claim_headers;  // verified claims to add
  std::string subject;              // of the request's verified token, for logs
  std::string token_hash;           // short hash of the request's token, for logs
  TokenMemo* token_memo = nullptr;  // the client connection's last verified token, if it keeps one
  struct JwtOutcome {
    bool checked = false;  // the route verified a token (counted in the metrics)
    bool cache_hit = false;
    core::Reason result = core::Reason::none;
  } jwt;
  bool report_only = false;

  LocalReply reply;
  Record record;

  // A rate-limit phase waiting for the fleet's decision (Verdict::suspend). The vector keeps its
  // capacity between requests on a pooled context.
  struct Suspended {
    std::size_t resume_at = 0;  // the phase after the one that suspended
    bool by_subject = false;
    std::vector<state::Backend::LimitCheck> checks;
  } suspended;

  // A phase's refusal: answered with `status`, or with enforce: false only recorded (the
  // request goes on). Returns the verdict the phase hands back.
  Verdict refuse(int status, core::Reason reason) {
    if (route && !route->enforce) {
      report_only = true;
      record.reason = reason;
      return Verdict::next;
    }
    reply.set(status, reason);
    return Verdict::respond;
  }
};

}  // namespace portcullis::filters
