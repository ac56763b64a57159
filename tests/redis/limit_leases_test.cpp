// The redis state backend's shared rate limits: budgets of high-rate limits leased in slices,
// given back when a request is refused, and the live-instance count fail_open divides by.

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "portcullis/limits/lease_table.hpp"
#include "redis/state_backend_support.hpp"

namespace portcullis::redis {
namespace {

using namespace test;
using Check = state::Backend::LimitCheck;
using Decision = state::Backend::LimitDecision;

struct Outcome {
  std::error_code error;
  Decision decision;
  bool leased = false;  // decided from a lease, without a call
};

// What the request path does: a leased budget first, else one call, waited for with a bound.
Outcome decide(RedisStateBackend& backend, const std::vector<Check>& checks) {
  Outcome outcome;
  if (backend.decide_from_leases(checks, outcome.decision)) {
    outcome.leased = true;
    return outcome;
  }
  auto promise = std::make_shared<std::promise<Outcome>>();
  auto future = promise->get_future();
  backend.decide_limits(checks, [promise](std::error_code error, const Decision& decision) {
    promise->set_value(Outcome{error, decision, false});
  });
  if (future.wait_for(5s) != std::future_status::ready) {
    ADD_FAILURE() << "a decision did not come within 5 s";
    return outcome;
  }
  return future.get();
}

std::int64_t evalsha_calls(const Reply& info) {
  const std::string& text = info.value.string;
  const auto at = text.find("cmdstat_evalsha:calls=");
  if (at == std::string::npos) return 0;
  return std::stoll(text.substr(at + 22));
}

// 10 000 per second, burst 4000: slice 500 (50 ms of tokens).
Check fast(std::string key) {
  return Check{std::move(key), 100, 4000};
}

TEST_F(StateBackendTest, ALeasedLimitServesManyRequestsPerScript) {
  auto& a = backend();
  ASSERT_EQ(limits::lease_terms(100, 4000).slice, 500);
  const auto calls_before = evalsha_calls(admin(make_command("INFO", "commandstats")));
  constexpr int kRequests = 3000;
  int allowed = 0;
  int leased = 0;
  for (int i = 0; i < kRequests; ++i) {
    const auto outcome = decide(a, {fast("hot:ip:192.0.2.1")});
    ASSERT_FALSE(outcome.error) << outcome.error.message();
    allowed += outcome.decision.allowed ? 1 : 0;
    leased += outcome.leased ? 1 : 0;
  }
  const auto stats = a.stats();
  const auto calls = evalsha_calls(admin(make_command("INFO", "commandstats"))) - calls_before;
  std::printf("%d requests: %llu scripts (%lld EVALSHA in Redis), %d decided from leases\n",
              kRequests, static_cast<unsigned long long>(stats.limit_calls),
              static_cast<long long>(calls), leased);
  EXPECT_EQ(allowed, kRequests);
  // Redis counts a few more: a call that met NOSCRIPT (a fresh server) was sent again, and a
  // refill may have been under way when the counters were read.
  EXPECT_GE(calls, static_cast<std::int64_t>(stats.limit_calls));
  EXPECT_LE(stats.limit_calls, static_cast<std::uint64_t>(kRequests / 20));
  // The ramp (1, 2, 4, ... 256) then slices of 500: about 15 calls; leases expire after 50 ms,
  // so a slow run needs a few more, never one per request.
  EXPECT_LE(calls, kRequests / 20) << "more than 0.05 scripts per request";
  // Every request not decided from a lease cost one script; refills cost the rest.
  EXPECT_GE(leased, kRequests - static_cast<int>(stats.limit_calls));
}

TEST_F(StateBackendTest, ALimitTooSlowToLeaseCostsOneScriptPerRequest) {
  auto& a = backend();
  const Check slow{"slow:ip:192.0.2.1", 100'000, 100};  // 10 per second
  for (int i = 0; i < 20; ++i) {
    const auto outcome = decide(a, {slow});
    EXPECT_FALSE(outcome.leased);
    EXPECT_TRUE(outcome.decision.allowed);
  }
  EXPECT_EQ(a.stats().limit_calls, 20u);
}

TEST_F(StateBackendTest, TwoInstancesNeverPassMoreThanTheLimitPlusOneSlice) {
  auto& a = backend();
  auto& b = backend();
  // 2000 per second, burst 200: slice 50 (25 ms of tokens).
  const Check shared{"fleet:ip:192.0.2.7", 500, 200};
  const auto slice = limits::lease_terms(shared.emission_us, shared.burst).slice;
  ASSERT_EQ(slice, 50);
  std::atomic<bool> go{false};
  std::atomic<int> passed{0};
  std::atomic<int> asked{0};
  const auto hammer = [&](RedisStateBackend& backend) {
    while (!go.load())
      std::this_thread::yield();
    const auto until = test::now() + 1500ms;
    while (test::now() < until) {
      const auto outcome = decide(backend, {shared});
      if (!outcome.error && outcome.decision.allowed) ++passed;
      ++asked;
    }
  };
  std::thread first(hammer, std::ref(a));
  std::thread second(hammer, std::ref(b));
  const auto started = test::now();
  go = true;
  first.join();
  second.join();
  const auto elapsed_us =
      std::chrono::duration_cast<std::chrono::microseconds>(test::now() - started).count();
  const auto budget = shared.burst + elapsed_us / shared.emission_us;
  std::printf("two instances, %.2f s: %d passed of %d asked; budget %lld, one slice %lld\n",
              static_cast<double>(elapsed_us) / 1e6, passed.load(), asked.load(),
              static_cast<long long>(budget), static_cast<long long>(slice));
  EXPECT_GT(asked.load(), passed.load()) << "the limit was never reached";
  EXPECT_LE(passed.load(), budget + slice);
  // Leases lost at their end make the fleet stricter, not starved.
  EXPECT_GE(passed.load(), budget / 2);
}

TEST_F(StateBackendTest, ALeasedTokenIsGivenBackWhenTheRestOfTheRequestIsRefused) {
  auto options = backend_options();
  options.refill_leases = false;  // no refill arriving meanwhile: the counts are exact
  auto& a = backend(options);
  const Check leased{"leased:ip:192.0.2.9", 1000, 400};      // 1000 per second: leased
  const Check strict{"strict:ip:192.0.2.9", 10'000'000, 1};  // 1 per 10 s: never leased
  // Ramp the leased limit to a lease of 4: asks of 1, 2 (one token left here), then 4.
  ASSERT_FALSE(decide(a, {leased}).leased);
  ASSERT_FALSE(decide(a, {leased}).leased);
  ASSERT_TRUE(decide(a, {leased}).leased);
  ASSERT_FALSE(decide(a, {leased}).leased);
  ASSERT_EQ(a.stats().limit_calls, 3u);
  ASSERT_EQ(a.leased_tokens(leased.key), 3);
  const auto tat_before = admin(make_command("GET", std::string(kPrefix) + "rl:" + leased.key));
  // Spend the strict limit, then ask for both: the leased token is taken here, Redis refuses
  // the strict one, and the token comes back.
  ASSERT_TRUE(decide(a, {strict}).decision.allowed);
  const auto held = a.leased_tokens(leased.key);
  const auto refused = decide(a, {leased, strict});
  ASSERT_FALSE(refused.error);
  EXPECT_FALSE(refused.decision.allowed);
  EXPECT_EQ(refused.decision.deciding, 1u);
  EXPECT_GE(refused.decision.retry_after, 1);
  // As many as before: the refused request used none.
  EXPECT_EQ(held, 3);
  EXPECT_EQ(a.leased_tokens(leased.key), 3);
  // And Redis was not asked for the leased limit at all.
  EXPECT_EQ(admin(make_command("GET", std::string(kPrefix) + "rl:" + leased.key)).value.string,
            tat_before.value.string);
}

TEST_F(StateBackendTest, AStoppedBackendDecidesNothing) {
  auto& a = backend();
  ASSERT_TRUE(decide(a, {fast("stop:ip:192.0.2.1")}).decision.allowed);
  a.stop();
  const auto outcome = decide(a, {fast("stop:ip:192.0.2.2")});
  EXPECT_EQ(outcome.error, state::StateError::stopped);
  EXPECT_FALSE(outcome.decision.allowed);
}

TEST_F(StateBackendTest, LiveInstancesCountsTheFleetAndDropsAStoppedOne) {
  auto options = backend_options();
  options.announce_interval = 100ms;
  auto& a = backend(options);
  auto& b = backend(options);
  EXPECT_TRUE(eventually([&] { return a.live_instances() == 2 && b.live_instances() == 2; }, 3s))
      << a.live_instances() << " " << b.live_instances();
  b.stop();
  EXPECT_TRUE(eventually([&] { return a.live_instances() == 1; }, 3s)) << a.live_instances();
  // One that vanished without a word counts until three intervals pass without news.
  const auto time = admin(make_command("TIME"));
  ASSERT_TRUE(time.value.is_array());
  const auto ms = std::stoll(time.value.elements[0].string) * 1000 +
                  std::stoll(time.value.elements[1].string) / 1000;
  admin(make_command("ZADD", std::string(kPrefix) + "instances", std::to_string(ms), "ghost"));
  EXPECT_TRUE(eventually([&] { return a.live_instances() == 2; }, 3s)) << a.live_instances();
  const auto seen_two = test::now();
  EXPECT_TRUE(eventually([&] { return a.live_instances() == 1; }, 3s)) << a.live_instances();
  EXPECT_GE(test::now() - seen_two, 100ms);
}

TEST_F(StateBackendTest, TheLiveCountIsKeptWhileRedisIsDown) {
  auto options = backend_options();
  options.announce_interval = 100ms;
  auto& a = backend(options);
  auto& b = backend(options);
  ASSERT_TRUE(eventually([&] { return a.live_instances() == 2; }, 3s));
  server_.kill();
  ASSERT_TRUE(eventually([&] { return !a.available(); }, 2s));
  // fail_open divides by the last count heard, not by one: still 2 after the backend's loop has
  // gone round for more than three announce intervals without an answer (every 50 ms while down).
  const auto rounds = a.announce_rounds();
  ASSERT_TRUE(eventually([&] { return a.announce_rounds() >= rounds + 8; }, 3s));
  EXPECT_EQ(a.live_instances(), 2u);
  EXPECT_EQ(b.live_instances(), 2u);
  // And a decision fails in time, so the caller decides locally.
  const auto started = test::now();
  const auto outcome = decide(a, {fast("down:ip:192.0.2.1")});
  EXPECT_TRUE(outcome.error);
  EXPECT_LE(test::now() - started, kCommandTimeout + 200ms);
}

}  // namespace
}  // namespace portcullis::redis
