#include "portcullis/core/ip.hpp"

#include <gtest/gtest.h>

#include <unordered_set>

namespace portcullis::core {
namespace {

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  const auto v4 = IpAddress::parse("192.0.2.17");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->to_string(), "192.0.2.17");

  const auto v6 = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->to_string(), "2001:db8::1");
}

TEST(IpAddress, MappedV4EqualsPlainV4) {
  EXPECT_EQ(*IpAddress::parse("::ffff:10.1.2.3"), *IpAddress::parse("10.1.2.3"));
  EXPECT_EQ(IpAddress::from_v4(0x0a010203), *IpAddress::parse("10.1.2.3"));
}

TEST(IpAddress, RefusesWhatIsNotAnAddress) {
  for (const char* text : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "::g",
                           "1.2.3.4/8", "localhost", "[::1]"}) {
    EXPECT_FALSE(IpAddress::parse(text)) << text;
  }
}

TEST(IpAddress, Ipv6ClientsAreKeyedByTheirSlash64) {
  const auto a = IpAddress::parse("2001:db8:1:2:aaaa::1")->client_key();
  const auto b = IpAddress::parse("2001:db8:1:2:bbbb::9")->client_key();
  const auto c = IpAddress::parse("2001:db8:1:3::1")->client_key();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.to_string(), "2001:db8:1:2::");
  // IPv4 clients are keyed by the whole address.
  EXPECT_NE(IpAddress::parse("10.0.0.1")->client_key(), IpAddress::parse("10.0.0.2")->client_key());
}

TEST(IpAddress, HashSpreadsNeighbouringAddresses) {
  std::unordered_set<std::size_t> hashes;
  for (std::uint32_t i = 0; i < 1000; ++i)
    hashes.insert(IpAddressHash{}(IpAddress::from_v4(i)));
  EXPECT_EQ(hashes.size(), 1000u);
}

TEST(Cidr, ContainsByPrefix) {
  const auto block = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(block);
  EXPECT_TRUE(block->contains(*IpAddress::parse("10.255.1.2")));
  EXPECT_FALSE(block->contains(*IpAddress::parse("11.0.0.1")));
  EXPECT_FALSE(block->contains(*IpAddress::parse("::a00:1")));  // not IPv4-mapped
  EXPECT_EQ(block->to_string(), "10.0.0.0/8");

  const auto v6 = Cidr::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*IpAddress::parse("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(*IpAddress::parse("2001:db9::1")));
}

TEST(Cidr, OddPrefixLengthsMaskInsideAByte) {
  const auto block = Cidr::parse("192.168.4.0/22");
  ASSERT_TRUE(block);
  EXPECT_TRUE(block->contains(*IpAddress::parse("192.168.7.255")));
  EXPECT_FALSE(block->contains(*IpAddress::parse("192.168.8.0")));
}

TEST(Cidr, BareAddressIsASingleHost) {
  const auto host = Cidr::parse("127.0.0.1");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(*IpAddress::parse("127.0.0.1")));
  EXPECT_FALSE(host->contains(*IpAddress::parse("127.0.0.2")));
  EXPECT_EQ(host->to_string(), "127.0.0.1/32");
}

TEST(Cidr, ZeroPrefixContainsEverything) {
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
  EXPECT_TRUE(Cidr::parse("::/0")->contains(*IpAddress::parse("2001:db8::1")));
}

TEST(Cidr, RefusesTyposAndOutOfRangePrefixes) {
  std::string error;
  EXPECT_FALSE(Cidr::parse("10.0.0.1/8", &error));
  EXPECT_EQ(error, "host bits set below the prefix length");
  for (const char* text :
       {"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8x", "::/129", "nonsense/8", "/8"}) {
    EXPECT_FALSE(Cidr::parse(text)) << text;
  }
}

}  // namespace
}  // namespace portcullis::core
