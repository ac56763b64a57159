#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

#include "portcullis/io/tls_context.hpp"
#include "portcullis/net/connection_limiter.hpp"
#include "portcullis/upstream/endpoint_health.hpp"

namespace portcullis {
namespace {

using net::ConnectionLimiter;

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}

TEST(ConnectionLimiter, CapsPerIpAndReleasesOnDestruction) {
  ConnectionLimiter limiter;
  core::Reason refused = core::Reason::none;
  std::vector<ConnectionLimiter::Slot> held;
  for (int i = 0; i < 3; ++i) {
    auto slot = limiter.try_acquire(ip("192.0.2.1"), 100, 3, refused);
    ASSERT_TRUE(slot);
    held.push_back(std::move(*slot));
  }
  EXPECT_FALSE(limiter.try_acquire(ip("192.0.2.1"), 100, 3, refused));
  EXPECT_EQ(refused, core::Reason::connection_limit_per_ip);
  // Another client is unaffected.
  EXPECT_TRUE(limiter.try_acquire(ip("192.0.2.2"), 100, 3, refused));
  held.pop_back();
  EXPECT_TRUE(limiter.try_acquire(ip("192.0.2.1"), 100, 3, refused));
  EXPECT_EQ(limiter.active(), 2u);
}

TEST(ConnectionLimiter, CapsTheProcessTotal) {
  ConnectionLimiter limiter;
  core::Reason refused = core::Reason::none;
  auto a = limiter.try_acquire(ip("192.0.2.1"), 2, 10, refused);
  auto b = limiter.try_acquire(ip("192.0.2.2"), 2, 10, refused);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(limiter.try_acquire(ip("192.0.2.3"), 2, 10, refused));
  EXPECT_EQ(refused, core::Reason::connection_limit);
  EXPECT_EQ(limiter.active(), 2u);
  a.reset();
  EXPECT_EQ(limiter.active(), 1u);
  EXPECT_TRUE(limiter.try_acquire(ip("192.0.2.3"), 2, 10, refused));
}

TEST(ConnectionLimiter, Ipv6ClientsShareTheirSlash64) {
  ConnectionLimiter limiter;
  core::Reason refused = core::Reason::none;
  auto a = limiter.try_acquire(ip("2001:db8:0:1::1"), 100, 2, refused);
  auto b = limiter.try_acquire(ip("2001:db8:0:1::2"), 100, 2, refused);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(limiter.try_acquire(ip("2001:db8:0:1:ffff::3"), 100, 2, refused));
  EXPECT_TRUE(limiter.try_acquire(ip("2001:db8:0:2::1"), 100, 2, refused));
}

TEST(ConnectionLimiter, MovedSlotReleasesOnce) {
  ConnectionLimiter limiter;
  core::Reason refused = core::Reason::none;
  {
    auto slot = limiter.try_acquire(ip("192.0.2.9"), 10, 10, refused);
    ConnectionLimiter::Slot moved = std::move(*slot);
    slot.reset();
    EXPECT_EQ(limiter.active(), 1u);
  }
  EXPECT_EQ(limiter.active(), 0u);
}

TEST(EndpointHealth, FailuresInARowHoldTheEndpointDownForAWhile) {
  upstream::EndpointHealth health;
  const auto now = upstream::EndpointHealth::Clock::now();
  const auto hold = std::chrono::seconds(5);
  EXPECT_TRUE(health.is_healthy(now));
  health.mark_failure(now, hold, 3);
  health.mark_failure(now, hold, 3);
  EXPECT_TRUE(health.is_healthy(now));  // two failures are not yet a pattern
  health.mark_failure(now, hold, 3);
  EXPECT_FALSE(health.is_healthy(now + std::chrono::seconds(4)));
  EXPECT_TRUE(health.is_healthy(now + std::chrono::seconds(5)));
  health.mark_failure(now, hold, 3);  // still failing after the hold: down again at once
  EXPECT_FALSE(health.is_healthy(now));
  health.mark_success();
  EXPECT_TRUE(health.is_healthy(now));
}

TEST(EndpointHealth, ASuccessBetweenFailuresStartsTheCountAgain) {
  upstream::EndpointHealth health;
  const auto now = upstream::EndpointHealth::Clock::now();
  for (int i = 0; i < 10; ++i) {
    health.mark_failure(now, std::chrono::seconds(5), 2);
    health.mark_success();
  }
  EXPECT_TRUE(health.is_healthy(now));
}

TEST(EndpointHealth, ActiveVerdictOverridesUntilItRecovers) {
  upstream::EndpointHealth health;
  const auto now = upstream::EndpointHealth::Clock::now();
  health.set_active_verdict(false);
  EXPECT_FALSE(health.is_healthy(now + std::chrono::hours(1)));
  health.set_active_verdict(true);
  EXPECT_TRUE(health.is_healthy(now));
}

TEST(EndpointRegistry, SameKeySameIdAndHealthAcrossReloads) {
  upstream::EndpointRegistry registry;
  const auto a = registry.get("127.0.0.1:9000|plain", "core|127.0.0.1:9000|plain");
  const auto b = registry.get("127.0.0.1:9001|plain", "core|127.0.0.1:9001|plain");
  const auto again = registry.get("127.0.0.1:9000|plain", "core|127.0.0.1:9000|plain");
  EXPECT_EQ(a.id, again.id);
  EXPECT_EQ(a.health, again.health);
  EXPECT_NE(a.id, b.id);
  for (int i = 0; i < 100; ++i) {
    const std::string key = "10.0.0." + std::to_string(i) + ":80|plain";
    registry.get(key, "core|" + key);
  }
  EXPECT_EQ(registry.get("127.0.0.1:9000|plain", "core|127.0.0.1:9000|plain").health,
            a.health);  // stable addresses
}

TEST(EndpointRegistry, UpstreamsSharingAnAddressShareThePoolNotTheHealth) {
  upstream::EndpointRegistry registry;
  const auto core = registry.get("127.0.0.1:9000|plain", "core|127.0.0.1:9000|plain");
  const auto slow = registry.get("127.0.0.1:9000|plain", "slow|127.0.0.1:9000|plain");
  EXPECT_EQ(core.id, slow.id);
  EXPECT_NE(core.health, slow.health);
}

TEST(TicketKeys, CurrentKeyDecryptsAndRotationKeepsThePrevious) {
  io::TicketKeys keys(std::chrono::seconds(3600));
  const auto first = keys.current();
  io::TicketKeys::Key found;
  bool is_current = false;
  ASSERT_TRUE(keys.find(first.name.data(), found, is_current));
  EXPECT_TRUE(is_current);
  EXPECT_EQ(found.aes_key, first.aes_key);
  std::array<unsigned char, 16> unknown{};
  EXPECT_FALSE(keys.find(unknown.data(), found, is_current));
}

TEST(TicketKeys, ZeroPeriodRotatesOnEveryUseAndOldKeyStillDecrypts) {
  io::TicketKeys keys(std::chrono::seconds(0));
  const auto first = keys.current();
  const auto second = keys.current();
  EXPECT_NE(first.name, second.name);
  io::TicketKeys::Key found;
  bool is_current = true;
  ASSERT_TRUE(keys.find(first.name.data(), found, is_current));
  EXPECT_FALSE(is_current);  // tickets under the previous key are renewed
  keys.current();            // a second rotation retires the first key
  EXPECT_FALSE(keys.find(first.name.data(), found, is_current));
}

}  // namespace
}  // namespace portcullis
