#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "portcullis/redis/connection.hpp"
#include "portcullis/redis/gcra.hpp"
#include "redis/redis_server.hpp"

namespace portcullis::redis {
namespace {

using namespace test;

constexpr std::int64_t kSecond = 1'000'000;

// rate per `per_us`, at most `burst` at once: T = per / rate, tau = (burst - 1) * T.
GcraLimit limit(std::string key, std::int64_t rate, std::int64_t per_us, std::int64_t burst,
                std::int64_t quantity = 1) {
  const std::int64_t interval = per_us / rate;
  return GcraLimit{std::move(key), interval, (burst - 1) * interval, quantity};
}

class GcraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.start();
    RedisOptions options;
    options.port = server_.port();
    options.command_timeout = 2s;
    redis_ = Connection::create(io_.get_executor(), options);
    redis_->start();
    ASSERT_TRUE(run_until(io_, [&] { return redis_->ready(); }));
  }
  void TearDown() override {
    redis_->stop();
    run_until(
        io_, [] { return false; }, 20ms);
  }
  GcraDecision decide(std::vector<GcraLimit> limits) {
    auto decision = run(io_, gcra_decide(*redis_, limits));
    EXPECT_TRUE(decision.decided()) << status_name(decision.status) << " " << decision.error;
    EXPECT_EQ(decision.limits.size(), limits.size());
    return decision;
  }
  std::int64_t pttl(const std::string& key) {
    return run(io_, redis_->execute(make_command("PTTL", key))).value.integer;
  }

  asio::io_context io_;
  RedisServer server_;
  std::shared_ptr<Connection> redis_;
};

TEST_F(GcraTest, AdmitsTheBurstAtOnceThenDeniesWithoutConsuming) {
  // 1 per 10 s, burst 5: no request is earned back during the test.
  const auto per_ip = limit("portcullis:rl:ip", 1, 10 * kSecond, 5);
  for (int i = 0; i < 5; ++i) {
    const auto decision = decide({per_ip});
    ASSERT_TRUE(decision.allowed) << i;
    EXPECT_TRUE(decision.limits[0].passed);
    EXPECT_EQ(decision.limits[0].remaining, 4 - i);
    EXPECT_EQ(decision.limits[0].retry_after_us, 0);
    EXPECT_GT(decision.limits[0].reset_us, i * 10 * kSecond);
    EXPECT_LE(decision.limits[0].reset_us, (i + 1) * 10 * kSecond);
  }
  const auto tat_before =
      run(io_, redis_->execute(make_command("GET", "portcullis:rl:ip"))).value.string;
  for (int i = 0; i < 5; ++i) {
    const auto decision = decide({per_ip});
    EXPECT_FALSE(decision.allowed);
    EXPECT_FALSE(decision.limits[0].passed);
    EXPECT_EQ(decision.limits[0].remaining, 0);
    // The next request is earned within one interval.
    EXPECT_GT(decision.limits[0].retry_after_us, 0);
    EXPECT_LE(decision.limits[0].retry_after_us, 10 * kSecond);
  }
  // Denials wrote nothing.
  EXPECT_EQ(run(io_, redis_->execute(make_command("GET", "portcullis:rl:ip"))).value.string,
            tat_before);
  // The key expires when the limit is back at full burst: about 5 intervals from now.
  const auto ttl = pttl("portcullis:rl:ip");
  EXPECT_GT(ttl, 40'000);
  EXPECT_LE(ttl, 50'000);
}

TEST_F(GcraTest, SpacesRequestsAtTheEmissionInterval) {
  // 10 per second, no burst: one request every 100 ms. Ask as fast as possible for about 1 s.
  const auto steady = limit("portcullis:rl:steady", 10, kSecond, 1);
  int allowed = 0;
  int asked = 0;
  const auto started = now();
  while (now() - started < 1000ms) {
    allowed += decide({steady}).allowed ? 1 : 0;
    ++asked;
  }
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now() - started).count();
  EXPECT_GT(asked, 50) << "too few decisions to judge the spacing";
  // One at once, then one per 100 ms elapsed (the clock read here is coarse: allow one either way).
  const auto expected = 1 + elapsed_ms / 100;
  EXPECT_GE(allowed, expected - 1);
  EXPECT_LE(allowed, expected + 1);
}

TEST_F(GcraTest, SeveralLimitsPassTogetherOrNoneConsumes) {
  const auto strict = limit("portcullis:rl:user", 1, 10 * kSecond, 1);
  const auto loose = limit("portcullis:rl:ip2", 1, 10 * kSecond, 3);
  auto decision = decide({strict, loose});
  ASSERT_TRUE(decision.allowed);
  EXPECT_EQ(decision.limits[1].remaining, 2);

  // The strict limit is spent: the request is denied, and the loose one consumes nothing.
  decision = decide({strict, loose});
  EXPECT_FALSE(decision.allowed);
  EXPECT_FALSE(decision.limits[0].passed);
  EXPECT_TRUE(decision.limits[1].passed);
  EXPECT_EQ(decision.limits[1].remaining, 2);  // still two: nothing was taken
  EXPECT_EQ(decision.limits[1].retry_after_us, 0);

  EXPECT_TRUE(decide({loose}).allowed);
  EXPECT_TRUE(decide({loose}).allowed);
  EXPECT_FALSE(decide({loose}).allowed);  // 3 in all: the denied pair took none

  EXPECT_GT(pttl("portcullis:rl:user"), 0);
  EXPECT_GT(pttl("portcullis:rl:ip2"), 0);
}

TEST_F(GcraTest, LeasesSeveralAtOnceAndShrinksToOneNearTheLimit) {
  const auto lease = limit("portcullis:rl:lease", 1, 10 * kSecond, 5, 3);
  auto decision = decide({lease});
  ASSERT_TRUE(decision.allowed);
  EXPECT_EQ(decision.limits[0].granted, 3);
  EXPECT_EQ(decision.limits[0].remaining, 2);
  decision = decide({lease});  // 3 more than the 2 left: the one request that asked passes
  ASSERT_TRUE(decision.allowed);
  EXPECT_EQ(decision.limits[0].granted, 1);
  EXPECT_EQ(decision.limits[0].remaining, 1);
  EXPECT_TRUE(decide({lease}).allowed);
  decision = decide({lease});  // spent
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.limits[0].granted, 0);
  EXPECT_GT(decision.limits[0].retry_after_us, 0);
  EXPECT_LE(decision.limits[0].retry_after_us, 10 * kSecond);
  // More than the whole burst: one request passes.
  decision = decide({limit("portcullis:rl:other", 1, 10 * kSecond, 5, 6)});
  ASSERT_TRUE(decision.allowed);
  EXPECT_EQ(decision.limits[0].granted, 1);
  EXPECT_EQ(decision.limits[0].remaining, 4);
}

TEST_F(GcraTest, ALeaseOnOneLimitDoesNotPassARefusedRequest) {
  const auto strict = limit("portcullis:rl:strict", 1, 10 * kSecond, 1);
  const auto leased = limit("portcullis:rl:leased", 1, 10 * kSecond, 10, 4);
  ASSERT_TRUE(decide({strict, leased}).allowed);
  const auto decision = decide({strict, leased});
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.limits[1].granted, 0);
  EXPECT_EQ(decision.limits[1].remaining, 6);  // only the first request's 4 were taken
}

TEST_F(GcraTest, LoadsTheScriptAgainAfterTheServerForgotIt) {
  const auto steady = limit("portcullis:rl:flush", 1, 10 * kSecond, 2);
  ASSERT_TRUE(decide({steady}).allowed);
  ASSERT_TRUE(run(io_, redis_->execute(make_command("SCRIPT", "FLUSH"))).ok());
  EXPECT_TRUE(decide({steady}).allowed);
  EXPECT_FALSE(decide({steady}).allowed);
  const auto exists =
      run(io_, redis_->execute(make_command("SCRIPT", "EXISTS", gcra_script_sha1())));
  ASSERT_TRUE(exists.value.is_array());
  EXPECT_EQ(exists.value.elements[0].integer, 1);
}

TEST_F(GcraTest, RefusesInvalidLimits) {
  auto decision = run(io_, gcra_decide(*redis_, std::vector<GcraLimit>{{"k", 0, 0, 1}}));
  EXPECT_FALSE(decision.decided());
  EXPECT_FALSE(decision.error.empty());
}

}  // namespace
}  // namespace portcullis::redis
