#include "portcullis/filters/response_headers.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace portcullis::filters {
namespace {

constexpr std::string_view kId = "0123456789abcdef0123456789abcdef";

constexpr std::string_view kSecurityHeaders =
    "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n"
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cache-Control: no-store\r\n";

http::ResponseHead ok_head(std::vector<http::Header> headers) {
  http::ResponseHead head;
  head.status = 200;
  head.reason = "OK";
  head.headers = std::move(headers);
  return head;
}

std::string respond(const ResponseContext& context, const http::ResponseHead& upstream,
                    http::BodyFraming framing = http::BodyFraming::content_length,
                    std::uint64_t length = 0) {
  std::string out;
  build_client_response(context, upstream, framing, length, out);
  return out;
}

TEST(BuildClientResponse, TypicalResponse) {
  const config::Policy policy;
  const ResponseContext context{policy, kId};
  http::ResponseHead upstream = ok_head({{"Server", "Apache/2.4.1"},
                                         {"Content-Type", "application/json"},
                                         {"x-powered-by", "PHP/5.6"},
                                         {"X-AspNet-Version", "4.0"},
                                         {"Connection", "keep-alive"},
                                         {"Keep-Alive", "timeout=5"},
                                         {"Content-Length", "17"},
                                         {"cache-control", "public, max-age=600"},
                                         {"ETag", "\"v1\""},
                                         {"X-Request-Id", "upstream-id"}});
  upstream.connection = {"keep-alive"};
  EXPECT_EQ(respond(context, upstream, http::BodyFraming::content_length, 17),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            "ETag: \"v1\"\r\n" +
                std::string(kSecurityHeaders) +
                "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
                "Content-Length: 17\r\n"
                "\r\n");
}

TEST(BuildClientResponse, ConfiguredSetHeadersReplaceUpstreams) {
  config::Policy policy;
  policy.headers.response_set = {{"Cache-Control", "no-store"}, {"X-Frame-Options", "DENY"}};
  policy.headers.response_remove = {};
  const ResponseContext context{policy, kId};
  const auto out = respond(
      context,
      ok_head({{"X-FRAME-OPTIONS", "ALLOWALL"}, {"Cache-Control", "public"}, {"Server", "nginx"}}));
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Server: nginx\r\n"
            "Cache-Control: no-store\r\n"
            "X-Frame-Options: DENY\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "Content-Length: 0\r\n"
            "\r\n");
}

TEST(BuildClientResponse, DropsHopByHopAndConnectionNamed) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, kId};
  http::ResponseHead upstream = ok_head({{"Connection", "X-Internal"},
                                         {"X-Internal", "10.1.2.3"},
                                         {"Transfer-Encoding", "chunked"},
                                         {"Upgrade", "h2"},
                                         {"Trailer", "X-Sum"},
                                         {"Proxy-Authenticate", "Basic"},
                                         {"Vary", "Accept"}});
  upstream.connection = {"X-Internal"};
  EXPECT_EQ(respond(context, upstream, http::BodyFraming::chunked),
            "HTTP/1.1 200 OK\r\n"
            "Vary: Accept\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "Transfer-Encoding: chunked\r\n"
            "\r\n");
}

TEST(BuildClientResponse, ReasonPhrase) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, kId};
  http::ResponseHead upstream = ok_head({});
  upstream.reason = "Everything Fine";
  EXPECT_TRUE(respond(context, upstream).starts_with("HTTP/1.1 200 Everything Fine\r\n"));
  upstream.reason = "";
  EXPECT_TRUE(respond(context, upstream).starts_with("HTTP/1.1 200 OK\r\n"));
  upstream.reason = "Bad\x01";
  EXPECT_TRUE(respond(context, upstream).starts_with("HTTP/1.1 200 OK\r\n"));
  upstream.reason = "Caf\xc3\xa9";
  EXPECT_TRUE(respond(context, upstream).starts_with("HTTP/1.1 200 OK\r\n"));
  upstream.status = 299;
  upstream.reason = "";
  EXPECT_TRUE(respond(context, upstream).starts_with("HTTP/1.1 299 Unknown\r\n"));
}

TEST(BuildClientResponse, FramingNone) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, kId};
  http::ResponseHead upstream = ok_head({});
  EXPECT_TRUE(respond(context, upstream, http::BodyFraming::none)
                  .ends_with("\r\nContent-Length: 0\r\n\r\n"));
  for (const int status : {100, 204, 304}) {
    upstream.status = status;
    upstream.reason = "";
    const auto out = respond(context, upstream, http::BodyFraming::none);
    EXPECT_EQ(out.find("Content-Length"), std::string::npos) << status;
    EXPECT_TRUE(out.ends_with("\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n"));
  }
  upstream.status = 200;
  EXPECT_TRUE(respond(context, upstream, http::BodyFraming::until_close)
                  .ends_with("\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n"));
}

TEST(BuildClientResponse, HeadResponseKeepsUpstreamLength) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, kId, /*head_request=*/true};
  const auto out = respond(context, ok_head({{"Content-Length", "1234"}}), http::BodyFraming::none);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Content-Length: 1234\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "\r\n");
  const auto without = respond(context, ok_head({}), http::BodyFraming::none);
  EXPECT_EQ(without.find("Content-Length"), std::string::npos);
}

TEST(BuildClientResponse, ConnectionCloseAndAppend) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, kId, false, /*close_connection=*/true};
  std::string out = "earlier";
  build_client_response(context, ok_head({}), http::BodyFraming::content_length, 5, out);
  EXPECT_EQ(out,
            "earlierHTTP/1.1 200 OK\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "Content-Length: 5\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST(BuildClientResponse, SetCookieGainsFlags) {
  const config::Policy policy;
  const ResponseContext context{policy, kId};
  const auto out =
      respond(context, ok_head({{"Set-Cookie", "sid=abc; Path=/"},
                                {"set-cookie", "pref=1; Secure; HttpOnly; SameSite=Lax"}}));
  EXPECT_NE(out.find("\r\nSet-Cookie: sid=abc; Path=/; Secure; HttpOnly; SameSite=Strict\r\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\r\nset-cookie: pref=1; Secure; HttpOnly; SameSite=Lax\r\n"),
            std::string::npos)
      << out;
}

TEST(ApplyCookieFlags, AddsOnlyMissingAttributes) {
  const config::CookieFlags flags;  // secure, http_only, SameSite=Strict
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc"), "sid=abc; Secure; HttpOnly; SameSite=Strict");
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; path=/; secure"),
            "sid=abc; path=/; secure; HttpOnly; SameSite=Strict");
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc;HTTPONLY;samesite=none;SECURE"),
            "sid=abc;HTTPONLY;samesite=none;SECURE");
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; Max-Age=60; SameSite = Lax"),
            "sid=abc; Max-Age=60; SameSite = Lax; Secure; HttpOnly");
  // The cookie's own name and value are not attributes.
  EXPECT_EQ(apply_cookie_flags(flags, "Secure=HttpOnly"),
            "Secure=HttpOnly; Secure; HttpOnly; SameSite=Strict");
  // No doubled separator after a trailing ';'.
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; "), "sid=abc; Secure; HttpOnly; SameSite=Strict");
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; Secure; HttpOnly; SameSite=Strict"),
            "sid=abc; Secure; HttpOnly; SameSite=Strict");
}

TEST(ApplyCookieFlags, RespectsConfiguration) {
  config::CookieFlags flags;
  flags.secure = false;
  flags.http_only = false;
  flags.same_site = config::SameSite::off;
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; "), "sid=abc; ");

  flags.same_site = config::SameSite::lax;
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc"), "sid=abc; SameSite=Lax");

  // SameSite=None is only honoured by browsers on Secure cookies.
  flags.same_site = config::SameSite::none;
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc"), "sid=abc; Secure; SameSite=None");
  flags.same_site = config::SameSite::off;
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; SameSite=None"), "sid=abc; SameSite=None; Secure");
  EXPECT_EQ(apply_cookie_flags(flags, "sid=abc; SameSite=Strict"), "sid=abc; SameSite=Strict");
}

TEST(BuildLocalReply, ExactBytes) {
  const config::Policy policy;
  const ResponseContext context{policy, kId};
  std::string out;
  build_local_reply(context, 404, "not_found", {}, out);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\n" + std::string(kSecurityHeaders) +
                     "Content-Type: application/json\r\n"
                     "Content-Length: 69\r\n"
                     "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
                     "\r\n"
                     R"({"error":"not_found","request_id":"0123456789abcdef0123456789abcdef"})");
}

TEST(BuildLocalReply, ExtraHeadersHeadAndClose) {
  config::Policy policy;
  policy.headers.response_set = {{"Cache-Control", "no-store"}};
  const ResponseContext context{policy, kId, /*head_request=*/true, /*close_connection=*/true};
  const std::array<ExtraHeader, 1> extra = {ExtraHeader{"Allow", "GET, HEAD"}};
  std::string out = "x";
  build_local_reply(context, 405, "method_not_allowed", extra, out);
  EXPECT_EQ(out,
            "xHTTP/1.1 405 Method Not Allowed\r\n"
            "Cache-Control: no-store\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 78\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "Allow: GET, HEAD\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST(BuildLocalReply, EscapesRequestIdInBody) {
  config::Policy policy;
  policy.headers.response_set = {};
  const ResponseContext context{policy, "a\"b"};
  std::string out;
  build_local_reply(context, 429, "too_many_requests", {}, out);
  EXPECT_TRUE(out.ends_with(R"({"error":"too_many_requests","request_id":"a\"b"})")) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 49\r\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace portcullis::filters
