#include "portcullis/config/units.hpp"

#include <charconv>
#include <limits>
#include <string_view>

namespace portcullis::config {
namespace {

// Splits "123unit" into its number and unit. Only ASCII digits count: no sign, no spaces, no
// decimal point, so "-1s", " 1s" and "1.5s" all fail here.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& unit) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + digits, number);
  if (ec != std::errc{} || end != text.data() + digits) return false;  // overflow
  unit = text.substr(digits);
  return true;
}

std::optional<std::uint64_t> multiply(std::uint64_t number, std::uint64_t factor,
                                      std::uint64_t limit) {
  if (number > limit / factor) return std::nullopt;
  return number * factor;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return std::nullopt;
  std::uint64_t factor = 0;
  if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m") {
    factor = 60 * 1000;
  } else if (unit == "h") {
    factor = 60 * 60 * 1000;
  } else {
    return std::nullopt;  // a unit is required: "10" alone is ambiguous
  }
  const auto limit = static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max());
  const auto milliseconds = multiply(number, factor, limit);
  if (!milliseconds) return std::nullopt;
  return Duration(static_cast<Duration::rep>(*milliseconds));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return std::nullopt;
  std::uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = std::uint64_t{1} << 10;
  } else if (unit == "MiB") {
    factor = std::uint64_t{1} << 20;
  } else if (unit == "GiB") {
    factor = std::uint64_t{1} << 30;
  } else {
    return std::nullopt;  // "KB", "k", "MB": refused rather than guessed at
  }
  return multiply(number, factor, std::numeric_limits<std::uint64_t>::max());
}

}  // namespace portcullis::config
