#include "portcullis/core/ip.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace portcullis::core {
namespace {

constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool IpAddress::is_v4() const {
  return std::memcmp(bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
  } else {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  }
  return text;
}

IpAddress IpAddress::client_key() const {
  if (is_v4()) return *this;
  IpAddress key = *this;
  std::memset(key.bytes.data() + 8, 0, 8);
  return key;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress address;
  unsigned char v4[4];
  if (inet_pton(AF_INET, buffer, v4) == 1) {
    std::memcpy(address.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(address.bytes.data() + 12, v4, 4);
    return address;
  }
  if (inet_pton(AF_INET6, buffer, address.bytes.data()) == 1) return address;
  return std::nullopt;
}

IpAddress IpAddress::from_v4(std::uint32_t host_order) {
  IpAddress address;
  std::memcpy(address.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  address.bytes[12] = static_cast<std::uint8_t>(host_order >> 24);
  address.bytes[13] = static_cast<std::uint8_t>(host_order >> 16);
  address.bytes[14] = static_cast<std::uint8_t>(host_order >> 8);
  address.bytes[15] = static_cast<std::uint8_t>(host_order);
  return address;
}

std::size_t IpAddressHash::operator()(const IpAddress& address) const noexcept {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  std::memcpy(&high, address.bytes.data(), 8);
  std::memcpy(&low, address.bytes.data() + 8, 8);
  std::uint64_t h = high * 0x9e3779b97f4a7c15ULL ^ (low + 0x7f4a7c159e3779b9ULL);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 29;
  return static_cast<std::size_t>(h);
}

bool Cidr::contains(const IpAddress& address) const {
  int remaining = prefix_length;
  for (std::size_t i = 0; i < 16 && remaining > 0; ++i, remaining -= 8) {
    const std::uint8_t mask =
        remaining >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - remaining));
    if ((address.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

std::string Cidr::to_string() const {
  const int shown = network.is_v4() ? prefix_length - 96 : prefix_length;
  return network.to_string() + "/" + std::to_string(shown);
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* error) {
  const auto fail = [&](const char* message) -> std::optional<Cidr> {
    if (error) *error = message;
    return std::nullopt;
  };
  const auto slash = text.find('/');
  const auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return fail("not an IP address or CIDR block");
  Cidr cidr{*address, 128};
  const int family_bits = address->is_v4() ? 32 : 128;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    int length = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || length < 0 ||
        length > family_bits) {
      return fail("prefix length out of range");
    }
    cidr.prefix_length = length + (128 - family_bits);
  }
  // Refuse host bits below the prefix: "10.0.0.1/8" is almost always a mistake.
  IpAddress masked = cidr.network;
  int remaining = cidr.prefix_length;
  for (std::size_t i = 0; i < 16; ++i, remaining -= 8) {
    if (remaining >= 8) continue;
    const std::uint8_t mask =
        remaining <= 0 ? 0 : static_cast<std::uint8_t>(0xff << (8 - remaining));
    masked.bytes[i] &= mask;
  }
  if (!(masked == cidr.network)) return fail("host bits set below the prefix length");
  return cidr;
}

}  // namespace portcullis::core
