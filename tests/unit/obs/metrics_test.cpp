// Request-path metrics (routes, JWT checks, rate-limit decisions): counted in per-thread cells,
// exposed exactly as Prometheus counts them.

#include "portcullis/obs/metrics.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace portcullis::obs {
namespace {

// The value of the exposed sample `name{labels}` (labels as written, in order), or -1.
double sample(const std::string& text, const std::string& name, const std::string& labels) {
  const std::regex line(
      "(^|\n)" + std::regex_replace(name + "{" + labels + "}", std::regex(R"([{}+.])"), R"(\$&)") +
      " ([^\n]+)");
  std::smatch match;
  if (!std::regex_search(text, match, line)) return -1;
  return std::stod(match[2]);
}

TEST(RouteMetrics, CountsFromManyThreadsAreExactOnceExposed) {
  Metrics metrics("test", "openssl", "boost");
  const RouteMetrics& api = metrics.route("api");
  constexpr int kThreads = 12;  // more threads than cells: some share one
  constexpr int kEach = 5'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        api.observe(200, 0.0007, 0.0004);  // le=0.001, upstream le=0.0005
        api.observe(503, 2.0, -1);         // le=2.5, no upstream
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  const std::string text = metrics.expose();
  const double n = kThreads * kEach;
  EXPECT_EQ(sample(text, "portcullis_requests_total", R"(route="api",status_class="2xx")"), n);
  EXPECT_EQ(sample(text, "portcullis_requests_total", R"(route="api",status_class="5xx")"), n);
  EXPECT_EQ(sample(text, "portcullis_request_duration_seconds_count", R"(route="api")"), 2 * n);
  EXPECT_EQ(
      sample(text, "portcullis_request_duration_seconds_bucket", R"(route="api",le="0.0005")"), 0);
  EXPECT_EQ(sample(text, "portcullis_request_duration_seconds_bucket", R"(route="api",le="0.001")"),
            n);
  EXPECT_EQ(sample(text, "portcullis_request_duration_seconds_bucket", R"(route="api",le="1")"), n);
  EXPECT_EQ(sample(text, "portcullis_request_duration_seconds_bucket", R"(route="api",le="2.5")"),
            2 * n);
  EXPECT_NEAR(sample(text, "portcullis_request_duration_seconds_sum", R"(route="api")"), n * 2.0007,
              1e-3);
  EXPECT_EQ(sample(text, "portcullis_upstream_duration_seconds_count", R"(route="api")"), n);
  EXPECT_EQ(
      sample(text, "portcullis_upstream_duration_seconds_bucket", R"(route="api",le="0.0005")"), n);

  // A second exposure adds only what came since.
  api.observe(404, 0.03, 0.02);
  const std::string again = metrics.expose();
  EXPECT_EQ(sample(again, "portcullis_requests_total", R"(route="api",status_class="2xx")"), n);
  EXPECT_EQ(sample(again, "portcullis_requests_total", R"(route="api",status_class="4xx")"), 1);
  EXPECT_EQ(sample(again, "portcullis_request_duration_seconds_count", R"(route="api")"),
            2 * n + 1);
  EXPECT_EQ(sample(again, "portcullis_upstream_duration_seconds_count", R"(route="api")"), n + 1);
}

TEST(RouteMetrics, AStatusOutsideTheClassesCountsAsOther) {
  Metrics metrics("test", "openssl", "boost");
  metrics.route("x").observe(999, 0.001, -1);
  metrics.route("x").observe(99, 0.001, -1);
  EXPECT_EQ(
      sample(metrics.expose(), "portcullis_requests_total", R"(route="x",status_class="other")"),
      2);
}

TEST(CellCounter, JwtAndRateLimitCountsFromManyThreadsAreExactOnceExposed) {
  Metrics metrics("test", "openssl", "boost");
  const auto& limit = metrics.state.rate_limit("per_ip");
  constexpr int kThreads = 12;
  constexpr int kEach = 4'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        metrics.jwt_verification(core::Reason::none, i % 4 != 0);  // 3 of 4 from the cache
        limit.allowed.increment();
      }
      limit.denied.increment();
    });
  }
  for (auto& thread : threads)
    thread.join();
  const std::string text = metrics.expose();
  const double n = kThreads * kEach;
  EXPECT_EQ(sample(text, "portcullis_jwt_verifications_total", R"(result="ok")"), n);
  EXPECT_EQ(sample(text, "portcullis_jwt_cache_lookups_total", R"(result="hit")"), n * 3 / 4);
  EXPECT_EQ(sample(text, "portcullis_jwt_cache_lookups_total", R"(result="miss")"), n / 4);
  EXPECT_EQ(
      sample(text, "portcullis_rate_limit_decisions_total", R"(limit="per_ip",result="allowed")"),
      n);
  EXPECT_EQ(
      sample(text, "portcullis_rate_limit_decisions_total", R"(limit="per_ip",result="denied")"),
      kThreads);
  // Carried once: a second exposure adds only what came since.
  metrics.jwt_verification(core::Reason::jwt_expired, false);
  const std::string again = metrics.expose();
  EXPECT_EQ(sample(again, "portcullis_jwt_verifications_total", R"(result="ok")"), n);
  EXPECT_EQ(sample(again, "portcullis_jwt_verifications_total", R"(result="jwt_expired")"), 1);
  EXPECT_EQ(sample(again, "portcullis_jwt_cache_lookups_total", R"(result="miss")"), n / 4 + 1);
}

}  // namespace
}  // namespace portcullis::obs
