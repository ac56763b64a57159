#include "portcullis/filters/forward_headers.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portcullis::filters {
namespace {

constexpr std::string_view kId = "0123456789abcdef0123456789abcdef";

core::IpAddress ip(std::string_view text) {
  const auto address = core::IpAddress::parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(core::IpAddress{});
}

config::Policy policy_trusting(std::vector<std::string_view> cidrs) {
  config::Policy policy;
  for (const auto cidr : cidrs)
    policy.server.trusted_proxies.push_back(*core::Cidr::parse(cidr));
  return policy;
}

http::RequestHead get_head(std::vector<http::Header> headers) {
  http::RequestHead head;
  head.method = "GET";
  head.target = "/api/accounts";
  head.path = "/api/accounts";
  head.host = "bank.example";
  head.headers = std::move(headers);
  return head;
}

std::string build(const config::Policy& policy, const http::RequestHead& head,
                  const core::IpAddress& peer, bool trusted = false,
                  http::BodyFraming framing = http::BodyFraming::none, std::uint64_t length = 0,
                  std::string_view path = "/api/accounts") {
  std::string out;
  build_upstream_request(policy, UpstreamRequest{head, path, peer, trusted, kId, framing, length},
                         out);
  return out;
}

std::size_t count(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

TEST(BuildUpstreamRequest, ReplacesForwardingHeadersTheClientSent) {
  const config::Policy policy;
  http::RequestHead head = get_head({{"Host", "bank.example"},
                                     {"User-Agent", "curl/8"},
                                     {"X-Forwarded-For", "6.6.6.6"},
                                     {"x-forwarded-proto", "http"},
                                     {"X-FORWARDED-HOST", "evil.example"},
                                     {"Forwarded", "for=6.6.6.6"},
                                     {"X-Real-IP", "6.6.6.6"},
                                     {"x-request-id", "client-chosen"},
                                     {"Accept", "*/*"},
                                     {"Cookie", "a=b"}});
  head.target = "/api/./accounts?a=1&b=%20";
  head.path = "/api/./accounts";
  head.query = "a=1&b=%20";
  head.has_query = true;
  EXPECT_EQ(build(policy, head, ip("203.0.113.7")),
            "GET /api/accounts?a=1&b=%20 HTTP/1.1\r\n"
            "Host: bank.example\r\n"
            "User-Agent: curl/8\r\n"
            "Accept: */*\r\n"
            "Cookie: a=b\r\n"
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: bank.example\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "\r\n");
}

TEST(BuildUpstreamRequest, UsesNormalizedPathAndKeepsQueryAsReceived) {
  const config::Policy policy;
  http::RequestHead head = get_head({{"Host", "bank.example"}});
  head.path = "/api//x/../accounts";
  EXPECT_TRUE(build(policy, head, ip("192.0.2.1")).starts_with("GET /api/accounts HTTP/1.1\r\n"));

  head.query = "";
  head.has_query = true;  // "/path?" keeps its empty query
  EXPECT_TRUE(build(policy, head, ip("192.0.2.1")).starts_with("GET /api/accounts? HTTP/1.1\r\n"));

  head.query = "q=%2F..%2F&x";
  EXPECT_TRUE(build(policy, head, ip("192.0.2.1"))
                  .starts_with("GET /api/accounts?q=%2F..%2F&x HTTP/1.1\r\n"));
}

TEST(BuildUpstreamRequest, TrustedProxyAppendsToForwardedFor) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  const http::RequestHead head = get_head({{"X-Forwarded-For", "198.51.100.1, 10.0.0.2"},
                                           {"Accept", "*/*"},
                                           {"x-forwarded-for", "10.0.0.3"}});
  const auto out = build(policy, head, ip("10.0.0.9"), true);
  EXPECT_NE(out.find("\r\nX-Forwarded-For: 198.51.100.1, 10.0.0.2, 10.0.0.3, 10.0.0.9\r\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(count(out, "orwarded-For"), 1u);
}

TEST(BuildUpstreamRequest, PeerAddressesAreWrittenInTheirUsualForm) {
  const auto policy = policy_trusting({});
  for (const char* peer :
       {"0.0.0.0", "255.10.0.7", "192.0.2.100", "2001:db8::1", "::1", "2001:db8:0:1:1:1:1:1"}) {
    const auto out = build(policy, get_head({}), ip(peer), true);
    EXPECT_NE(out.find(std::string("\r\nX-Forwarded-For: ") + peer + "\r\n"), std::string::npos)
        << out;
  }
}

TEST(BuildUpstreamRequest, TrustedProxyWithoutForwardedForSendsPeer) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  const auto out = build(policy, get_head({}), ip("10.0.0.9"), true);
  EXPECT_NE(out.find("\r\nX-Forwarded-For: 10.0.0.9\r\n"), std::string::npos) << out;
}

TEST(BuildUpstreamRequest, UntrustedPeerForwardedForIsReplaced) {
  const config::Policy policy;
  const auto out = build(policy, get_head({{"X-Forwarded-For", "1.1.1.1"}}), ip("2001:db8::1"));
  EXPECT_NE(out.find("\r\nX-Forwarded-For: 2001:db8::1\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("1.1.1.1"), std::string::npos);
}

TEST(BuildUpstreamRequest, DropsHopByHopAndConnectionNamedHeaders) {
  const config::Policy policy;
  http::RequestHead head = get_head({{"Connection", "keep-alive, X-Secret"},
                                     {"Keep-Alive", "timeout=5"},
                                     {"X-Secret", "internal"},
                                     {"TE", "trailers"},
                                     {"Upgrade", "h2c"},
                                     {"Proxy-Authorization", "Basic eA=="},
                                     {"Proxy-Connection", "keep-alive"},
                                     {"Trailer", "X-Checksum"},
                                     {"connection", "x-other"},
                                     {"X-OTHER", "1"},
                                     {"X-Kept", "yes"}});
  head.connection = {"keep-alive, X-Secret", "x-other"};
  const auto out = build(policy, head, ip("192.0.2.1"));
  EXPECT_EQ(out,
            "GET /api/accounts HTTP/1.1\r\n"
            "Host: bank.example\r\n"
            "X-Kept: yes\r\n"
            "X-Forwarded-For: 192.0.2.1\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: bank.example\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "\r\n");
}

TEST(BuildUpstreamRequest, RestatesFraming) {
  const config::Policy policy;
  http::RequestHead head = get_head({{"Content-Length", "42"}, {"Expect", "100-continue"}});
  head.method = "PUT";
  auto out = build(policy, head, ip("192.0.2.1"), false, http::BodyFraming::content_length, 42);
  EXPECT_EQ(count(out, "Content-Length"), 1u);
  EXPECT_TRUE(out.ends_with("\r\nContent-Length: 42\r\n\r\n")) << out;
  EXPECT_EQ(out.find("Expect"), std::string::npos);

  head.headers = {{"Transfer-Encoding", "chunked"}};
  head.method = "POST";
  out = build(policy, head, ip("192.0.2.1"), false, http::BodyFraming::chunked);
  EXPECT_EQ(count(out, "Transfer-Encoding"), 1u);
  EXPECT_TRUE(out.ends_with("\r\nTransfer-Encoding: chunked\r\n\r\n")) << out;

  // The gateway may send a collected chunked body with a length instead.
  out = build(policy, head, ip("192.0.2.1"), false, http::BodyFraming::content_length, 7);
  EXPECT_EQ(out.find("Transfer-Encoding"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\nContent-Length: 7\r\n\r\n")) << out;
}

TEST(BuildUpstreamRequest, BodylessWritesSayContentLengthZero) {
  const config::Policy policy;
  http::RequestHead head = get_head({});
  for (const std::string_view method : {"POST", "PUT", "PATCH"}) {
    head.method = method;
    EXPECT_TRUE(build(policy, head, ip("192.0.2.1")).ends_with("\r\nContent-Length: 0\r\n\r\n"))
        << method;
  }
  for (const std::string_view method : {"GET", "HEAD", "DELETE", "OPTIONS"}) {
    head.method = method;
    const auto out = build(policy, head, ip("192.0.2.1"));
    EXPECT_TRUE(out.starts_with(std::string(method) + " /api/accounts HTTP/1.1\r\n"));
    EXPECT_EQ(out.find("Content-Length"), std::string::npos) << method;
  }
}

TEST(BuildUpstreamRequest, ConfiguredRequestIdHeader) {
  config::Policy policy;
  policy.server.request_id.header = "X-Correlation-Id";
  const auto out =
      build(policy, get_head({{"x-correlation-id", "spoofed"}, {"X-Request-Id", "opaque"}}),
            ip("192.0.2.1"));
  EXPECT_EQ(out.find("spoofed"), std::string::npos);
  EXPECT_NE(out.find("\r\nX-Request-Id: opaque\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nX-Correlation-Id: 0123456789abcdef0123456789abcdef\r\n"),
            std::string::npos);
}

TEST(BuildUpstreamRequest, AppendsToCallerBuffer) {
  const config::Policy policy;
  http::RequestHead head = get_head({});
  head.host = "";
  std::string out = "previous";
  build_upstream_request(policy, UpstreamRequest{head, "/", ip("192.0.2.1"), false, kId}, out);
  EXPECT_EQ(out,
            "previousGET / HTTP/1.1\r\n"
            "Host: \r\n"
            "X-Forwarded-For: 192.0.2.1\r\n"
            "X-Forwarded-Proto: https\r\n"
            "X-Request-Id: 0123456789abcdef0123456789abcdef\r\n"
            "\r\n");
}

TEST(ClientIp, UntrustedPeerIsTheClient) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "198.51.100.1"}}), ip("192.0.2.1")),
            ip("192.0.2.1"));
  const config::Policy trusting_nobody;
  EXPECT_EQ(
      client_ip(trusting_nobody, get_head({{"X-Forwarded-For", "198.51.100.1"}}), ip("10.0.0.1")),
      ip("10.0.0.1"));
}

TEST(ClientIp, TrustedPeerWithoutForwardedFor) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  EXPECT_EQ(client_ip(policy, get_head({}), ip("10.0.0.1")), ip("10.0.0.1"));
}

TEST(ClientIp, RightMostUntrustedAddressWins) {
  const auto policy = policy_trusting({"10.0.0.0/8", "2001:db8:ffff::/48"});
  // Entries left of the first untrusted one are whatever the client claimed.
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "1.2.3.4, 198.51.100.1, 10.0.0.2"}}),
                      ip("10.0.0.1")),
            ip("198.51.100.1"));
  // The walk crosses header lines, last header first.
  EXPECT_EQ(client_ip(policy,
                      get_head({{"X-Forwarded-For", "198.51.100.1"},
                                {"Accept", "*/*"},
                                {"x-forwarded-for", "203.0.113.5, 2001:db8:ffff::7"}}),
                      ip("10.0.0.1")),
            ip("203.0.113.5"));
  EXPECT_EQ(
      client_ip(policy,
                get_head({{"X-Forwarded-For", "198.51.100.1"}, {"X-Forwarded-For", "10.9.9.9"}}),
                ip("10.0.0.1")),
      ip("198.51.100.1"));
}

TEST(ClientIp, AllTrustedGivesLeftMost) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  EXPECT_EQ(
      client_ip(policy, get_head({{"X-Forwarded-For", "10.0.0.5, 10.0.0.6"}}), ip("10.0.0.1")),
      ip("10.0.0.5"));
}

TEST(ClientIp, MalformedEntryStopsTheWalk) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "198.51.100.1, unknown, 10.0.0.2"}}),
                      ip("10.0.0.1")),
            ip("10.0.0.2"));
  EXPECT_EQ(
      client_ip(policy, get_head({{"X-Forwarded-For", "198.51.100.1, not-an-ip"}}), ip("10.0.0.1")),
      ip("10.0.0.1"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "1.2.3.4:x"}}), ip("10.0.0.1")),
            ip("10.0.0.1"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "[2001:db8::1"}}), ip("10.0.0.1")),
            ip("10.0.0.1"));
}

TEST(ClientIp, AddressForms) {
  const auto policy = policy_trusting({"10.0.0.0/8"});
  const auto peer = ip("10.0.0.1");
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "[2001:db8::7]:443"}}), peer),
            ip("2001:db8::7"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "[2001:db8::8]"}}), peer),
            ip("2001:db8::8"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "2001:db8::9"}}), peer),
            ip("2001:db8::9"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "198.51.100.1:8080"}}), peer),
            ip("198.51.100.1"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", " 198.51.100.2 ,, \t"}}), peer),
            ip("198.51.100.2"));
  EXPECT_EQ(client_ip(policy, get_head({{"X-Forwarded-For", "::ffff:198.51.100.3"}}), peer),
            ip("198.51.100.3"));
}

}  // namespace
}  // namespace portcullis::filters
