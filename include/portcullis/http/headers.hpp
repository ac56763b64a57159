#pragma once
// Header utilities shared by the request and response sides: case-insensitive comparison,
// comma-separated token lists, and the hop-by-hop set that never crosses the gateway.

#include <optional>
#include <string_view>
#include <vector>

#include "portcullis/core/text.hpp"

namespace portcullis::http {

// A header as received: views into the connection's buffer, name as the peer spelled it,
// value with surrounding whitespace removed.
struct Header {
  std::string_view name;
  std::string_view value;
};

// ASCII case-insensitive equality (header names, tokens, schemes).
using core::iequals;

// The value of the first header named `name` (case-insensitive); nothing when there is none.
inline std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                                   std::string_view name) {
  for (const auto& header : headers) {
    if (iequals(header.name, name)) return header.value;
  }
  return std::nullopt;
}

// True for the fixed hop-by-hop headers of RFC 9110 section 7.6.1 and their legacy companions:
// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// Proxy-Authenticate, Proxy-Authorization.
bool is_hop_by_hop(std::string_view name);

// Calls `each` with every non-empty, whitespace-trimmed element of a comma-separated list.
template <typename Fn>
void for_each_list_element(std::string_view value, Fn&& each) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string_view element = core::trim_ows(value.substr(0, comma));
    if (!element.empty()) each(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

// True when the comma-separated `value` contains `token` (case-insensitive).
bool list_contains(std::string_view value, std::string_view token);

// True when `name` is listed in any of the given Connection header values, which makes it
// hop-by-hop for this message.
bool named_by_connection(std::string_view name, const std::vector<std::string_view>& connection);

// RFC 9110 token characters (methods, header names).
bool is_token_char(char c);

}  // namespace portcullis::http
