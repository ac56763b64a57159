#include "portcullis/config/units.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <limits>

namespace portcullis::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("10s"), seconds(10));
  EXPECT_EQ(parse_duration("5m"), minutes(5));
  EXPECT_EQ(parse_duration("1h"), hours(1));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("007s"), seconds(7));
  EXPECT_EQ(parse_duration("1000000h"), hours(1000000));
}

TEST(ParseDuration, RefusesMissingOrUnknownUnits) {
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("10"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("ms"));
  EXPECT_FALSE(parse_duration("10sec"));
  EXPECT_FALSE(parse_duration("10S"));
  EXPECT_FALSE(parse_duration("10us"));
  EXPECT_FALSE(parse_duration("1d"));
  EXPECT_FALSE(parse_duration("1h30m"));
}

TEST(ParseDuration, RefusesSignsSpacesAndFractions) {
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("+1s"));
  EXPECT_FALSE(parse_duration(" 1s"));
  EXPECT_FALSE(parse_duration("1 s"));
  EXPECT_FALSE(parse_duration("1s "));
  EXPECT_FALSE(parse_duration("1.5s"));
  EXPECT_FALSE(parse_duration("1e3ms"));
  EXPECT_FALSE(parse_duration(std::string_view("1\0s", 3)));
}

TEST(ParseDuration, RefusesOverflow) {
  constexpr auto kMax = std::numeric_limits<milliseconds::rep>::max();
  EXPECT_EQ(parse_duration(std::to_string(kMax) + "ms"), milliseconds(kMax));
  EXPECT_FALSE(parse_duration(std::to_string(static_cast<unsigned long long>(kMax) + 1) + "ms"));
  EXPECT_FALSE(parse_duration(std::to_string(kMax) + "s"));
  EXPECT_FALSE(parse_duration("99999999999999999999999ms"));
  // The largest hour count that still fits in milliseconds, and one more.
  const long long max_hours = kMax / 3'600'000;
  EXPECT_EQ(parse_duration(std::to_string(max_hours) + "h"), hours(max_hours));
  EXPECT_FALSE(parse_duration(std::to_string(max_hours + 1) + "h"));
}

TEST(ParseSize, AcceptsPlainBytesAndBinaryUnits) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("10B"), 10u);
  EXPECT_EQ(parse_size("64KiB"), 64u * 1024);
  EXPECT_EQ(parse_size("1MiB"), 1024u * 1024);
  EXPECT_EQ(parse_size("1GiB"), 1024ull * 1024 * 1024);
  EXPECT_EQ(parse_size("3GiB"), 3ull * 1024 * 1024 * 1024);
}

TEST(ParseSize, RefusesOtherUnitsAndForms) {
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("B"));
  EXPECT_FALSE(parse_size("KiB"));
  EXPECT_FALSE(parse_size("1KB"));
  EXPECT_FALSE(parse_size("1kb"));
  EXPECT_FALSE(parse_size("1kib"));
  EXPECT_FALSE(parse_size("1K"));
  EXPECT_FALSE(parse_size("1TiB"));
  EXPECT_FALSE(parse_size("1.5MiB"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_FALSE(parse_size("+1"));
  EXPECT_FALSE(parse_size(" 1"));
  EXPECT_FALSE(parse_size("1 KiB"));
  EXPECT_FALSE(parse_size("0x10"));
}

TEST(ParseSize, RefusesOverflow) {
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(parse_size(std::to_string(kMax)), kMax);
  EXPECT_FALSE(parse_size("18446744073709551616"));
  EXPECT_EQ(parse_size("17179869183GiB"), 17179869183ull << 30);
  EXPECT_FALSE(parse_size("17179869184GiB"));
  EXPECT_FALSE(parse_size(std::to_string(kMax) + "KiB"));
}

}  // namespace
}  // namespace portcullis::config
