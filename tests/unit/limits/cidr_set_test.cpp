#include "portcullis/limits/cidr_set.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace portcullis::limits {
namespace {

core::IpAddress ip(const char* text) {
  return *core::IpAddress::parse(text);
}
core::Cidr cidr(const char* text) {
  return *core::Cidr::parse(text);
}
std::vector<core::Cidr> cidrs(std::initializer_list<const char*> texts) {
  std::vector<core::Cidr> out;
  for (const char* text : texts)
    out.push_back(cidr(text));
  return out;
}

// The rule the set implements, written the slow way: a block matches an address it contains,
// except that an IPv6 block never matches an IPv4 (v4-mapped) address.
bool matches(const core::Cidr& block, const core::IpAddress& address) {
  if (address.is_v4() && !block.network.is_v4()) return false;
  return block.contains(address);
}
bool reference_allowed(const std::vector<core::Cidr>& deny, const std::vector<core::Cidr>& allow,
                       const core::IpAddress& address) {
  for (const auto& block : deny) {
    if (matches(block, address)) return false;
  }
  if (allow.empty()) return true;
  for (const auto& block : allow) {
    if (matches(block, address)) return true;
  }
  return false;
}

TEST(IpRules, DenyListRefusesItsBlocksInEitherSpelling) {
  const IpRules rules(cidrs({"10.0.0.0/8", "2001:db8::/32", "192.0.2.55"}), {});
  EXPECT_FALSE(rules.allowed(ip("10.200.3.4")));
  EXPECT_FALSE(rules.allowed(ip("::ffff:10.200.3.4")));  // v4-mapped matches the v4 rule
  EXPECT_TRUE(rules.allowed(ip("11.0.0.1")));
  EXPECT_TRUE(rules.allowed(ip("9.255.255.255")));
  EXPECT_FALSE(rules.allowed(ip("2001:db8:ffff::1")));
  EXPECT_TRUE(rules.allowed(ip("2001:db9::1")));
  EXPECT_FALSE(rules.allowed(ip("192.0.2.55")));
  EXPECT_TRUE(rules.allowed(ip("192.0.2.54")));
  EXPECT_TRUE(rules.allowed(ip("192.0.2.56")));
}

TEST(IpRules, AllowListAdmitsOnlyItsBlocksAndDenyWins) {
  const IpRules rules(cidrs({"10.1.0.0/16"}), cidrs({"10.0.0.0/8", "fd00::/8"}));
  EXPECT_TRUE(rules.allowed(ip("10.2.3.4")));
  EXPECT_FALSE(rules.allowed(ip("10.1.3.4")));  // deny wins
  EXPECT_FALSE(rules.allowed(ip("172.16.0.1")));
  EXPECT_TRUE(rules.allowed(ip("fd12::1")));
  EXPECT_FALSE(rules.allowed(ip("2001:db8::1")));
  EXPECT_TRUE(IpRules().allowed(ip("203.0.113.1")));
}

TEST(IpRules, FamiliesStayApart) {
  const IpRules no_v6(cidrs({"::/0"}), {});
  EXPECT_FALSE(no_v6.allowed(ip("2001:db8::1")));
  EXPECT_FALSE(no_v6.allowed(ip("::")));
  EXPECT_FALSE(no_v6.allowed(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_TRUE(no_v6.allowed(ip("192.0.2.1")));
  EXPECT_TRUE(no_v6.allowed(ip("::ffff:192.0.2.1")));
  const IpRules no_v4(cidrs({"0.0.0.0/0"}), {});
  EXPECT_FALSE(no_v4.allowed(ip("0.0.0.0")));
  EXPECT_FALSE(no_v4.allowed(ip("255.255.255.255")));
  EXPECT_TRUE(no_v4.allowed(ip("2001:db8::1")));
  const IpRules nobody(cidrs({"::/0", "0.0.0.0/0"}), {});
  EXPECT_FALSE(nobody.allowed(ip("192.0.2.1")));
  EXPECT_FALSE(nobody.allowed(ip("::1")));
  EXPECT_EQ(nobody.deny().range_count(), 1u);  // the pieces merge into the whole space
  const IpRules only_v4(cidrs({}), cidrs({"0.0.0.0/0"}));
  EXPECT_FALSE(only_v4.allowed(ip("::1")));
  EXPECT_TRUE(only_v4.allowed(ip("8.8.8.8")));
}

TEST(CidrSet, MergesOverlappingAndAdjacentBlocks) {
  const CidrSet set(cidrs({"10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.1.0/24", "10.0.0.7",
                           "192.168.0.0/16"}));
  EXPECT_EQ(set.range_count(), 2u);
  EXPECT_TRUE(set.contains(ip("10.0.1.255")));
  EXPECT_FALSE(set.contains(ip("10.0.2.0")));
  EXPECT_TRUE(CidrSet().empty());
  EXPECT_FALSE(CidrSet().contains(ip("10.0.0.1")));
}

// A random block: IPv4 (prefix 8..32, rarely shorter), IPv6 (16..128, rarely shorter) or a v4 block
// written as v4-mapped IPv6.
core::Cidr random_block(std::mt19937_64& random) {
  core::IpAddress address;
  int prefix = 0;
  switch (random() % 3) {
    case 0:
      address = core::IpAddress::from_v4(static_cast<std::uint32_t>(random()));
      prefix = random() % 500 == 0 ? 96 + static_cast<int>(random() % 33)
                                   : 104 + static_cast<int>(random() % 25);
      break;
    case 1:
      for (auto& byte : address.bytes)
        byte = static_cast<std::uint8_t>(random());
      // Low prefixes are rare, as in real lists (and a /0 would cover everything).
      prefix = random() % 500 == 0 ? static_cast<int>(random() % 129)
                                   : 16 + static_cast<int>(random() % 113);
      break;
    default: {
      address = core::IpAddress::from_v4(static_cast<std::uint32_t>(random()));
      address = *core::IpAddress::parse("::ffff:" + address.to_string());
      prefix = 104 + static_cast<int>(random() % 25);
    }
  }
  core::Cidr block{address, prefix};
  for (int bit = prefix; bit < 128; ++bit)
    block.network.bytes[bit / 8] &= ~(0x80 >> (bit % 8));
  return block;
}

// An address inside `block` (random host bits), or one just outside its ends.
core::IpAddress near(const core::Cidr& block, std::mt19937_64& random) {
  core::IpAddress address = block.network;
  for (int bit = block.prefix_length; bit < 128; ++bit) {
    if (random() & 1) address.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
  }
  if (random() % 4 == 0) {
    // Step one address below the network or above the last address.
    const bool down = random() & 1;
    if (!down) {
      for (int bit = block.prefix_length; bit < 128; ++bit) {
        address.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
      }
    } else {
      address = block.network;
    }
    for (int i = 15; i >= 0; --i) {
      if (down ? address.bytes[i]-- != 0 : ++address.bytes[i] != 0) break;
    }
  }
  return address;
}

TEST(IpRules, AgreesWithBruteForceOnRandomRules) {
  std::mt19937_64 random(2024);
  for (int round = 0; round < 3; ++round) {
    std::vector<core::Cidr> deny;
    std::vector<core::Cidr> allow;
    for (int i = 0; i < 3000; ++i)
      deny.push_back(random_block(random));
    if (round != 1) {
      for (int i = 0; i < 1000; ++i)
        allow.push_back(random_block(random));
    }
    const IpRules rules(deny, allow);
    std::size_t refused = 0;
    for (int i = 0; i < 20'000; ++i) {
      core::IpAddress address;
      switch (i % 4) {
        case 0:
          for (auto& byte : address.bytes)
            byte = static_cast<std::uint8_t>(random());
          break;
        case 1:
          address = core::IpAddress::from_v4(static_cast<std::uint32_t>(random()));
          break;
        case 2:
          address = near(deny[random() % deny.size()], random);
          break;
        default:
          address = allow.empty() ? near(deny[random() % deny.size()], random)
                                  : near(allow[random() % allow.size()], random);
      }
      const bool expected = reference_allowed(deny, allow, address);
      ASSERT_EQ(rules.allowed(address), expected) << address.to_string() << " round " << round;
      refused += !expected;
    }
    // Both answers occur often enough for the comparison to mean something.
    EXPECT_GT(refused, 2'000u);
    EXPECT_LT(refused, 19'000u);
  }
}

}  // namespace
}  // namespace portcullis::limits
