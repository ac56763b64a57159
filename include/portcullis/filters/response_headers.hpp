#pragma once
// The response head the client receives, for upstream answers and for the gateway's own.
// Every response carries the configured security headers and the request id; upstream banners
// (Server, X-Powered-By, ...) and hop-by-hop headers are removed; Set-Cookie gains Secure,
// HttpOnly and SameSite when the upstream left them out.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "portcullis/config/policy.hpp"
#include "portcullis/http/response_parser.hpp"

namespace portcullis::filters {

using ExtraHeader = std::pair<std::string_view, std::string_view>;

struct ResponseContext {
  const config::Policy& policy;
  std::string_view request_id;
  bool head_request = false;      // a HEAD request: no body bytes follow the head
  bool close_connection = false;  // adds "Connection: close"
};

// Appends the client-facing head of an upstream response to `out`. `framing` and
// `content_length` state how the gateway sends the body (content_length, chunked, or none).
void build_client_response(const ResponseContext& context, const http::ResponseHead& upstream,
                           http::BodyFraming framing, std::uint64_t content_length,
                           std::string& out);

// Appends a complete gateway reply, head and JSON body
// `{"error":"<error_code>","request_id":"<id>"}` (no body bytes for HEAD), to `out`.
// `extra` adds headers such as Allow, Retry-After or WWW-Authenticate.
void build_local_reply(const ResponseContext& context, int status, std::string_view error_code,
                       std::span<const ExtraHeader> extra, std::string& out);

// The same with a JSON body the caller made (for answers that say more than the error code,
// such as {"error":"invalid_body","request_id":...,"pointer":"/password"}).
void build_local_reply_with_body(const ResponseContext& context, int status, std::string_view body,
                                 std::span<const ExtraHeader> extra, std::string& out);

// Adds the configured cookie flags to one Set-Cookie value.
std::string apply_cookie_flags(const config::CookieFlags& flags, std::string_view set_cookie);

}  // namespace portcullis::filters
