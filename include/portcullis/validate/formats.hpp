#pragma once
// The string formats JSON Schema's `format` keyword can assert here. Each check is exact to its
// RFC, ASCII only (internationalised forms are not accepted), and runs in linear time without
// allocating.

#include <optional>
#include <string_view>

namespace portcullis::validate {

enum class Format {
  date_time,  // RFC 3339 date-time: 1963-06-19T08:30:06.283185Z; 'T' and 'Z' in either case
  date,       // RFC 3339 full-date: 1963-06-19, day checked against month and leap year
  time,       // RFC 3339 full-time: 08:30:06Z, 08:30:06.5+02:00; an offset is required
  email,      // RFC 5321 mailbox: dot-atom or quoted local part; host name or [address] literal
  hostname,   // RFC 1123: dot-separated labels of letters, digits and inner hyphens, 1-63 bytes
              // each, 253 bytes at most, no trailing dot
  ipv4,       // dotted quad, no leading zeros: 192.168.0.1
  ipv6,       // RFC 4291 text forms, "::" and a trailing dotted quad included; no zone id
  uri,        // RFC 3986 URI (absolute, with a scheme; a fragment is allowed)
  uuid,       // RFC 4122 text: 8-4-4-4-12 hex digits, either case
};

// The format for a `format` value ("date-time", ...), nullopt for one not listed above.
std::optional<Format> format_from_name(std::string_view name);

// The name as written in schemas.
std::string_view format_name(Format format);

// True when `text` is in `format`. Leap seconds (second 60) are accepted only at 23:59 UTC.
bool matches_format(Format format, std::string_view text);

}  // namespace portcullis::validate
