// Hot-path costs of the filters: route matching, and building the upstream request head and the
// client response head into a reused buffer.

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "portcullis/filters/forward_headers.hpp"
#include "portcullis/filters/response_headers.hpp"
#include "portcullis/filters/router.hpp"

namespace {

using namespace portcullis;

config::Policy routing_policy() {
  config::Policy policy;
  const char* prefixes[] = {"/api/login",     "/api/logout",        "/api/accounts",
                            "/api/cards",     "/api/payments",      "/api/transfers",
                            "/api/loans",     "/api/statements",    "/api/profile",
                            "/api/devices",   "/api/messages",      "/api/limits",
                            "/api/fx",        "/api/beneficiaries", "/api/standing-orders",
                            "/api/documents", "/api/notifications", "/api/branches"};
  for (const char* prefix : prefixes) {
    config::Route route;
    route.name = prefix + 5;
    route.match.path_prefix = prefix;
    route.match.methods = {"GET", "POST"};
    policy.routes.push_back(route);
  }
  config::Route health;
  health.name = "health";
  health.match.path = "/health";
  policy.routes.push_back(health);
  config::Route static_files;
  static_files.name = "static";
  static_files.match.path_prefix = "/static/";
  static_files.match.methods = {"GET"};
  policy.routes.push_back(static_files);
  return policy;
}

void BM_RouterMatchLate(benchmark::State& state) {
  const auto policy = routing_policy();
  const filters::Router router(policy);
  for (auto _ : state) {
    auto decision = router.match("GET", "/api/branches/near/48.85,2.35");
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK(BM_RouterMatchLate);

void BM_RouterMatchEarly(benchmark::State& state) {
  const auto policy = routing_policy();
  const filters::Router router(policy);
  for (auto _ : state) {
    auto decision = router.match("POST", "/api/accounts/12345/transactions");
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK(BM_RouterMatchEarly);

void BM_RouterNotFound(benchmark::State& state) {
  const auto policy = routing_policy();
  const filters::Router router(policy);
  for (auto _ : state) {
    auto decision = router.match("GET", "/wp-admin/install.php");
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK(BM_RouterNotFound);

http::RequestHead typical_request() {
  http::RequestHead head;
  head.method = "POST";
  head.target = "/api/payments?idempotency=8f14e45f";
  head.path = "/api/payments";
  head.query = "idempotency=8f14e45f";
  head.has_query = true;
  head.host = "bank.example";
  head.framing = http::BodyFraming::content_length;
  head.content_length = 512;
  head.headers = {
      {"Host", "bank.example"},
      {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0"},
      {"Accept", "application/json"},
      {"Accept-Language", "en-GB,en;q=0.5"},
      {"Accept-Encoding", "gzip, deflate, br"},
      {"Content-Type", "application/json"},
      {"Content-Length", "512"},
      {"Authorization", "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ1MSJ9.c2ln"},
      {"Origin", "https://bank.example"},
      {"Referer", "https://bank.example/payments/new"},
      {"Cookie", "sid=3f2a9c1e; csrf=77aa"},
      {"Connection", "keep-alive"},
  };
  head.connection = {"keep-alive"};
  return head;
}

void BM_BuildUpstreamRequest(benchmark::State& state) {
  const config::Policy policy;
  const auto head = typical_request();
  const auto peer = *core::IpAddress::parse("203.0.113.7");
  std::string out;
  for (auto _ : state) {
    out.clear();
    filters::build_upstream_request(
        policy,
        filters::UpstreamRequest{head, "/api/payments", peer, false,
                                 "0123456789abcdef0123456789abcdef",
                                 http::BodyFraming::content_length, 512},
        out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_BuildUpstreamRequest);

void BM_ClientIpTrustedChain(benchmark::State& state) {
  config::Policy policy;
  policy.server.trusted_proxies = {*core::Cidr::parse("10.0.0.0/8"),
                                   *core::Cidr::parse("192.168.0.0/16")};
  auto head = typical_request();
  head.headers.push_back({"X-Forwarded-For", "198.51.100.23, 10.1.2.3, 192.168.7.1"});
  const auto peer = *core::IpAddress::parse("10.0.0.2");
  for (auto _ : state) {
    auto ip = filters::client_ip(policy, head, peer);
    benchmark::DoNotOptimize(ip);
  }
}
BENCHMARK(BM_ClientIpTrustedChain);

void BM_BuildClientResponse(benchmark::State& state) {
  const config::Policy policy;
  http::ResponseHead upstream;
  upstream.status = 200;
  upstream.reason = "OK";
  upstream.framing = http::BodyFraming::content_length;
  upstream.content_length = 2048;
  upstream.headers = {
      {"Date", "Tue, 04 Jun 2024 10:00:00 GMT"},
      {"Server", "Apache/2.4.58"},
      {"Content-Type", "application/json; charset=utf-8"},
      {"Content-Length", "2048"},
      {"X-Powered-By", "Express"},
      {"ETag", "W/\"800-abc\""},
      {"Vary", "Accept-Encoding"},
      {"Set-Cookie", "sid=3f2a9c1e; Path=/; Max-Age=900"},
      {"Connection", "keep-alive"},
      {"Keep-Alive", "timeout=5"},
  };
  upstream.connection = {"keep-alive"};
  const filters::ResponseContext context{policy, "0123456789abcdef0123456789abcdef"};
  std::string out;
  for (auto _ : state) {
    out.clear();
    filters::build_client_response(context, upstream, http::BodyFraming::content_length, 2048, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_BuildClientResponse);

void BM_BuildLocalReply(benchmark::State& state) {
  const config::Policy policy;
  const filters::ResponseContext context{policy, "0123456789abcdef0123456789abcdef"};
  const filters::ExtraHeader extra[] = {{"Retry-After", "1"}};
  std::string out;
  for (auto _ : state) {
    out.clear();
    filters::build_local_reply(context, 429, "too_many_requests", extra, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_BuildLocalReply);

}  // namespace
