#include "portcullis/limits/limit_key.hpp"

#include <bit>
#include <cstring>
#include <random>

namespace portcullis::limits {
namespace {

struct ProcessKeys {
  std::uint64_t hash_seed;
  std::uint64_t subject_k0;
  std::uint64_t subject_k1;
};

std::uint64_t random_u64(std::random_device& device) {
  return (std::uint64_t{device()} << 32) ^ device();
}

const ProcessKeys& process_keys() {
  static const ProcessKeys keys = [] {
    std::random_device device;  // getrandom(2) on Linux
    return ProcessKeys{random_u64(device), random_u64(device), random_u64(device)};
  }();
  return keys;
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t load_le64(const char* p) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(p[i]);
  return value;
}

struct SipState {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }
  void absorb(std::uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

}  // namespace

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::string_view data) {
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
  const std::size_t whole = data.size() / 8 * 8;
  for (std::size_t i = 0; i < whole; i += 8)
    s.absorb(load_le64(data.data() + i));
  std::uint64_t last = static_cast<std::uint64_t>(data.size() & 0xff) << 56;
  for (std::size_t i = whole; i < data.size(); ++i) {
    last |= static_cast<std::uint64_t>(static_cast<unsigned char>(data[i])) << (8 * (i - whole));
  }
  s.absorb(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i)
    s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

LimitKey LimitKey::ip(std::uint32_t limit, const core::IpAddress& address) {
  LimitKey key;
  key.id = address.client_key().bytes;
  key.limit = limit & kMaxLimitIndex;
  return key;
}

std::optional<LimitKey> LimitKey::subject(std::uint32_t limit, std::string_view subject) {
  if (subject.size() > kMaxSubjectBytes) return std::nullopt;
  const ProcessKeys& keys = process_keys();
  // Two independent SipHash outputs (the second under a derived key) give 128 bits.
  const std::uint64_t low = siphash24(keys.subject_k0, keys.subject_k1, subject);
  const std::uint64_t high =
      siphash24(keys.subject_k1, keys.subject_k0 ^ 0x5a5a5a5a5a5a5a5aULL, subject);
  LimitKey key;
  std::memcpy(key.id.data(), &low, 8);
  std::memcpy(key.id.data() + 8, &high, 8);
  key.limit = (limit & kMaxLimitIndex) | ~kMaxLimitIndex;
  return key;
}

std::uint64_t hash_text(std::string_view text) {
  const ProcessKeys& keys = process_keys();
  return siphash24(keys.hash_seed, keys.subject_k0 ^ keys.subject_k1, text);
}

std::uint64_t hash_key(const LimitKey& key) {
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  std::memcpy(&low, key.id.data(), 8);
  std::memcpy(&high, key.id.data() + 8, 8);
  std::uint64_t h = mix(process_keys().hash_seed ^ (std::uint64_t{key.limit} << 1));
  h = mix(h ^ low);
  h = mix(h ^ high);
  return h;
}

}  // namespace portcullis::limits
