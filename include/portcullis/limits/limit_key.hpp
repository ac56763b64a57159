#pragma once
// The key a limit, a login-failure count or a denial is tracked under: which limit (a small
// number the caller assigns) and which client (an IP address, IPv6 by its /64, or a subject).
// Fixed size, so the key tables hold no pointers and their memory is known in advance.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "portcullis/core/ip.hpp"

namespace portcullis::limits {

// Subjects longer than this are refused (LimitKey::subject answers nullopt): the caller treats
// such a request as over its limit rather than hashing unbounded input.
inline constexpr std::size_t kMaxSubjectBytes = 256;
// Limit numbers must stay below this; the top bit marks subject keys.
inline constexpr std::uint32_t kMaxLimitIndex = 0x7fff'ffff;

struct LimitKey {
  // An IP key's bytes are the client key (core::IpAddress::client_key()); a subject key's are a
  // 128-bit SipHash-2-4 of the subject under a per-process random key, so an IdP or a client
  // cannot choose subjects that collide, and the table never stores the subject itself. Subject
  // ids are therefore meaningful within this process only: a shared (Redis) store keys by the
  // subject text, not by these bytes.
  std::array<std::uint8_t, 16> id{};
  std::uint32_t limit = 0;

  static LimitKey ip(std::uint32_t limit, const core::IpAddress& address);
  static std::optional<LimitKey> subject(std::uint32_t limit, std::string_view subject);

  friend bool operator==(const LimitKey&, const LimitKey&) = default;
};

// A 64-bit hash of a key, seeded per process (so the shard and slot an address lands in cannot
// be predicted from outside).
std::uint64_t hash_key(const LimitKey& key);

// SipHash-2-4 of `text` under the per-process random key: for hash tables keyed by strings a
// client chooses (a subject, an address), whose buckets must not be predictable from outside.
std::uint64_t hash_text(std::string_view text);

// SipHash-2-4 of `data` under a 128-bit key (k0, k1): the 64-bit variant of the reference
// algorithm. Exposed for the test vectors.
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::string_view data);

}  // namespace portcullis::limits
