#pragma once
// Text rules of the policy language that need no YAML: names, header tokens, host names,
// host:port, route paths, and how a value is quoted and a near-miss suggested in a message.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "portcullis/config/policy.hpp"

namespace portcullis::config::syntax {

inline constexpr std::size_t kMaxNameLength = 64;

bool is_digit(char c);
bool is_alnum(char c);
bool is_hex(char c);
std::string upper(std::string_view text);

// RFC 9110 token: header names and methods.
bool is_token(std::string_view text);
// RFC 9110 field-value: visible characters, spaces, tabs and obs-text; never CR, LF or NUL.
bool is_field_value(std::string_view text);
// Names of upstreams, providers, limits and routes end up in logs and metric labels: plain
// letters, digits, '_', '-', '.', at most kMaxNameLength.
bool is_name(std::string_view text);
// A DNS name (RFC 1123 labels); a last label of digits only is refused, so a mistyped IPv4
// address such as 10.0.0.300 is not taken for a name.
bool is_host_name(std::string_view text);

// Quotes a value for a message; control characters are escaped so a policy cannot write
// terminal escapes into the operator's console.
std::string quote(std::string_view text);

// The candidate closest to `name` (case-insensitive edit distance below 3), or empty.
std::string_view closest(std::string_view name, std::span<const std::string_view> candidates);
std::size_t edit_distance(std::string_view a, std::string_view b);

// "must be at least 1", "must be between 0 and 1024".
std::string range_text(std::uint64_t min, std::uint64_t max);

// A path as the router compares it: normalised (see http/path.hpp), so a route written
// differently would never match anything. Returns an explanation, or empty when fine.
std::string route_path_problem(std::string_view path);

// "host:port" with an IP literal or a DNS name ("[::1]:8443" for IPv6). On failure returns
// nothing and sets `why` to a phrase that follows the quoted text ("needs a port: ...").
std::optional<HostPort> parse_host_port(std::string_view text, bool allow_port_zero,
                                        std::string& why);

}  // namespace portcullis::config::syntax
