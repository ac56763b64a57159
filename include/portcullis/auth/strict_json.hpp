#pragma once
// JSON parsing for security decisions: Boost.JSON with a nesting limit, invalid UTF-8 refused,
// and duplicate member names refused at every level (Boost.JSON would silently keep the last one,
// which lets two parsers disagree about what a token says).

#include <boost/json/value.hpp>

#include <cstddef>
#include <optional>
#include <string_view>

namespace portcullis::auth::detail {


// One JSON value spanning all of `text` (surrounding whitespace allowed), or nullopt.
std::optional<boost::json::value> parse_strict_json(std::string_view text, std::size_t max_depth);

}  // namespace portcullis::auth::detail
