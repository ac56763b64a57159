#include "portcullis/filters/request_id.hpp"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace portcullis::filters {
namespace {

bool is_lower_hex(const std::string& id) {
  for (const char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST(RequestIdGenerator, Writes32LowerCaseHexCharacters) {
  RequestIdGenerator generator;
  std::string id = "previous content that is longer than an id";
  for (int i = 0; i < 1000; ++i) {
    generator.next(id);
    ASSERT_EQ(id.size(), 32u);
    ASSERT_TRUE(is_lower_hex(id)) << id;
    ASSERT_TRUE(is_acceptable_request_id(id));
  }
}

TEST(RequestIdGenerator, IdsAreUnique) {
  RequestIdGenerator generator;
  std::unordered_set<std::string> seen;
  std::string id;
  constexpr int kCount = 200000;
  for (int i = 0; i < kCount; ++i) {
    generator.next(id);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kCount));
}

TEST(RequestIdGenerator, GeneratorsAreSeededIndependently) {
  RequestIdGenerator first;
  RequestIdGenerator second;
  std::string a;
  std::string b;
  first.next(a);
  second.next(b);
  EXPECT_NE(a, b);
}

TEST(RequestIdGenerator, UsesEveryHexDigit) {
  RequestIdGenerator generator;
  std::string id;
  bool seen[16] = {};
  for (int i = 0; i < 100; ++i) {
    generator.next(id);
    for (const char c : id)
      seen[c <= '9' ? c - '0' : c - 'a' + 10] = true;
  }
  for (int digit = 0; digit < 16; ++digit)
    EXPECT_TRUE(seen[digit]) << digit;
}

TEST(IsAcceptableRequestId, AcceptsSaneIds) {
  EXPECT_TRUE(is_acceptable_request_id("a"));
  EXPECT_TRUE(is_acceptable_request_id("0123456789abcdef0123456789abcdef"));
  EXPECT_TRUE(is_acceptable_request_id("Trace-1.2_3:4"));
  EXPECT_TRUE(is_acceptable_request_id("550e8400-e29b-41d4-a716-446655440000"));
  EXPECT_TRUE(is_acceptable_request_id(std::string(128, 'x')));
}

TEST(IsAcceptableRequestId, RefusesEverythingElse) {
  EXPECT_FALSE(is_acceptable_request_id(""));
  EXPECT_FALSE(is_acceptable_request_id(std::string(129, 'x')));
  EXPECT_FALSE(is_acceptable_request_id("has space"));
  EXPECT_FALSE(is_acceptable_request_id("quote\""));
  EXPECT_FALSE(is_acceptable_request_id("slash/"));
  EXPECT_FALSE(is_acceptable_request_id("new\nline"));
  EXPECT_FALSE(is_acceptable_request_id("tab\t"));
  EXPECT_FALSE(is_acceptable_request_id("semi;colon"));
  EXPECT_FALSE(is_acceptable_request_id("caf\xc3\xa9"));
  EXPECT_FALSE(is_acceptable_request_id(std::string_view("nul\0", 4)));
}

}  // namespace
}  // namespace portcullis::filters
