#pragma once
// Small appenders shared by the filters that write message heads straight into the caller's
// buffer, so building a head costs no temporary strings.

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "portcullis/core/ip.hpp"

namespace portcullis::filters::detail {

inline void append_number(std::string& out, std::uint64_t value) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<std::size_t>(result.ptr - digits));
}

inline void append_header(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

// The textual form IpAddress::to_string gives, without its temporary string.
// IPv4 is written here (every forwarded request carries one; glibc's inet_ntop formats it with
// sprintf); IPv6 keeps inet_ntop for its zero compression rules.
inline void append_ip(std::string& out, const core::IpAddress& address) {
  if (address.is_v4()) {
    for (int i = 12; i < 16; ++i) {
      if (i > 12) out += '.';
      append_number(out, address.bytes[static_cast<std::size_t>(i)]);
    }
    return;
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, address.bytes.data(), text, sizeof text);
  out += text;
}

// Room for a head of about `estimate` bytes, so appending header by header does not reallocate.
// Grows geometrically so a caller appending many heads to one buffer stays amortised linear.
inline void reserve_more(std::string& out, std::size_t estimate) {
  if (out.capacity() - out.size() >= estimate) return;
  const std::size_t wanted = out.size() + estimate;
  const std::size_t grown = out.capacity() + out.capacity() / 2;
  out.reserve(wanted > grown ? wanted : grown);
}

}  // namespace portcullis::filters::detail
