#pragma once
// IP addresses and CIDR blocks without sockets: parsing, printing, containment, and the key a
// client is counted under (IPv6 clients by their /64, so one host cannot mint fresh identities).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis::core {

// An IPv4 or IPv6 address. IPv4 is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d), so
// one 16-byte comparison serves both families.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};

  bool is_v4() const;
  // "192.0.2.1" or "2001:db8::1" (IPv4-mapped addresses print as IPv4).
  std::string to_string() const;
  // The address a client is counted under: itself for IPv4, its /64 network for IPv6.
  IpAddress client_key() const;

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress from_v4(std::uint32_t host_order);
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct IpAddressHash {
  std::size_t operator()(const IpAddress& address) const noexcept;
};

// A CIDR block such as 10.0.0.0/8 or 2001:db8::/32; a bare address is a /32 or /128.
struct Cidr {
  IpAddress network;
  int prefix_length = 0;  // in the 128-bit space: an IPv4 /8 is stored as /104

  bool contains(const IpAddress& address) const;
  std::string to_string() const;
  // Host bits must be zero ("10.0.0.1/8" is refused as a likely typo).
  static std::optional<Cidr> parse(std::string_view text, std::string* error = nullptr);
};

}  // namespace portcullis::core
