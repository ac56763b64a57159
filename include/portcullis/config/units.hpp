#pragma once
// Durations ("250ms", "10s", "5m", "1h") and sizes (4096, "64KiB", "1MiB") as written in policies.

#include <cstdint>
#include <optional>
#include <string_view>

#include "portcullis/config/policy.hpp"

namespace portcullis::config {

// A positive whole number followed by one of ms, s, m, h, with no spaces. Zero ("0s") is allowed;
// the caller decides whether zero makes sense for the key.
std::optional<Duration> parse_duration(std::string_view text);

// A plain byte count, or a whole number followed by B, KiB, MiB or GiB. Overflow is refused.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace portcullis::config
